"""Placement (client driver's compute) and the four strategies."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from stroute import placement
from stroute.client import ClientDriver
from stroute.config import Config
from stroute.errors import ConfigError, NamespaceMismatch, NoAvailablePod, PodUnavailable
from stroute.podstate import PodView, RoutingState
from stroute.store import Store

from support import CommandCounter, check_invariant, put_state

NS = "default"
READY, DRAINING, DOWN = RoutingState.READY, RoutingState.DRAINING, RoutingState.DOWN
STALE_MS = 120_000  # with state.expire 60 s below


@pytest.fixture
def pcfg(config) -> Config:
    """The test's URL; pods stay fresh for a minute; snapshot re-read on every call."""
    return config.with_overrides(**{"state.expire": 60})


@pytest.fixture
def raw(store):
    return store.client


def driver(cfg: Config, store: Store | None = None, **overrides) -> ClientDriver:
    client = ClientDriver(cfg.with_overrides(**overrides) if overrides else cfg, store=store)
    assert client.wait_coherent()  # cached answers are served from here on
    return client


def pods(raw, *specs, service="lobby"):
    """specs: (pod, state, load[, age_ms])."""
    for spec in specs:
        pod, state, load, *rest = spec
        put_state(raw, service, pod, state=state, load=load, age_ms=rest[0] if rest else 0)


def link_in_redis(raw, uid, service="lobby"):
    key = f"sf:{{default:lk:{uid}}}{service}"
    return raw.get(key), raw.pttl(key)


# --- round trips, from the real server's own counters --------------------------------------------


def SCRIPT_NEW_TEMP_LINK(n: int) -> dict[str, int]:
    """What link_set_if_absent.lua runs inside Redis to create n temporary links
    (the closing PTTL keeps the link in a tracking client's table)."""
    return {"get": n, "set": n, "pttl": n}


@pytest.mark.realserver
def test_cache_hit_is_free_and_a_new_user_costs_one_evalsha(real_url, redis_server):
    cfg = Config().with_overrides(**{"redis.url": real_url, "state.expire": 60, "state.refresh": 3600})
    store = cfg.open_store()
    counter = CommandCounter(redis_server.client())
    try:
        pods(store.client, (0, READY, 0), (1, READY, 0), (2, READY, 0), (3, READY, 0))
        client = ClientDriver(cfg, store=store)
        assert client.wait_coherent()
        assert client.place("warm-up", "lobby").source == "new"  # reads the snapshot once

        counter.reset()
        placed = {f"u{i}": client.place(f"u{i}", "lobby") for i in range(40)}
        assert {p.source for p in placed.values()} == {"new"}
        # One EVALSHA per user and nothing else; Redis also counts the GET,
        # SET and PTTL that the set-if-absent script runs inside that one command.
        assert counter.counts() == {"evalsha": 40, **SCRIPT_NEW_TEMP_LINK(40)}

        counter.reset()
        again = {uid: client.place(uid, "lobby") for uid in placed}
        assert {p.source for p in again.values()} == {"cache"}
        assert {uid: p.pod for uid, p in again.items()} == {uid: p.pod for uid, p in placed.items()}
        assert client.compute_linked_pod(NS, "u1", "lobby") == placed["u1"].pod
        assert counter.counts() == {}

        counter.reset()
        many = client.place_many([f"m{i}" for i in range(40)], "lobby")
        assert {p.source for p in many.values()} == {"new"}
        # One pipelined EVALSHA per user, and no SCRIPT EXISTS before the batch:
        # the script is loaded once, before this driver's first batch.
        assert counter.counts() == {"evalsha": 40, "script|load": 1, **SCRIPT_NEW_TEMP_LINK(40)}

        counter.reset()
        more = client.place_many([f"n{i}" for i in range(40)], "lobby")
        assert {p.source for p in more.values()} == {"new"}
        assert counter.counts() == {"evalsha": 40, **SCRIPT_NEW_TEMP_LINK(40)}
    finally:
        store.close()
        counter.client.close()


# --- who gets new users ----------------------------------------------------------------------------


def test_only_routable_pods_get_new_users(pcfg, store, raw):
    pods(raw, (0, READY, 0), (1, READY, 0, STALE_MS), (2, DOWN, 0), (3, DRAINING, 0), (4, READY, 0), (5, READY, 0))
    store.set_cordon(NS, "lobby", 4, True)
    client = driver(pcfg, store)
    placed = {f"u{i}": client.place(f"u{i}", "lobby") for i in range(60)}
    assert set(Counter(p.pod for p in placed.values())) == {0, 5}
    assert all(p.source == "new" for p in placed.values())
    assert store.batch_get(NS, list(placed), "lobby") == {uid: p.pod for uid, p in placed.items()}
    check_invariant(raw)


def test_pod_zero_takes_users(pcfg, store, raw):
    pods(raw, (0, READY, 0), (1, DOWN, 0))
    client = driver(pcfg, store)
    assert {client.place(f"u{i}", "lobby").pod for i in range(10)} == {0}
    assert client.place("u1", "lobby").source == "cache"


def test_existing_links_to_alive_pods_are_honoured(pcfg, store, raw):
    pods(raw, (0, READY, 0), (3, DRAINING, 0), (4, READY, 0))
    store.set_cordon(NS, "lobby", 4, True)
    store.set(NS, "p", "lobby", 3)  # persistent, on a draining pod
    store.set(NS, "t", "lobby", 3, 2_000)  # temporary, on a draining pod
    store.set(NS, "c", "lobby", 4)  # on a cordoned pod
    client = driver(pcfg, store)
    for uid, pod in (("p", 3), ("t", 3), ("c", 4)):
        result = client.place(uid, "lobby")
        assert (result.pod, result.source) == (pod, "existing"), uid
    assert link_in_redis(raw, "p") == ("3", -1)
    value, pttl = link_in_redis(raw, "t")
    assert value == "3" and pttl > 2_000  # the temporary link's TTL slid forward
    check_invariant(raw)


@pytest.mark.parametrize("dead", ["stale", "down", "unknown"])
def test_temporary_link_to_a_dead_pod_is_moved(pcfg, store, raw, dead):
    pods(raw, (0, READY, 0), (1, READY, 0), (2, DOWN, 0), (3, READY, 0, STALE_MS))
    target = {"stale": 3, "down": 2, "unknown": 7}[dead]
    store.set(NS, "u", "lobby", target, 100_000)
    result = driver(pcfg, store).place("u", "lobby")
    assert result.source == "moved" and result.pod in (0, 1)
    value, pttl = link_in_redis(raw, "u")
    assert value == str(result.pod) and 0 < pttl <= 300_000  # still temporary (and refreshed: links.temp_ttl)
    check_invariant(raw)


def test_persistent_link_to_a_dead_pod_raises_pod_unavailable(pcfg, store, raw):
    pods(raw, (0, READY, 0), (2, DOWN, 0))
    store.set(NS, "u", "lobby", 2)
    client = driver(pcfg, store)
    with pytest.raises(PodUnavailable) as info:
        client.place("u", "lobby")
    exc = info.value
    assert exc.exit_code == 5 and exc.pod == 2 and exc.service == "lobby"
    assert "pod 2 unavailable" in str(exc) and "'lobby'" in str(exc) and "DOWN" in str(exc)
    assert link_in_redis(raw, "u") == ("2", -1)
    with pytest.raises(PodUnavailable):
        client.compute_linked_pod(NS, "u", "lobby", persist=True)
    # The caller may ask to reassign: the link moves and stays persistent.
    result = client.place("u", "lobby", reassign=True)
    assert (result.pod, result.source) == (0, "moved")
    assert link_in_redis(raw, "u") == ("0", -1) and raw.hget("sf:{default:lk:u}", "lobby") == "0"
    check_invariant(raw)


def test_no_routable_pod(pcfg, store, raw):
    client = driver(pcfg, store)
    with pytest.raises(NoAvailablePod) as info:
        client.place("u", "lobby")
    assert info.value.exit_code == 5 and "'lobby'" in str(info.value)
    assert "no pod has published a state" in str(info.value)

    pods(raw, (0, DOWN, 0), (1, READY, 0, STALE_MS), (2, DRAINING, 0))
    with pytest.raises(NoAvailablePod) as info:
        client.place("u", "lobby")
    message = str(info.value)
    assert not isinstance(info.value, PodUnavailable)
    for part in ("'lobby'", "3 pods seen", "1 DOWN", "1 STALE", "1 DRAINING"):
        assert part in message
    assert raw.exists("sf:{default:lk:u}lobby") == 0

    # ... but an existing link to an alive (draining) pod is still returned.
    store.set(NS, "d", "lobby", 2, 5_000)
    result = client.place("d", "lobby")
    assert (result.pod, result.source) == (2, "existing")
    assert raw.pttl("sf:{default:lk:d}lobby") > 5_000  # refreshed
    # A temporary link to a dead pod is no help.
    store.set(NS, "t", "lobby", 0, 5_000)
    with pytest.raises(NoAvailablePod):
        client.place("t", "lobby")
    # A persistent link to a dead pod names the pod.
    store.set(NS, "p", "lobby", 1)
    with pytest.raises(PodUnavailable) as info:
        client.place("p", "lobby")
    assert info.value.pod == 1 and "pod 1 unavailable" in str(info.value)
    check_invariant(raw)


def test_persist_creates_and_upgrades_persistent_links(pcfg, store, raw):
    pods(raw, (0, READY, 0), (1, READY, 0))
    client = driver(pcfg, store)
    created = client.place("a", "lobby", persist=True)
    assert created.source == "new" and link_in_redis(raw, "a") == (str(created.pod), -1)

    temp = client.place("b", "lobby")
    assert link_in_redis(raw, "b")[1] > 0
    upgraded = client.place("b", "lobby", persist=True)  # the cached temporary link is not enough
    assert (upgraded.pod, upgraded.source) == (temp.pod, "existing")
    assert link_in_redis(raw, "b") == (str(temp.pod), -1)
    assert client.place("b", "lobby", persist=True).source == "cache"
    assert store.links_of(NS, "b") == {"lobby": temp.pod}
    check_invariant(raw)


def test_cached_link_to_a_pod_that_died_is_not_used(pcfg, store, raw):
    pods(raw, (0, READY, 0))
    client = driver(pcfg, store)
    assert client.place("u", "lobby").pod == 0
    pods(raw, (0, DOWN, 0), (1, READY, 0))
    result = client.place("u", "lobby")
    assert (result.pod, result.source) == (1, "moved")
    assert client.place("u", "lobby").source == "cache"


def test_another_clients_link_wins_the_race(pcfg, store, raw):
    pods(raw, (0, READY, 0), (1, READY, 0))
    first, second = driver(pcfg, store), driver(pcfg, store, **{"placement.strategy": "hash"})
    chosen = second.strategy.choose("u", store.snapshot(NS, "lobby", expire_ms=60_000).routable(), {}).pod
    store.set(NS, "u", "lobby", 1 - chosen, 50_000)  # someone else got there first, on the other pod
    result = second.place("u", "lobby")
    assert (result.pod, result.source) == (1 - chosen, "existing")
    assert first.place("u", "lobby").pod == 1 - chosen


def test_namespace_mismatch_is_refused(pcfg, store, raw):
    pods(raw, (0, READY, 0))
    client = driver(pcfg, store)
    with pytest.raises(NamespaceMismatch) as info:
        client.compute_linked_pod("prod", "u", "lobby")
    assert "'prod'" in str(info.value) and info.value.exit_code == 2
    assert not any(k.startswith("sf:{prod") or "lk:" in k for k in raw.scan_iter())


# --- place_many ----------------------------------------------------------------------------------------


def test_place_many(pcfg, store, raw):
    pods(raw, (0, READY, 0), (1, READY, 0), (2, DOWN, 0), (3, DRAINING, 0))
    client = driver(pcfg, store)
    cached = client.place("cached", "lobby")
    store.set(NS, "existing", "lobby", 3)
    store.set(NS, "moved", "lobby", 2, 50_000)
    store.set(NS, "stuck", "lobby", 2)
    uids = ["cached", "existing", "moved", "stuck", "bad uid"] + [f"n{i}" for i in range(20)] + ["n1"]
    assert client.wait_coherent()  # a loaded machine can delay a PONG past the bound: the cache then waits
    out = client.place_many(uids, "lobby")
    assert set(out) == set(uids)
    assert (out["cached"].pod, out["cached"].source) == (cached.pod, "cache")
    assert (out["existing"].pod, out["existing"].source) == (3, "existing")
    assert out["moved"].source == "moved" and out["moved"].pod in (0, 1)
    assert isinstance(out["stuck"], PodUnavailable) and out["stuck"].pod == 2
    assert isinstance(out["bad uid"], Exception) and "'bad uid'" in str(out["bad uid"])
    fresh = [out[f"n{i}"] for i in range(20)]
    assert {p.source for p in fresh} == {"new"}
    assert set(Counter(p.pod for p in fresh)) == {0, 1}
    linked = store.batch_get(NS, [f"n{i}" for i in range(20)], "lobby")
    assert linked == {p.uid: p.pod for p in fresh}
    check_invariant(raw)


def test_place_many_without_routable_pods(pcfg, store, raw):
    pods(raw, (3, DRAINING, 0))
    store.set(NS, "a", "lobby", 3)
    out = driver(pcfg, store).place_many(["a", "b"], "lobby")
    assert (out["a"].pod, out["a"].source) == (3, "existing")
    assert isinstance(out["b"], NoAvailablePod) and "'lobby'" in str(out["b"])
    assert raw.exists("sf:{default:lk:b}lobby") == 0


def test_place_many_persist(pcfg, store, raw):
    pods(raw, (0, READY, 0))
    out = driver(pcfg, store).place_many(["a", "b"], "lobby", persist=True)
    assert {uid: p.pod for uid, p in out.items()} == {"a": 0, "b": 0}
    assert store.links_of(NS, "a") == {"lobby": 0} and store.links_of(NS, "b") == {"lobby": 0}


# --- strategies, on their own -------------------------------------------------------------------------------


def view(pod: int, load: int = 0) -> PodView:
    return PodView(pod, load, 0, READY, None, False, False, 0)


def test_make_strategies():
    assert [placement.make(n).name for n in ("p2c", "least-loaded", "round-robin", "hash")] == [
        "p2c", "least-loaded", "round-robin", "hash"]
    with pytest.raises(ConfigError) as info:
        placement.make("random")
    assert info.value.exit_code == 2 and "'random'" in str(info.value) and "p2c" in str(info.value)


def test_hash_is_stable_and_spreads():
    pods_ = [view(p) for p in range(5)]
    a, b = placement.make("hash"), placement.make("hash")
    picks = {f"user-{i}": a.choose(f"user-{i}", pods_, {}).pod for i in range(500)}
    assert picks == {uid: b.choose(uid, list(reversed(pods_)), {}).pod for uid in picks}  # any order, any client
    assert max(Counter(picks.values()).values()) < 150  # mean 100: spread over every pod
    # Load is ignored, and dropping a pod moves only that pod's users.
    loaded = [view(p, load=1000 * p) for p in range(5)]
    assert {uid: a.choose(uid, loaded, {1: 99}).pod for uid in picks} == picks
    without_2 = [v for v in pods_ if v.pod != 2]
    for uid, pod in picks.items():
        if pod != 2:
            assert a.choose(uid, without_2, {}).pod == pod


def test_round_robin_only_over_pods_within_min_plus_range():
    rr = placement.RoundRobin(good_load_range=500)
    pods_ = [view(0, 100), view(1, 550), view(2, 601), view(3, 2000), view(4, 600)]
    picks = [rr.choose("u", pods_, {}).pod for _ in range(9)]
    assert picks == [0, 1, 4] * 3
    assert [placement.RoundRobin(0).choose("u", pods_, {}).pod for _ in range(3)] == [0, 0, 0]


def test_least_loaded_herds_on_the_lowest_reported_load():
    ll = placement.make("least-loaded")
    pods_ = [view(0, 10), view(1, 5), view(2, 5)]
    assert {ll.choose(f"u{i}", pods_, {1: 1000}).pod for i in range(50)} == {1}


def test_p2c_prefers_the_lower_effective_load():
    p2c = placement.PowerOfTwo(random.Random(7))
    assert p2c.choose("u", [view(3, 999)], {}).pod == 3
    two = [view(0, 10), view(1, 20)]
    assert {p2c.choose("u", two, {}).pod for _ in range(20)} == {0}
    assert {p2c.choose("u", two, {0: 11}).pod for _ in range(20)} == {1}  # 21 > 20


def test_p2c_choose_and_its_explanation_agree_and_draw_every_pair():
    """choose() is decide() without the explanation: the same draws give the same pod."""
    pods_ = [view(p, load) for p, load in enumerate([50, 10, 10, 30, 70])]
    extra = {1: 15, 4: 0}
    fast, explained = placement.PowerOfTwo(random.Random(3)), placement.PowerOfTwo(random.Random(3))
    pairs = set()
    for _ in range(2000):
        decision = explained.decide("u", pods_, extra)
        assert fast.choose("u", pods_, extra) is decision.pod
        a, b = decision.considered
        assert a.pod != b.pod
        pairs.add(frozenset((a.pod, b.pod)))
    assert len(pairs) == 10  # every pair of the five pods is drawn


def test_p2c_spreads_a_burst_where_least_loaded_herds(pcfg, store, raw):
    pods(raw, *[(p, READY, 100) for p in range(4)])
    burst = [f"u{i}" for i in range(400)]

    def spread(strategy: str) -> float:
        client = driver(pcfg, store, **{"placement.strategy": strategy, "state.refresh": 3600})
        counts = Counter(client.place(f"{strategy}-{uid}", "lobby").pod for uid in burst)
        return max(counts.values()) / (len(burst) / 4)

    assert spread("p2c") <= 1.1
    assert spread("least-loaded") == 4.0  # every user on one pod: the seed's herd
    assert spread("round-robin") == 1.0


def test_round_robin_through_the_driver(pcfg, store, raw):
    pods(raw, (0, READY, 100), (1, READY, 550), (2, READY, 700), (3, READY, 2000))
    client = driver(pcfg, store, **{"placement.strategy": "round-robin", "placement.good_load_range": 500})
    counts = Counter(client.place(f"u{i}", "lobby").pod for i in range(10))
    assert counts == {0: 5, 1: 5}


def test_hash_through_separate_drivers_agrees(pcfg, store, raw):
    pods(raw, *[(p, READY, 0) for p in range(6)])
    one = driver(pcfg, store, **{"placement.strategy": "hash"})
    other_store = Config().with_overrides(**{"redis.url": "memory://hash-other", "state.expire": 60}).open_store()
    try:
        pods(other_store.client, *[(p, READY, 0) for p in range(6)])
        two = driver(pcfg.with_overrides(**{"redis.url": "memory://hash-other"}), other_store,
                     **{"placement.strategy": "hash"})
        for i in range(30):
            assert one.place(f"u{i}", "lobby").pod == two.place(f"u{i}", "lobby").pod
    finally:
        other_store.close()
        from stroute.backends import forget_memory

        forget_memory("hash-other")
