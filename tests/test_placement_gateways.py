"""Placement with many gateways (the live gateway count) and slow start.

The gateways are real processes (`python -m benchmarks.gateways`), each with
its own ClientDriver, against the session's real redis-server or Cluster.
Slow start is driven by the client driver's injectable clock: the snapshot
is read once (state.refresh an hour), and the clock then moves through the
window without waiting.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter

import pytest

from benchmarks.gateways import SKEWED, Gateways, balance
from stroute import placement
from stroute.cli.app import app
from stroute.client import ClientDriver
from stroute.config import Config
from stroute.podstate import PodView, RoutingState, Snapshot

from support import wait_until

NS = "default"
READY = RoutingState.READY
HOUR_MS = 3_600_000


def _publish(store, loads: list[int], service: str = "game", epochs: dict[int, int] | None = None) -> None:
    """One heartbeat per pod; pods in `epochs` carry that epoch (their slow-start window starts now)."""
    for pod, load in enumerate(loads):
        store.publish_state(NS, service, pod, load=load, state=READY, epoch=(epochs or {}).get(pod),
                            expire_ms=HOUR_MS, claim="force")


def _config(url: str, **overrides) -> Config:
    return Config().with_overrides(**{"redis.url": url, "redis.socket_timeout": 5, "state.refresh": 3600,
                                      "state.expire": 3600, **overrides})


# --- many gateways --------------------------------------------------------------------------


@pytest.mark.realserver
@pytest.mark.parametrize("where", ["real", pytest.param("cluster", marks=pytest.mark.cluster)])
def test_gateway_processes_spread_a_burst_over_a_new_pod_as_one_gateway_would(where, request):
    # Without the gateway count each of the four would send pod 0 about 140
    # of its 500 users (max/mean near 1.9); with it, pod 0 gets its fair part.
    url = request.getfixturevalue("real_url" if where == "real" else "cluster_url")
    store = _config(url).open_store()
    _publish(store, SKEWED)
    with Gateways(url, 4, service="game") as gateways:
        placed, seen = gateways.burst("game", 2000, "u")
    assert seen == [4, 4, 4, 4]
    assert sum(placed.values()) == 2000
    assert balance(SKEWED, placed) <= 1.10, placed
    # Every gateway registered under the service's state hash tag (one slot on a Cluster).
    ks = store.keys(NS)
    assert store.client.zcard(ks.gateways("game")) == 0  # each one left the count when it closed
    store.close()


@pytest.mark.realserver
def test_a_gateway_that_dies_leaves_the_count_within_the_gateway_expiry(real_url):
    refresh = 0.2
    expire_s = placement.gateway_expire_ms(refresh) / 1000
    assert expire_s == 1.0  # 3 x state.refresh, at least 1 s
    store = _config(real_url).open_store()
    _publish(store, [10, 10])
    with ClientDriver(_config(real_url, **{"state.refresh": refresh}), coherent=False) as me, \
            Gateways(real_url, 1, service="game", env={"STROUTE_STATE_REFRESH": str(refresh)}) as gateways:
        proc = gateways.procs[0]
        # While it places users it stays counted, past the expiry.
        until = time.monotonic() + 2 * expire_s
        rounds = 0
        while time.monotonic() < until:
            gateways.burst("game", 5, f"r{rounds}-")
            rounds += 1
            assert me.snapshot("game", refresh=True).gateways == 2
        os.kill(proc.pid, signal.SIGKILL)  # no close(): only the expiry takes it out
        proc.wait()
        killed = time.monotonic()
        wait_until(lambda: me.snapshot("game", refresh=True).gateways == 1, timeout=expire_s + 5,
                   what="the dead gateway leaves the count")
        assert time.monotonic() - killed <= expire_s + 2.0  # the expiry, and slack for a busy machine
    store.close()


@pytest.mark.realserver
def test_a_gateway_that_closes_leaves_the_count_at_once(real_url):
    store = _config(real_url).open_store()
    _publish(store, [10, 10])
    with ClientDriver(_config(real_url), coherent=False) as me:
        gateways = Gateways(real_url, 2, service="game")
        with gateways:
            assert me.snapshot("game", refresh=True).gateways == 3
            proc = gateways.procs[0]
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            assert proc.wait(timeout=30) == 0
            assert me.snapshot("game", refresh=True).gateways == 2  # no expiry to wait for
    store.close()


def test_each_placement_counts_once_per_live_gateway(url):
    config = _config(url)
    with ClientDriver(config, coherent=False) as a, ClientDriver(config, coherent=False) as b:
        _publish(a.store, [0, 0])
        a.snapshot("game")
        b.snapshot("game")
        placed = a.place("u1", "game")
        assert a._views["game"].placed == Counter({placed.pod: 1})  # a read before b registered
        a.snapshot("game", refresh=True)
        placed = a.place("u2", "game")
        assert a._views["game"].placed[placed.pod] >= 2
        explained = a.explain_place("u3", "game")
        assert explained.gateways == 2
    with ClientDriver(config, coherent=False) as c:
        assert c.snapshot("game").gateways == 1  # a and b left when they closed


def test_a_reader_that_places_nothing_is_not_a_gateway(url):
    config = _config(url)
    store = config.open_store()
    _publish(store, [0])
    snap = store.snapshot(NS, "game", expire_ms=HOUR_MS)
    assert snap.gateways == 0
    assert store.client.exists(store.keys(NS).gateways("game")) == 0
    store.close()


# --- slow start -------------------------------------------------------------------------------


def _snap(since: dict[int, int], pods: int = 3, now_ms: int = 1_000_000) -> Snapshot:
    views = {p: PodView(p, 0, now_ms, READY, 1 if p in since else None, False, False, 0) for p in range(pods)}
    return Snapshot("game", now_ms, views, (), since)


def test_the_slow_start_weight_rises_linearly_from_one_percent_and_ends_with_the_window():
    window = 60_000
    snap = _snap({0: 1_000_000})
    at = lambda age: placement.slow_start(snap, 1_000_000 + age, window)  # noqa: E731
    assert at(0)[0].weight == placement.SLOW_START_MIN_WEIGHT and at(0)[0].remaining_ms == window
    assert at(15_000)[0].weight == 0.25 and at(15_000)[0].remaining_ms == 45_000
    assert at(45_000)[0].weight == 0.75
    assert at(window) == {}  # over: a warm pod
    assert placement.slow_start(snap, 1_000_000, 0) == {}  # placement.slow_start 0: off
    assert placement.slow_start(_snap({}), 1_000_000, window) == {}  # no epoch: when it came up is unknown


def test_a_pod_in_slow_start_is_drawable_in_proportion_to_its_weight():
    snap = _snap({0: 1_000_000}, pods=10)
    warming = placement.slow_start(snap, 1_000_000 + 15_000, 60_000)
    rng = random.Random(5)
    kept = sum(snap.pods[0] in placement.admit(snap.routable(), warming, rng.random) for _ in range(20_000))
    assert 0.23 <= kept / 20_000 <= 0.27
    # Every pod warming up alike (a fresh deployment): relative weights are equal, nobody is left out.
    fresh = _snap({p: 1_000_000 for p in range(10)}, pods=10)
    warming = placement.slow_start(fresh, 1_000_000 + 15_000, 60_000)
    assert all(len(placement.admit(fresh.routable(), warming, rng.random)) == 10 for _ in range(100))


def test_slow_start_ramps_a_new_pods_share_of_new_users(url):
    window = 100.0
    store = _config(url).open_store()
    # Pod 0 just started, at load 0; pods 1-9 are warm and far busier, so pod 0
    # wins every draw it is in, during the window and after it.
    _publish(store, [0] + [1000] * 9, epochs={0: 1})
    store.close()
    now = [0.0]
    shares = []
    with ClientDriver(_config(url, **{"placement.slow_start": window}), clock=lambda: now[0],
                      coherent=False) as client:
        for tenth in range(10):
            new = 0
            for start in range(0, 1000, 50):
                now[0] = (tenth + start / 1000) * window / 10
                placed = client.place_many([f"s{tenth}-{i}" for i in range(start, start + 50)], "game")
                new += sum(p.pod == 0 for p in placed.values())
            shares.append(new / 1000)
        now[0] = 1.5 * window  # past the window: plain p2c, and pod 0 is still the least loaded
        after = client.place_many([f"after-{i}" for i in range(1000)], "game")
    assert shares[0] < 0.03, shares
    assert sum(shares[:3]) < sum(shares[3:7]) * 3 / 4 < sum(shares[7:]), shares
    assert shares[9] > 0.14, shares
    assert sum(p.pod == 0 for p in after.values()) / 1000 > 0.15


def test_without_slow_start_a_new_pod_at_load_zero_takes_its_p2c_share_at_once(url):
    store = _config(url).open_store()
    _publish(store, [0] + [1000] * 9, epochs={0: 1})
    store.close()
    with ClientDriver(_config(url), coherent=False) as client:
        placed = client.place_many([f"u{i}" for i in range(1000)], "game")
    assert sum(p.pod == 0 for p in placed.values()) / 1000 > 0.15  # p2c's 2/N = 0.2: it wins every draw it is in


def test_slow_start_leaves_hash_placement_alone(url):
    store = _config(url).open_store()
    _publish(store, [0, 0, 0], epochs={0: 1})
    store.close()
    uids = [f"u{i}" for i in range(300)]
    with ClientDriver(_config(url, **{"placement.strategy": "hash", "placement.slow_start": 600}),
                      coherent=False) as client:
        placed = client.place_many(uids, "game")
        routable = client.snapshot("game").routable()
    want = placement.RendezvousHash()
    assert all(placed[u].pod == want.choose(u, routable, {}).pod for u in uids)
    assert sum(p.pod == 0 for p in placed.values()) > 60


@pytest.mark.realserver
def test_a_new_epoch_starts_a_new_window(real_url):
    store = _config(real_url).open_store()
    _publish(store, [0], epochs={0: 1})
    first = store.snapshot(NS, "game", expire_ms=HOUR_MS)
    _publish(store, [0], epochs={0: 1})  # a heartbeat of the same incarnation
    assert store.snapshot(NS, "game", expire_ms=HOUR_MS).since == first.since
    wait_until(lambda: store.snapshot(NS, "game", expire_ms=HOUR_MS).now_ms > first.since[0], what="Redis ms")
    _publish(store, [0], epochs={0: 2})  # restarted
    again = store.snapshot(NS, "game", expire_ms=HOUR_MS)
    assert again.since[0] > first.since[0]
    _publish(store, [0])  # an original driver's field names no epoch: no window
    assert store.snapshot(NS, "game", expire_ms=HOUR_MS).since == {}
    store.close()


@pytest.mark.realserver
def test_pods_and_place_explain_show_the_window(real_url):
    from typer.testing import CliRunner

    store = _config(real_url).open_store()
    _publish(store, [0, 100, 100], epochs={0: 1})
    store.close()
    env = {"STROUTE_REDIS_URL": real_url, "STROUTE_PLACEMENT_SLOW_START": "600"}
    result = CliRunner().invoke(app, ["-o", "json", "pods", "-s", "game"], env=env)
    assert result.exit_code == 0, result.stderr
    rows = {row["pod"]: row for row in json.loads(result.stdout)["pods"]}
    assert rows[1]["slow_start"] is None and rows[2]["slow_start"] is None
    assert 0 < rows[0]["slow_start"]["weight"] < 0.05
    assert 590_000 < rows[0]["slow_start"]["remaining_ms"] <= 600_000
    result = CliRunner().invoke(app, ["pods", "-s", "game"], env=env)
    assert "pod 0 of game: slow start, weight 0.0" in result.output + result.stderr
    result = CliRunner().invoke(app, ["-o", "json", "place", "-s", "game", "--explain", "u1"], env=env)
    assert result.exit_code == 0, result.stderr
    explain = json.loads(result.stdout)["explain"]
    assert explain["gateways"] == 1
    assert explain["pods"][0]["slow_start"]["remaining_ms"] > 590_000
    assert set(explain["left_out"]) <= {0}
    result = CliRunner().invoke(app, ["-o", "json", "pods", "-s", "game"],
                                env={**env, "STROUTE_PLACEMENT_SLOW_START": "0"})
    assert all(row["slow_start"] is None for row in json.loads(result.stdout)["pods"])


@pytest.mark.parametrize("value", [-1, 86401])
def test_a_slow_start_out_of_range_is_refused_naming_the_key(value):
    from stroute.config import validate
    from stroute.errors import ConfigError

    with pytest.raises(ConfigError, match=r"placement\.slow_start .*must be 0 \(off\) to 86400 seconds"):
        validate(Config().with_overrides(**{"placement.slow_start": value}))
