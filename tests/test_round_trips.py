"""Commands per heartbeat and per batch, from the real server's own counters,
and recovery when Redis has forgotten the scripts (restart, SCRIPT FLUSH)."""

from __future__ import annotations

from stroute.client import ClientDriver
from stroute.config import Config
from stroute.podstate import RoutingState
from stroute.server import ServerDriver

from support import CommandCounter, put_state

# Redis counts the commands a script runs inside itself too: TIME, HGET of
# the field (whose epoch it checks), HSET, HGET of the cordon.
PUBLISH_INSIDE = {"time": 1, "hset": 1, "hget": 2}


def _config(url: str) -> Config:
    return Config().with_overrides(**{"redis.url": url, "state.refresh": 3600, "state.expire": 3600, "state.period": 60})


def test_a_heartbeat_is_one_evalsha_and_registers_the_service_now_and_then(real_url, redis_server):
    config = _config(real_url)
    counter = CommandCounter(redis_server.client())
    server = ServerDriver("lobby", 1, config)
    try:
        server.set_load_state(7)
        server.publish()  # the first heartbeat loads the script and registers the service
        counter.reset()
        for _ in range(20):
            server.publish()
        # Every tenth heartbeat re-registers the service (SADD) and re-sends
        # the pod's reason note (none here: HDEL).
        assert counter.counts() == {"evalsha": 20, "sadd": 2, "hdel": 2,
                                    **{k: 20 * v for k, v in PUBLISH_INSIDE.items()}}

        counter.reset()
        server.set_routing_state(RoutingState.DRAINING)
        server.publish()
        assert counter.counts()["sadd"] == 1  # a state change registers at once
        assert redis_server.client().smembers("sf:{default}:services") == {"lobby"}
    finally:
        server.close()
        counter.client.close()


def test_pod_zero_also_publishes_the_workload_summary(real_url, redis_server):
    config = _config(real_url)
    counter = CommandCounter(redis_server.client())
    server = ServerDriver("lobby", 0, config)
    try:
        server.publish()
        counter.reset()
        for _ in range(5):
            server.publish()
        counts = counter.counts()
        top_level = counts["evalsha"] + counts["set"] + counts.get("sadd", 0)
        assert counts["evalsha"] == 5 and counts["set"] == 5
        assert top_level / 5 <= 3
        assert redis_server.client().get("sf:{default:workload:lobby}") == "READY"
    finally:
        server.close()
        counter.client.close()


def test_batch_placement_and_heartbeats_survive_a_script_flush(real_url, redis_server):
    config = _config(real_url)
    raw = redis_server.client()
    put_state(raw, "lobby", 0, load=0)
    put_state(raw, "lobby", 1, load=0)
    with ClientDriver(config) as client, ServerDriver("lobby", 2, config) as server:
        assert client.wait_coherent()
        first = client.place_many(["a", "b"], "lobby")
        assert {p.source for p in first.values()} == {"new"}
        server.publish()

        raw.script_flush()
        again = client.place_many(["a", "b", "c"], "lobby")
        assert {uid: p.source for uid, p in again.items()} == {"a": "cache", "b": "cache", "c": "new"}
        assert int(raw.get("sf:{default:lk:c}lobby")) == again["c"].pod

        raw.script_flush()
        before = int(raw.hget("sf:{default:state:lobby}", 2).split("-")[1])
        server.publish()
        after = int(raw.hget("sf:{default:state:lobby}", 2).split("-")[1])
        assert after >= before
        assert raw.hget("sf:{default:state:lobby}", 2).split("-")[2] == "1"
    raw.close()


def test_batch_get_is_one_mget_per_ten_thousand_uids(real_url, redis_server):
    config = _config(real_url)
    raw = redis_server.client()
    counter = CommandCounter(redis_server.client())
    uids = [f"u{i}" for i in range(25_000)]
    pipe = raw.pipeline(transaction=False)
    for i, uid in enumerate(uids[::2]):
        pipe.set(f"sf:{{default:lk:{uid}}}lobby", i % 4)
    pipe.execute()
    with ClientDriver(config) as client:
        assert client.wait_coherent()
        # The connection's own HELLO / CLIENT SETNAME, and CLIENT TRACKING, come first.
        client.store.ping()
        counter.reset()
        found = client.batch_get_linked_pod("default", uids, "lobby")
        # One pipelined round trip; each MGET is told not to be tracked (its
        # answers are not cached), in the same write. (Redis 6.2 counts
        # CLIENT's subcommands under one name.)
        # The driver's invalidation listener PINGs on its own connection meanwhile
        # (and, on a loaded machine, may reconnect): Redis counts those too.
        counts = counter.counts()
        listener = {k: counts.pop(k) for k in list(counts) if k.startswith("client") or k in ("ping", "subscribe")}
        assert counts == {"mget": 3}, (counts, listener)
        assert sum(v for k, v in listener.items() if k.startswith("client")) >= 3, listener
        tracked = redis_server.client()
        assert int(tracked.info("stats")["tracking_total_keys"]) == 0  # Redis remembers none of the 25,000
        tracked.close()
    assert len(found.missing) == 12_500 and sum(map(len, found.pods.values())) == 12_500
    raw.close()
    counter.client.close()


def test_place_from_stdin_costs_one_command_per_new_uid(real_url, redis_server):
    import os
    import subprocess
    import sys
    from pathlib import Path

    raw = redis_server.client()
    for pod in range(3):
        put_state(raw, "lobby", pod, load=0)
    counter = CommandCounter(redis_server.client())
    raw.script_flush()  # as on a Redis that was just restarted
    uids = "\n".join(f"new-{i}" for i in range(2_000))
    stroute = Path(sys.executable).with_name("stroute")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STROUTE_")}
    counter.reset()
    done = subprocess.run([str(stroute), "--redis-url", real_url, "-o", "json", "place", "-s", "lobby", "-"],
                          input=uids, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    counts = counter.counts()
    # The scripts' own GET, SET, PTTL, TIME and HGETALL are counted by Redis too, and
    # HELLO / CLIENT SETNAME open the connection: neither is a command sent.
    inside = {"get", "set", "pttl", "time", "hgetall", "hello", "client|setname", "client|setinfo"}
    sent = sum(v for k, v in counts.items() if k not in inside)
    # One per uid and one for the state snapshot (which loads its script on
    # NOSCRIPT); the batch's script is loaded once before its pipeline.
    assert counts["evalsha"] == 2_000 + 2
    assert counts["script|load"] == 2
    assert sent <= 2_000 * 1.05, counts
    assert raw.dbsize() >= 2_000
    raw.close()
    counter.client.close()
