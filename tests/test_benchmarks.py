"""The benchmark package keeps working, and its deterministic figures hold.

Timings are not tested here (they belong to `python -m benchmarks`); round
trips and command counts are, on the session's real redis-server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness import count_round_trips
from stroute.client import ClientDriver
from stroute.config import Config
from stroute.server import ServerDriver

pytestmark = pytest.mark.realserver

ROOT = Path(__file__).resolve().parent.parent


def _config(url: str) -> Config:
    return Config().with_overrides(**{"redis.url": url, "state.refresh": 3600, "state.expire": 3600})


def test_a_batch_read_a_batch_placement_and_a_heartbeat_are_one_round_trip_each(real_url, redis_server):
    raw = redis_server.client()
    raw.mset({f"sf:{{default:lk:u{i}}}lobby": i % 3 for i in range(0, 25_000, 2)})
    config = _config(real_url)
    with ClientDriver(config) as client:
        server = ServerDriver("lobby", 1, config, store=client.store)
        server.set_load_state(5)
        server.publish()  # the first heartbeat also loads the script
        assert count_round_trips(client.store, server.publish) == 1

        uids = [f"u{i}" for i in range(25_000)]
        found = []
        assert count_round_trips(client.store, lambda: found.append(client.batch_get_linked_pod("default", uids, "lobby"))) == 1
        assert len(found[0].missing) == 12_500

        client.place_many(["warm"], "lobby")  # loads the placement script once per store
        placed = {}
        assert count_round_trips(client.store, lambda: placed.update(client.place_many([f"n{i}" for i in range(500)], "lobby"))) == 1
        assert {p.pod for p in placed.values()} == {1} and len(placed) == 500
    raw.close()


def test_a_listing_is_one_round_trip_per_scan_page(real_url, redis_server):
    """A page's MGET and PTTLs go in one write with the next page's SCAN."""
    raw = redis_server.client()
    raw.mset({f"sf:{{default:lk:u{i}}}lobby": i % 3 for i in range(5_000)})
    with ClientDriver(_config(real_url)) as client:
        scans = raw.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)
        links = []
        trips = count_round_trips(client.store, lambda: links.extend(client.store.scan_links("default", count=500)))
        scans = raw.info("commandstats")["cmdstat_scan"]["calls"] - scans
    assert len(links) == 5_000 and scans >= 5
    assert scans <= trips <= scans + 1  # the last page's reads may follow the last SCAN on their own
    raw.close()


def test_the_benchmarks_run_and_write_their_keys(real_url, tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "memory", "--only", "heartbeat", "--json", str(out)],
        cwd=ROOT, env={**os.environ, "STROUTE_BENCH_REDIS_URL": real_url},
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    figures = json.loads(out.read_text())
    assert figures["quick"] is True
    assert 0 < figures["bytes_per_link"]["temporary"] < figures["bytes_per_link"]["persistent"]
    assert 1 <= figures["serve_commands_per_heartbeat"] <= 3
    assert "serve_commands_per_heartbeat" in run.stdout and "bytes_per_link" in run.stdout


def test_an_unknown_figure_is_refused():
    run = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "compute_cold"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "invalid choice: 'compute_cold'" in run.stderr


def test_invalidation_messages_per_write_are_counted_per_gateway(real_url, tmp_path):
    # Default-mode tracking: a gateway hears of a write only to a link it read since the last write.
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "invalidations_per_write", "--json", str(out)],
        cwd=ROOT, env={**os.environ, "STROUTE_BENCH_REDIS_URL": real_url},
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    per_write = json.loads(out.read_text())["invalidations_per_write"]
    assert per_write["cached"] == 1.0 and per_write["not_cached"] == 0.0
    assert per_write["all_gateways_cached_by_all"] == 4.0
    assert per_write["all_gateways_cached_by_one"] == 1.0
    assert per_write["all_gateways_written_again_unread"] == 0.0
    # A lookup that misses the cache writes nothing while more than half the TTL is left.
    assert per_write["all_gateways_placement_on_gateway_0"] == 0.0
    assert per_write["all_gateways_batch_read_by_gateway_0"] == 0.0  # batch reads opt out of tracking
    assert per_write["broadcast_cached"] == per_write["broadcast_not_cached"] == 4.0
    assert "invalidations_per_write" in run.stdout and "cache flushes" not in run.stdout
