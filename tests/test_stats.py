"""ClientDriver.stats(): placement outcome counters, and `place --explain` showing them."""

from __future__ import annotations

import json
import threading

import pytest
from typer.testing import CliRunner

from stroute.store import domain
from stroute.cli.app import app
from stroute.client import OUTCOMES, ClientDriver
from stroute.errors import Conflict, NoAvailablePod, PodUnavailable
from stroute.podstate import RoutingState
from support import put_state

STALE_MS = 10_000  # the config fixture's expiry is 1 s


def zero(**counts):
    return {**dict.fromkeys(OUTCOMES, 0), **counts}


def outcomes(stats):
    return {key: stats[key] for key in OUTCOMES}


@pytest.fixture
def client(config, store):
    put_state(store.client, "game", 0, load=1)
    put_state(store.client, "game", 1, load=2)
    with ClientDriver(config.with_overrides(**{"state.refresh": 60}), store=store) as driver:
        assert driver.wait_coherent()
        yield driver


def test_starts_at_zero_with_every_outcome(client):
    assert outcomes(client.stats()) == zero()
    assert list(client.stats()) == ["cache", "existing", "new", "moved", "no_capacity", "contention",
                                    "invalidations", "cache_flushes", "untrusted_seconds"]


def test_new_cache_and_existing(config, store, client):
    assert client.place("u1", "game").source == "new"
    assert client.place("u1", "game").source == "cache"
    assert client.compute_linked_pod("default", "u1", "game") in (0, 1)  # cache again
    with ClientDriver(config, store=store) as other:
        assert other.place("u1", "game").source == "existing"
        assert outcomes(other.stats()) == zero(existing=1)
    assert outcomes(client.stats()) == zero(new=1, cache=2)


def test_moved(store, client):
    put_state(store.client, "game", 5, age_ms=STALE_MS)
    store.set("default", "u", "game", 5, 60_000)  # a temporary link to a dead pod
    assert client.place("u", "game").source == "moved"
    assert outcomes(client.stats()) == zero(moved=1)


def test_no_capacity(store, client):
    with pytest.raises(NoAvailablePod):
        client.place("u", "lobby")  # no pod at all
    put_state(store.client, "game", 5, age_ms=STALE_MS)
    store.set("default", "p", "game", 5)  # persistent link to a dead pod
    with pytest.raises(PodUnavailable):
        client.place("p", "game")
    assert outcomes(client.stats()) == zero(no_capacity=2)


def test_contention(config, store):
    put_state(store.client, "game", 0)
    put_state(store.client, "game", 5, age_ms=STALE_MS)
    store.set("default", "u", "game", 5, 60_000)

    class Racing:
        """Every compare-and-set loses: another writer keeps changing the link."""

        def __getattr__(self, name):
            return getattr(store, name)

        def run(self, op):
            def execute(step):
                if isinstance(step, domain.Command) and step.script == "link_move":
                    return [0, None]  # moved: no; the link in force: none readable
                return store._execute(step)

            return domain.run(op, execute)

    with ClientDriver(config, store=Racing()) as driver:
        with pytest.raises(Conflict):
            driver.place("u", "game")
        assert outcomes(driver.stats()) == zero(contention=1)


def test_place_many_counts_each_uid(store, client):
    client.place("a", "game")
    results = client.place_many(["a", "b", "c"], "game")
    assert [r.source for r in results.values()] == ["cache", "new", "new"]
    failed = client.place_many(["x", "y"], "lobby")
    assert all(isinstance(r, NoAvailablePod) for r in failed.values())
    assert outcomes(client.stats()) == zero(new=3, cache=1, no_capacity=2)


def test_explain_place_counts(store, client):
    assert client.explain_place("e", "game").placement.source == "new"
    assert isinstance(client.explain_place("e", "lobby").error, NoAvailablePod)  # lobby: no pod
    assert outcomes(client.stats()) == zero(new=1, no_capacity=1)


def test_stats_is_a_copy(client):
    client.stats()["new"] = 99
    assert client.stats()["new"] == 0


def test_counts_are_exact_across_threads(client):
    def work(n):
        for i in range(100):
            client.place(f"t{n}-{i % 50}", "game")  # 50 new, then 50 cache hits

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes(client.stats()) == zero(new=400, cache=400)


def test_down_pod_link_without_routable_pods(store, config):
    put_state(store.client, "game", 0, state=RoutingState.DRAINING)
    store.set("default", "u", "game", 0, 60_000)
    with ClientDriver(config, store=store) as driver:
        assert driver.place("u", "game").source == "existing"  # DRAINING still serves its users
        with pytest.raises(NoAvailablePod):
            driver.place("v", "game")
        assert outcomes(driver.stats()) == zero(existing=1, no_capacity=1)


# --- place --explain ---------------------------------------------------------------------------


def test_place_explain_shows_the_counters(url, store):
    put_state(store.client, "game", 0, load=3)
    runner = CliRunner()
    result = runner.invoke(app, ["--redis-url", url, "-o", "json", "place", "-s", "game", "--explain", "u1"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert outcomes(data["explain"]["stats"]) == zero(new=1)
    assert data["explain"]["cache"] == "local"  # a one-shot command opens no invalidation channel
    result = runner.invoke(app, ["--redis-url", url, "place", "-s", "game", "--explain", "u1"])
    assert ("client outcomes: cache 0, existing 1, new 0, moved 0, no capacity 0, contention 0"
            in result.stdout)
    result = runner.invoke(app, ["--redis-url", url, "-o", "json", "place", "-s", "lobby", "--explain", "u1"])
    assert result.exit_code == 5
    assert outcomes(json.loads(result.stdout)["explain"]["stats"]) == zero(no_capacity=1)
