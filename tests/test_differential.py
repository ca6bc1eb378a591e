"""Differential check: the same random operations on memory:// (fakeredis) and a real Redis.

Hypothesis draws sequences of store operations over a few users, services
and pods; each runs on both stores in turn. Every reply must be the same,
and so must the data left behind: every key, its type, its value and whether
it has a TTL, also after a script fails half-way on data of the wrong type
(Redis does not roll a script back). So fakeredis's Lua cannot hide a difference from the scripts
that production runs on a real server. Times are the one thing allowed to
differ (heartbeat stamps, TTLs left), and they are compared loosely.
"""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stroute import backends
from stroute.podstate import PodState, RoutingState
from stroute.store import Store
from support import all_keys

pytestmark = pytest.mark.realserver

NS = "default"
EXPIRE_MS = 60_000

uids = st.sampled_from(["u0", "u1", "u2", "u3"])
services = st.sampled_from(["lobby", "chat"])
pods = st.integers(0, 3)
ttls = st.sampled_from([None, 20_000, 60_000])  # long: nothing expires during an example
delays = st.sampled_from([0, 0, 30_000, 90_000])
if_pods = st.one_of(st.none(), pods)
states = st.sampled_from(list(RoutingState))

operations = st.one_of(
    st.tuples(st.just("set"), uids, services, pods, ttls),
    st.tuples(st.just("try_set"), uids, services, pods, ttls),
    st.tuples(st.just("set_if_absent"), uids, services, pods, ttls),
    st.tuples(st.just("set_if_absent_many"), services, st.lists(st.tuples(uids, pods), max_size=4), ttls),
    st.tuples(st.just("move"), uids, services, pods, pods),
    st.tuples(st.just("remove"), uids, services, delays, if_pods),
    st.tuples(st.just("get"), uids, services),
    st.tuples(st.just("get_if_persistent"), uids, services),
    st.tuples(st.just("links_of"), uids),
    st.tuples(st.just("batch_get"), st.lists(uids, max_size=5), services),
    st.tuples(st.just("scan_links"), st.one_of(st.none(), services), st.one_of(st.none(), pods)),
    st.tuples(st.just("publish_state"), services, pods, st.integers(0, 10**6), states,
              st.one_of(st.none(), st.integers(1, 3)), st.booleans(), st.sampled_from(["start", "continue", "force"]),
              st.sampled_from([False, None, "no load yet"])),
    st.tuples(st.just("set_cordon"), services, pods, st.booleans()),
    st.tuples(st.just("snapshot"), services),
    st.tuples(st.just("remove_state"), services, pods),
    # data stroute did not write: a key of the wrong type or a value that is not a pod
    st.tuples(st.just("corrupt"), st.sampled_from(["link is a hash", "index is a string", "link is not a pod",
                                                   "state is a string"]), uids, services),
)


def link(found):
    """A Link without its exact TTL (the stores run a few ms apart)."""
    if found is None:
        return None
    assert found.persistent or 0 < found.ttl_ms <= 90_000, found
    return (found.namespace, found.uid, found.service, found.pod, found.persistent)


def snapshot(s):
    if s is None:
        return None
    views = {p: (v.load, v.state, v.epoch, v.cordoned, v.alive, v.routable, v.display_state)
             for p, v in s.pods.items()}
    return (s.service, views, s.invalid, s.workload)


def apply(store: Store, op: tuple):
    name, *args = op
    if name in ("set", "try_set", "set_if_absent"):
        uid, svc, pod, ttl = args
        return getattr(store, name)(NS, uid, svc, pod, ttl)
    if name == "set_if_absent_many":
        svc, wanted, ttl = args
        return store.set_if_absent_many(NS, svc, wanted, ttl)
    if name == "move":
        uid, svc, expected, new = args
        return store.move(NS, uid, svc, expected, new)
    if name == "remove":
        uid, svc, after, if_pod = args
        return store.remove(NS, uid, svc, after_ms=after, if_pod=if_pod)
    if name == "get":
        return link(store.get(NS, *args))
    if name == "get_if_persistent":
        return store.get_if_persistent(NS, *args)
    if name == "links_of":
        return store.links_of(NS, *args)
    if name == "batch_get":
        wanted, svc = args
        return store.batch_get(NS, wanted, svc)
    if name == "scan_links":
        svc, pod = args
        return sorted(link(found) for found in store.scan_links(NS, service=svc, pod=pod))
    if name == "publish_state":
        svc, pod, load, state, epoch, summarize, claim, reason = args
        published = store.publish_state(NS, svc, pod, load=load, state=state, epoch=epoch, expire_ms=EXPIRE_MS,
                                         summarize=summarize, claim=claim, reason=reason)
        before = published.previous and (published.previous.load, published.previous.state, published.previous.epoch)
        return published.written, before, published.cordoned, snapshot(published.snapshot)
    if name == "set_cordon":
        svc, pod, cordoned = args
        return store.set_cordon(NS, svc, pod, cordoned)
    if name == "snapshot":
        return snapshot(store.snapshot(NS, args[0], expire_ms=EXPIRE_MS))
    if name == "remove_state":
        return store.remove_state(NS, *args)
    if name == "corrupt":
        how, uid, svc = args
        ks, client = store.keys(NS), store.client
        {
            "link is a hash": lambda: (client.delete(ks.link(uid, svc)), client.hset(ks.link(uid, svc), "x", "1")),
            "index is a string": lambda: client.set(ks.index(uid), "oops"),
            "link is not a pod": lambda: client.set(ks.link(uid, svc), "oops"),
            "state is a string": lambda: client.set(ks.state(svc), "oops"),
        }[how]()
        return None
    raise AssertionError(name)


def outcome(store: Store, op: tuple):
    try:
        result = apply(store, op)
    except Exception as exc:
        return ("error", *_error(store, op, exc))
    if isinstance(result, list):  # a batch reports a bad key in its place: compare it as an error
        result = [_error(store, op, r) if isinstance(r, Exception) else r for r in result]
    return "ok", result


def _error(store: Store, op: tuple, exc: Exception) -> tuple[str, str]:
    # The same error on both sides, where each store names itself; a real
    # server adds where in the script it failed.
    message = str(exc).replace(store.where, "<where>").split(" script: ")[0]
    # Redis 7.0 puts it in front instead: "Error running script (call to f_<sha>): @user_script:8: ".
    message = re.sub(r"Error running script \(call to f_[0-9a-f]+\): @user_script:\d+: ", "", message)
    if op[0] == "scan_links":  # SCAN's order differs: which bad key comes first may too
        message = re.sub(r"key '[^']*' holds '[^']*'", "key holds", message)
    return type(exc).__name__, message


def data(client) -> dict:
    """all_keys, with each pod state's heartbeat stamp, and the time each epoch
    was first seen in the notes, left out (each server's own clock)."""
    out = {}
    for key, (kind, value, ttl) in all_keys(client).items():
        if kind == "hash" and key.endswith(":notes"):
            value = {name: re.sub(r"\d+:(\d+)", r"\1", raw) if name.endswith(":epochs") else raw
                     for name, raw in value.items()}
        elif kind == "hash" and ":state:" in key and not key.endswith(":ctl"):
            value = {pod: _without_time(raw) for pod, raw in value.items()}
        out[key] = (kind, value, ttl)
    return out


def _without_time(raw: str):
    state = PodState.decode(raw)
    return raw if state is None else (state.load, state.state, state.epoch)


@pytest.fixture
def pair(real_url, redis_server):
    """A real-server store and a fresh memory:// store per example (see `fresh`)."""
    real = Store.from_url(real_url)
    yield real, redis_server.client()
    real.close()


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, min_size=1, max_size=30))
def test_memory_and_real_redis_agree(pair, ops):
    real, raw = pair
    raw.flushall()
    name = f"diff-{uuid.uuid4().hex}"
    memory = Store.from_url(f"memory://{name}")
    try:
        for step, op in enumerate(ops):
            expected, got = outcome(real, op), outcome(memory, op)
            assert got == expected, f"step {step} {op}: real Redis {expected}, memory:// {got}"
        assert data(memory.client) == data(raw), f"the data differs after {ops}"
    finally:
        memory.close()
        backends.forget_memory(name)
