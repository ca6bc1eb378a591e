"""Coherent caches: a client driver hears of every change to what it cached.

On memory:// (the in-process hook), a real redis-server and a real 3-primary
cluster (CLIENT TRACKING). Bounds are polled with deadlines; the one timing
claim checked is that a stale answer never outlives the coherence bound.
"""

from __future__ import annotations

import time

import pytest

from stroute.client import REREAD_MIN_SECONDS, ClientDriver
from stroute.config import Config
from stroute.linkcache import LinkCache
from stroute.podstate import RoutingState

from support import CommandCounter, put_state, wait_until

NS = "default"
BOUND = 1.0  # links.coherence_bound's default


@pytest.fixture
def cfg(config) -> Config:
    # A long refresh period: only an invalidation makes the driver re-read.
    return config.with_overrides(**{"state.expire": 60, "state.refresh": 600, "links.cache_seconds": 200})


@pytest.fixture
def gateway(cfg):
    with ClientDriver(cfg) as driver:
        assert driver.wait_coherent(), "the invalidation channel was not confirmed"
        yield driver


def three_pods(store, service="game"):
    for pod in range(3):
        put_state(store.client, service, pod, load=0)


def follows(read, expected, *, within=BOUND + 1.0):
    """Poll read() until it returns expected; how long it took (s)."""
    start = time.monotonic()
    wait_until(lambda: read() == expected, timeout=within, interval=0.002, what=f"the answer {expected!r}")
    return time.monotonic() - start


def test_a_move_made_elsewhere_reaches_the_cache(gateway, store):
    three_pods(store)
    placed = gateway.place("u1", "game")
    assert gateway.place("u1", "game").source == "cache"
    other = (placed.pod + 1) % 3
    store.set(NS, "u1", "game", other, 300_000)  # another writer: the CLI, the Go driver, redis-cli
    follows(lambda: gateway.compute_linked_pod(NS, "u1", "game"), other)
    assert gateway.get_linked_pod(NS, "u1", "game") == other
    assert gateway.stats()["invalidations"] >= 1
    # The new answer is cached again, and tracked again: a second move is heard too.
    wait_until(lambda: gateway.place("u1", "game").source == "cache", what="the new link cached")
    store.set(NS, "u1", "game", placed.pod, 300_000)
    follows(lambda: gateway.get_linked_pod(NS, "u1", "game"), placed.pod)


def test_removed_and_overwritten_links_are_dropped(gateway, store):
    store.set(NS, "p", "game", 1)
    store.set(NS, "t", "game", 2, 300_000)
    assert gateway.get_linked_pod(NS, "p", "game") == 1
    assert gateway.get_linked_pod(NS, "t", "game") == 2
    store.remove(NS, "p", "game")
    store.client.set(gateway.store.keys(NS).link("t", "game"), "0")  # a raw SET, as redis-cli would
    follows(lambda: gateway.get_linked_in_cache(NS, "p", "game"), None)
    follows(lambda: gateway.get_linked_pod(NS, "t", "game"), 0)
    assert gateway.get_linked_pod(NS, "p", "game") is None


def test_a_cordon_stops_new_placements_at_once(gateway, store):
    three_pods(store)
    gateway.place("warm", "game")  # the snapshot is read once, and tracked
    store.set_cordon(NS, "game", 1, True)
    wait_until(lambda: 1 not in [p.pod for p in gateway.snapshot("game").routable()],
               timeout=BOUND + 1.0, interval=0.002, what="the cordon seen")
    assert {gateway.place(f"n{i}", "game").pod for i in range(30)} <= {0, 2}
    store.set_cordon(NS, "game", 1, False)
    wait_until(lambda: 1 in [p.pod for p in gateway.snapshot("game").routable()],
               timeout=BOUND + 1.0, interval=0.002, what="the uncordon seen")


def test_a_state_change_marks_the_snapshot_stale(gateway, store):
    three_pods(store)
    gateway.place("warm", "game")
    put_state(store.client, "game", 2, state=RoutingState.DRAINING, load=0)
    wait_until(lambda: gateway.snapshot("game").pods[2].state is RoutingState.DRAINING,
               timeout=BOUND + 1.0, interval=0.002, what="DRAINING seen")
    put_state(store.client, "game", 0, state=RoutingState.DOWN, load=0)
    wait_until(lambda: not gateway.snapshot("game").is_alive(0), timeout=BOUND + 1.0, interval=0.002,
               what="DOWN seen")
    assert {gateway.place(f"n{i}", "game").pod for i in range(20)} == {1}


@pytest.mark.realserver
def test_load_only_heartbeats_do_not_cause_a_reread_storm(real_url, redis_server):
    config = Config().with_overrides(**{"redis.url": real_url, "state.expire": 60, "state.refresh": 600})
    raw = redis_server.client()
    for pod in range(5):
        put_state(raw, "game", pod, load=0)
    with ClientDriver(config) as gateway:
        assert gateway.wait_coherent()
        gateway.place("warm", "game")
        counter = CommandCounter(redis_server.client())
        counter.reset()
        start = time.monotonic()
        beats = 0
        while time.monotonic() - start < 1.0:
            put_state(raw, "game", beats % 5, load=beats)  # 5 pods heartbeating as fast as they can
            gateway.place(f"u{beats}", "game")
            beats += 1
        elapsed = time.monotonic() - start
        reads = counter.counts().get("hgetall", 0) // 3  # a snapshot reads three hashes (states, controls, notes)
    assert beats > 100, beats
    # At most one re-read per REREAD_MIN_SECONDS, whatever the heartbeat rate.
    assert reads <= elapsed / REREAD_MIN_SECONDS + 2, (reads, beats)
    raw.close()
    counter.client.close()


@pytest.mark.realserver
def test_a_killed_channel_serves_no_stale_answer_and_recovers(real_url, redis_server):
    config = Config().with_overrides(**{"redis.url": real_url, "state.expire": 60, "state.refresh": 600})
    raw = redis_server.client()
    three_pods_raw = [put_state(raw, "game", pod, load=0) for pod in range(3)]
    assert len(three_pods_raw) == 3
    with ClientDriver(config) as gateway:
        assert gateway.wait_coherent()
        placed = gateway.place("u1", "game")
        assert gateway.place("u1", "game").source == "cache"
        killed = raw.client_kill_filter(_type="pubsub")
        assert killed >= 1
        # Until the channel is back, every lookup reads Redis: a move is seen at once.
        other = (placed.pod + 1) % 3
        raw.set(gateway.store.keys(NS).link("u1", "game"), str(other), px=300_000)
        moved_at = time.monotonic()
        while time.monotonic() - moved_at < 0.5:
            answer = gateway.compute_linked_pod(NS, "u1", "game")
            assert answer == other or time.monotonic() - moved_at <= BOUND
        assert gateway.compute_linked_pod(NS, "u1", "game") == other
        # The channel comes back, the cache was flushed, and it serves again.
        assert gateway.wait_coherent()
        assert gateway.stats()["cache_flushes"] >= 1
        wait_until(lambda: gateway.place("u1", "game").source == "cache", what="the cache in use again")
        assert gateway.stats()["untrusted_seconds"] > 0
    raw.close()


@pytest.mark.realserver
def test_a_redis_restart_serves_no_stale_answer(real_url, redis_server):
    config = Config().with_overrides(**{"redis.url": real_url, "state.expire": 600, "state.refresh": 600})
    raw = redis_server.client()
    for pod in range(3):
        put_state(raw, "game", pod, load=0)
    with ClientDriver(config) as gateway:
        assert gateway.wait_coherent()
        placed = gateway.place("u1", "game", persist=True)
        assert gateway.place("u1", "game").source == "cache"
        flushes = gateway.stats()["cache_flushes"]
        redis_server.restart()  # no persistence: the data is gone, and so is the tracking table
        raw = redis_server.client()
        # The listener saw its connection go and, once a new one stood, dropped
        # the cache (the gap between may be over before the server is back).
        wait_until(lambda: gateway.stats()["cache_flushes"] > flushes, timeout=BOUND + 5.0, interval=0.01,
                   what="the cache dropped")
        for pod in range(3):
            put_state(raw, "game", pod, load=0)
        other = (placed.pod + 1) % 3
        raw.set(gateway.store.keys(NS).link("u1", "game"), str(other))
        # Whatever the channel's state, the answer is Redis's.
        assert gateway.compute_linked_pod(NS, "u1", "game") == other
        assert gateway.wait_coherent()
        assert gateway.compute_linked_pod(NS, "u1", "game") == other
    raw.close()


@pytest.mark.realserver
def test_a_server_that_refuses_tracking_is_read_every_time(real_url, redis_server, caplog):
    """As on a Redis-compatible server without CLIENT TRACKING: the channel is
    never confirmed, nothing cached is served, and the log says why once."""
    admin = redis_server.client()
    admin.acl_setuser("no-tracking", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
                      commands=["+@all", "-client", "+client|id", "+client|setname"])
    url = real_url.replace("redis://", "redis://no-tracking:pw@")
    config = Config().with_overrides(**{"redis.url": url, "state.expire": 60, "state.refresh": 600})
    try:
        with caplog.at_level("WARNING", logger="stroute.invalidation"):
            with ClientDriver(config) as gateway:
                assert not gateway.wait_coherent(timeout=1.5)
                assert gateway.cache_state() == "suspended"
                for pod in range(3):
                    put_state(admin, "game", pod, load=0)
                first = gateway.place("u", "game").pod
                assert gateway.place("u", "game").source == "existing"  # read from Redis, not the cache
                admin.set(gateway.store.keys(NS).link("u", "game"), str((first + 1) % 3), px=60_000)
                assert gateway.compute_linked_pod(NS, "u", "game") == (first + 1) % 3
        assert "no CLIENT TRACKING" in caplog.text and caplog.text.count("cache suspended") == 1
    finally:
        admin.acl_deluser("no-tracking")
        admin.close()


@pytest.mark.realserver
@pytest.mark.cluster
def test_cluster_keys_on_every_primary_are_coherent(cluster_url, redis_cluster):
    config = Config().with_overrides(**{"redis.url": cluster_url, "state.expire": 60, "state.refresh": 600})
    with ClientDriver(config) as gateway, ClientDriver(config, coherent=False) as mover:
        assert gateway.wait_coherent()
        assert len(gateway.source.listeners()) == 3
        for pod in range(3):
            put_state_cluster(mover, "game", pod)
        # Enough users that every primary holds some of their links.
        uids = [f"user-{i}" for i in range(30)]
        nodes = {gateway.store.client.get_node_from_key(gateway.store.keys(NS).link(uid, "game")).name
                 for uid in uids}
        assert len(nodes) == 3
        first = {uid: gateway.place(uid, "game").pod for uid in uids}
        assert {gateway.place(uid, "game").source for uid in uids} == {"cache"}
        for uid in uids:
            mover.store.set(NS, uid, "game", (first[uid] + 1) % 3, 300_000)
        for uid in uids:
            follows(lambda uid=uid: gateway.compute_linked_pod(NS, uid, "game"), (first[uid] + 1) % 3)


def put_state_cluster(driver: ClientDriver, service: str, pod: int) -> None:
    from stroute.server import ServerDriver

    server = ServerDriver(service, pod, driver.config, store=driver.store)
    server.set_load_state(0)
    server.publish()


def test_memory_drivers_sharing_a_server_stay_coherent():
    config = Config().with_overrides(**{"redis.url": "memory://coherence-shared", "state.expire": 60})
    with ClientDriver(config) as a, ClientDriver(config) as b:
        assert a.cache_state() == "coherent" and b.cache_state() == "coherent"
        three_pods(a.store)
        # Persistent: reading a temporary link slides its TTL, a write that
        # the other driver would hear of (as on Redis).
        pod = a.place("u", "game", persist=True).pod
        assert b.place("u", "game", persist=True).pod == pod
        assert a.place("u", "game").source == "cache" and b.place("u", "game").source == "cache"
        b.store.set(NS, "u", "game", (pod + 2) % 3, 60_000)
        # In-process and synchronous: no wait at all.
        assert a.get_linked_in_cache(NS, "u", "game") is None
        assert a.compute_linked_pod(NS, "u", "game") == (pod + 2) % 3
    from stroute import backends

    backends.forget_memory("coherence-shared")


def test_coherence_off_keeps_the_old_behaviour_and_says_so(cfg, store, caplog):
    with caplog.at_level("WARNING", logger="stroute.client"):
        with ClientDriver(cfg.with_overrides(**{"links.coherent": False}), store=store) as driver:
            assert driver.cache_state() == "local"
            store.set(NS, "u", "game", 1)
            assert driver.get_linked_pod(NS, "u", "game") == 1
            store.set(NS, "u", "game", 2)
            assert driver.get_linked_in_cache(NS, "u", "game") == 1  # not told: cached for cache_seconds
    assert "links.coherent is off" in caplog.text


# --- the cache's own rules, without Redis -------------------------------------------------


class _Source:
    def __init__(self) -> None:
        self.generation = 0
        self.trusted_until = float("inf")


def test_an_invalidation_that_overtakes_its_read_wins():
    cache = LinkCache(lifetime=60)
    cache.source = _Source()
    token = cache.begin()
    cache.invalidate([("game", "u")])  # arrives before the reply is handled
    assert not cache.put(token, "game", "u", 1, False)
    assert cache.get("game", "u") is None
    assert cache.put(cache.begin(), "game", "u", 2, False)
    assert cache.get("game", "u").pod == 2


def test_a_read_across_a_new_generation_is_not_kept():
    cache = LinkCache(lifetime=60)
    source = cache.source = _Source()
    token = cache.begin()
    source.generation += 1  # the channel was re-made while the read was under way
    assert not cache.put(token, "game", "u", 1, False)


def test_nothing_is_served_or_kept_while_the_channel_is_unconfirmed():
    cache = LinkCache(lifetime=60)
    source = cache.source = _Source()
    assert cache.put(cache.begin(), "game", "u", 1, False)
    source.trusted_until = 0.0
    assert cache.get("game", "u") is None
    assert not cache.put(cache.begin(), "game", "v", 1, False)
    source.trusted_until = float("inf")
    assert cache.get("game", "u").pod == 1  # the same connection: nothing was missed


def test_a_read_that_overlapped_more_invalidations_than_remembered_is_not_kept():
    cache = LinkCache(lifetime=60)
    cache.source = _Source()
    token = cache.begin()
    cache.invalidate([("game", f"other-{i}") for i in range(5000)])
    assert not cache.put(token, "game", "u", 1, False)


@pytest.mark.realserver
@pytest.mark.cluster
def test_a_slot_moved_to_another_primary_is_followed():
    """A slot migrates (MIGRATE, then CLUSTER SETSLOT NODE): the key's old node
    tells the driver the key is gone, the driver's next read meets MOVED and
    starts a new generation; answers stay right and the cache serves again."""
    from stroute.testing import RedisClusterProcesses

    cluster = RedisClusterProcesses().start()
    try:
        config = Config().with_overrides(**{"redis.url": cluster.url, "state.expire": 60, "state.refresh": 600})
        with ClientDriver(config) as gateway:
            assert gateway.wait_coherent()
            for pod in range(3):
                put_state_cluster(gateway, "game", pod)
            pod = gateway.place("mover", "game", persist=True).pod
            assert gateway.place("mover", "game").source == "cache"
            key = gateway.store.keys(NS).link("mover", "game")
            slot = gateway.store.client.keyslot(key)
            clients = {node.port: node.client() for node in cluster.nodes}
            ids = {port: c.execute_command("CLUSTER", "MYID") for port, c in clients.items()}
            source = next(p for p, c in clients.items() if c.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))
            target = next(p for p in clients if p != source)
            clients[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
            clients[source].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
            keys = clients[source].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
            clients[source].execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
            for c in clients.values():
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
            # The old node told the driver the key left; the answer is still right.
            follows(lambda: gateway.get_linked_in_cache(NS, "mover", "game"), None)
            assert gateway.compute_linked_pod(NS, "mover", "game") == pod
            # Moved again on the new node by another writer: followed there too.
            clients[target].set(key, str((pod + 1) % 3))
            follows(lambda: gateway.compute_linked_pod(NS, "mover", "game"), (pod + 1) % 3)
            assert gateway.wait_coherent()
            wait_until(lambda: gateway.place("mover", "game").source == "cache", what="the cache serving again")
            for c in clients.values():
                c.close()
    finally:
        cluster.close()


@pytest.mark.realserver
def test_an_idle_gateway_uses_no_cpu(real_url, redis_server):
    """The invalidation listener waits for messages and its PINGs; it never
    polls. It once waited with a deadline that had passed, a busy loop that
    kept a core at 100 % in every gateway. Measured by the process's CPU time
    over a window several times links.coherence_bound long (the window is
    what is measured, not a wait for something)."""
    config = Config().with_overrides(**{"redis.url": real_url, "links.coherence_bound": 0.5})
    with ClientDriver(config) as gateway:
        assert gateway.wait_coherent()
        began_cpu, began = time.process_time(), time.monotonic()
        time.sleep(2.0)
        cpu, wall = time.process_time() - began_cpu, time.monotonic() - began
        assert gateway.wait_coherent(timeout=0)  # the channel stayed up: its PINGs were answered
    assert cpu < 0.2 * wall, f"{cpu:.2f} s of CPU in {wall:.2f} s idle"
