"""The client driver's reads, writes and cache; and bad input writing nothing."""

from __future__ import annotations

import threading

import pytest

from stroute.client import BatchLinks, ClientDriver
from stroute.config import Config
from stroute.errors import ConfigError, InvalidInput, NamespaceMismatch
from stroute.podstate import RoutingState
from stroute.server import ServerDriver
from stroute.store import Link

from support import CommandCounter, all_keys, check_invariant, put_state

NS = "default"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cfg(config) -> Config:
    return config.with_overrides(**{"state.expire": 60, "links.cache_seconds": 10, "links.temp_ttl": 30})


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def client(cfg, store, clock):
    """A driver whose cache ages by the fake clock and is not told of changes
    (links.coherent off), so these tests see the cache's own rules;
    tests/test_coherence.py covers the coherent cache."""
    with ClientDriver(cfg, store=store, clock=clock, coherent=False) as c:
        yield c


def test_reads(client, store):
    store.set(NS, "42", "lobby", 0)
    store.set(NS, "42", "chat", 2, 20_000)
    assert client.get_linked_pod(NS, "42", "lobby") == 0
    assert client.get_linked_pod_not_cache(NS, "42", "chat") == 2
    assert client.get_linked_pod(NS, "nobody", "lobby") is None
    link = client.get_link("42", "chat")
    assert isinstance(link, Link) and link.pod == 2 and not link.persistent
    assert client.links_of(NS, "42") == {"lobby": 0}
    assert client.get_linked_pod_in_cache_or_if_persist(NS, "43", "lobby") is None
    store.set(NS, "43", "lobby", 5, 20_000)
    assert client.get_linked_pod_in_cache_or_if_persist(NS, "43", "lobby") is None  # temporary: not read
    store.set(NS, "44", "lobby", 0)
    assert client.get_linked_pod_in_cache_or_if_persist(NS, "44", "lobby") == 0


def test_get_linked_pod_caches_until_expired(client, store, clock):
    store.set(NS, "42", "lobby", 1)
    assert client.get_linked_pod(NS, "42", "lobby") == 1
    store.set(NS, "42", "lobby", 2)  # changed behind the client's back
    assert client.get_linked_in_cache(NS, "42", "lobby") == 1
    assert client.get_linked_pod(NS, "42", "lobby") == 1
    assert client.get_linked_pod_not_cache(NS, "42", "lobby") == 2  # and refreshes the cache
    assert client.get_linked_in_cache(NS, "42", "lobby") == 2
    client.cache_expired(NS, "42", "lobby")
    assert client.get_linked_in_cache(NS, "42", "lobby") is None
    assert client.get_linked_pod(NS, "42", "lobby") == 2
    clock.now += 10  # links.cache_seconds
    assert client.get_linked_in_cache(NS, "42", "lobby") is None


def test_cache_never_outlives_a_temporary_link(client, store, clock):
    store.set(NS, "42", "lobby", 1, 3_000)
    assert client.get_linked_pod_not_cache(NS, "42", "lobby") == 1
    clock.now += 3.01
    assert client.get_linked_in_cache(NS, "42", "lobby") is None


def test_removed_link_is_forgotten(client, store):
    store.set(NS, "42", "lobby", 1)
    client.get_linked_pod(NS, "42", "lobby")
    store.remove(NS, "42", "lobby")
    assert client.get_linked_pod_not_cache(NS, "42", "lobby") is None
    assert client.get_linked_in_cache(NS, "42", "lobby") is None


def test_set_cache(client, store):
    client.set_cache(NS, "42", "lobby", 0)
    assert client.get_linked_pod(NS, "42", "lobby") == 0
    assert store.get(NS, "42", "lobby") is None  # local only
    with pytest.raises(InvalidInput):
        client.set_cache(NS, "42", "lobby", -1)


def test_cache_is_bounded(cfg, store, clock):
    client = ClientDriver(cfg, store=store, clock=clock, cache_max_entries=10, coherent=False)
    for i in range(25):
        client.set_cache(NS, f"u{i}", "lobby", 1)
    assert len(client.cache) <= 10
    assert client.get_linked_in_cache(NS, "u24", "lobby") == 1  # the newest survive
    assert client.get_linked_in_cache(NS, "u0", "lobby") is None


def test_cache_disabled(cfg, store, clock):
    client = ClientDriver(cfg.with_overrides(**{"links.cache_seconds": 0}), store=store, clock=clock)
    store.set(NS, "42", "lobby", 1)
    assert client.get_linked_pod(NS, "42", "lobby") == 1
    assert client.get_linked_in_cache(NS, "42", "lobby") is None


def test_batch_get_linked_pod(client, store):
    store.set(NS, "a", "lobby", 0)
    store.set(NS, "b", "lobby", 0, 20_000)
    store.set(NS, "c", "lobby", 3)
    result = client.batch_get_linked_pod(NS, ["c", "a", "x", "b", "a"], "lobby")
    assert result == BatchLinks({0: ["a", "b"], 3: ["c"]}, ["x"])
    assert list(result.pods) == [0, 3]


def test_set_linked_pod_if_absent(client, store, cfg):
    result = client.set_linked_pod_if_absent(NS, "42", "lobby", 0)
    assert (result.pod, result.created) == (0, True)
    assert 0 < store.get(NS, "42", "lobby").ttl_ms <= 30_000
    again = client.set_linked_pod_if_absent(NS, "42", "lobby", 1, persist=True)
    assert (again.pod, again.created) == (0, False)
    assert store.get(NS, "42", "lobby").persistent
    assert client.get_linked_in_cache(NS, "42", "lobby") == 0
    check_invariant(store.client)


def test_tags(client, store):
    assert client.resolve_tag(NS, "lobby") is None
    store.set_tag(NS, "lobby", "lobby-v2")
    assert client.resolve_tag(NS, "lobby") == "lobby-v2"


def test_get_link_service_is_the_uids_services_as_in_the_go_original(client, store):
    """Go's GetLinkService(namespace, uid): the uid's map service -> pod (its persistent links)."""
    assert client.get_link_service(NS, "42") == {}
    store.set(NS, "42", "lobby", 0)
    store.set(NS, "42", "chat", 3)
    store.set(NS, "42", "game", 2, 30_000)  # temporary: not in the index, as in Go
    store.set_tag(NS, "42", "lobby")  # a tag of the same name is not what it reads
    assert client.get_link_service(NS, "42") == {"chat": 3, "lobby": 0}


def test_snapshot_is_refreshed_at_most_once_per_refresh_period(cfg, store, clock):
    client = ClientDriver(cfg.with_overrides(**{"state.refresh": 5}), store=store, clock=clock, coherent=False)
    put_state(store.client, "lobby", 0)
    assert list(client.snapshot("lobby").pods) == [0]
    put_state(store.client, "lobby", 1)
    assert list(client.snapshot("lobby").pods) == [0]
    clock.now += 4.9
    assert list(client.snapshot("lobby").pods) == [0]
    assert list(client.snapshot("lobby", refresh=True).pods) == [0, 1]
    put_state(store.client, "lobby", 2)
    clock.now += 5
    assert list(client.snapshot("lobby").pods) == [0, 1, 2]


def test_threads_share_one_driver(cfg, store):
    put_state(store.client, "lobby", 0)
    put_state(store.client, "lobby", 1)
    client = ClientDriver(cfg, store=store)
    uids = [f"u{i}" for i in range(100)]
    results: list[dict[str, int]] = []

    def work(order: list[str]) -> None:
        results.append({uid: client.compute_linked_pod(NS, uid, "lobby") for uid in order})

    threads = [threading.Thread(target=work, args=(uids[::step],)) for step in (1, -1, 1, -1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4
    truth = store.batch_get(NS, uids, "lobby")
    assert all(r == truth for r in results)


@pytest.mark.parametrize(
    "method,args",
    [
        ("compute_linked_pod", ("prod", "u", "lobby")),
        ("get_linked_pod", ("prod", "u", "lobby")),
        ("get_linked_pod_not_cache", ("prod", "u", "lobby")),
        ("get_linked_pod_in_cache_or_if_persist", ("prod", "u", "lobby")),
        ("get_linked_in_cache", ("prod", "u", "lobby")),
        ("batch_get_linked_pod", ("prod", ["u"], "lobby")),
        ("links_of", ("prod", "u")),
        ("get_link_service", ("prod", "u")),
        ("resolve_tag", ("prod", "lobby")),
        ("set_linked_pod_if_absent", ("prod", "u", "lobby", 1)),
        ("set_cache", ("prod", "u", "lobby", 1)),
        ("cache_expired", ("prod", "u", "lobby")),
    ],
)
def test_every_method_refuses_another_namespace(client, store, method, args):
    put_state(store.client, "lobby", 0)
    before = all_keys(store.client)
    with pytest.raises(NamespaceMismatch) as info:
        getattr(client, method)(*args)
    assert info.value.exit_code == 2 and "'prod'" in str(info.value) and "'default'" in str(info.value)
    assert all_keys(store.client) == before


# --- bad input writes nothing (checked on the real server) -------------------------------------------


@pytest.mark.realserver
def test_bad_input_writes_nothing(real_url, redis_server, tmp_path):
    from stroute import config as config_module

    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("state:\n  period: [\n")
    cfg = Config().with_overrides(**{"redis.url": real_url, "state.expire": 60, "state.period": 1})
    store = cfg.open_store()
    raw = redis_server.client()
    counter = CommandCounter(raw)
    client = ClientDriver(cfg, store=store)
    server = ServerDriver("lobby", 1, cfg, store=store)
    put_state(raw, "lobby", 0)
    store.set(NS, "seed", "lobby", 0)
    bad: list[tuple[str, object, object]] = [
        # (what, call, value the message must name)
        ("namespace ':'", lambda: client.compute_linked_pod("a:b", "u", "lobby"), "a:b"),
        ("service ':'", lambda: client.place("u", "lob:by"), "lob:by"),
        ("service 64", lambda: client.place("u", "s" * 64), "s" * 64),
        ("service empty", lambda: client.place("u", ""), "''"),
        ("uid {", lambda: client.place("u{1", "lobby"), "u{1"),
        ("uid }", lambda: client.place("u}1", "lobby"), "u}1"),
        ("uid space", lambda: client.place("u 1", "lobby"), "u 1"),
        ("uid tab", lambda: client.place("u\t1", "lobby"), r"u\t1"),
        ("uid control", lambda: client.place("u\x01", "lobby"), r"u\x01"),
        ("uid 257", lambda: client.place("u" * 257, "lobby"), "u" * 60),
        ("uid empty", lambda: client.place("", "lobby"), "''"),
        ("uid int", lambda: client.place(42, "lobby"), "42"),
        ("persist uid", lambda: client.compute_linked_pod(NS, "a b", "lobby", persist=True), "a b"),
        ("batch uid", lambda: client.batch_get_linked_pod(NS, ["ok", "b{ad"], "lobby"), "b{ad"),
        ("if-absent pod -1", lambda: client.set_linked_pod_if_absent(NS, "u", "lobby", -1), "-1"),
        ("set pod 65536", lambda: server.set_linked_pod(NS, "u", "lobby", 65536), "65536"),
        ("set pod 'x'", lambda: server.set_linked_pod(NS, "u", "lobby", "x"), "'x'"),
        ("set pod True", lambda: server.set_linked_pod(NS, "u", "lobby", True), "True"),
        ("set ttl 0", lambda: server.set_linked_pod(NS, "u", "lobby", 1, ttl=0), "0"),
        ("set ttl -3", lambda: server.set_linked_pod(NS, "u", "lobby", 1, ttl=-3), "-3"),
        ("try-set ttl nan", lambda: server.try_set_linked_pod(NS, "u", "lobby", 1, ttl=float("nan")), "nan"),
        ("remove after 0", lambda: server.remove_linked_pod(NS, "seed", "lobby", after=0), "0"),
        ("remove after -1", lambda: server.remove_linked_pod(NS, "seed", "lobby", after=-1), "-1"),
        ("fence pod -1", lambda: server.remove_linked_pod_with_id(NS, "seed", "lobby", -1), "-1"),
        ("store ttl_ms 0", lambda: store.set(NS, "u", "lobby", 1, 0), "0"),
        ("load -1", lambda: server.set_load_state(-1), "-1"),
        ("routing state", lambda: server.set_routing_state("ASLEEP"), "ASLEEP"),
        ("server namespace", lambda: server.set_linked_pod("prod", "u", "lobby"), "prod"),
        ("server pod", lambda: ServerDriver("lobby", 65536, cfg, store=store), "65536"),
        ("server service", lambda: ServerDriver("lob by", 0, cfg, store=store), "lob by"),
        ("strategy", lambda: ClientDriver(cfg.with_overrides(**{"placement.strategy": "best"}), store=store), "best"),
        ("config key", lambda: cfg.with_overrides(**{"state.perod": 1}), "state.perod"),
        ("config type", lambda: cfg.with_overrides(**{"state.period": "often"}), "often"),
        ("config yaml", lambda: config_module.load(bad_yaml, env={}), "bad.yaml"),
    ]
    before = all_keys(raw)
    counter.reset()
    for what, call, shown in bad:
        with pytest.raises(InvalidInput) as info:
            call()
        assert info.value.exit_code == 2, what
        assert str(shown) in str(info.value), f"{what}: {info.value}"
    assert counter.counts() == {}, "a bad input reached Redis"
    assert all_keys(raw) == before
    assert isinstance(ConfigError("x"), InvalidInput)
    store.close()
    raw.close()


def test_driver_from_config_only(cfg, store):
    put_state(store.client, "lobby", 0)
    with ClientDriver(cfg) as client:  # opens (and closes) its own store
        assert client.compute_linked_pod(NS, "u", "lobby") == 0
        assert client.store.get(NS, "u", "lobby").pod == 0
    assert client.config.placement.strategy == "p2c"
    assert client.snapshot("lobby").pods[0].state is RoutingState.READY
