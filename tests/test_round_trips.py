"""Commands per heartbeat and per batch, from the real server's own counters,
and recovery when Redis has forgotten the scripts (restart, SCRIPT FLUSH)."""

from __future__ import annotations

from stroute.client import ClientDriver
from stroute.config import Config
from stroute.podstate import RoutingState
from stroute.server import ServerDriver

from support import CommandCounter, put_state

# Redis counts the commands a script runs inside itself too.
PUBLISH_INSIDE = {"time": 1, "hset": 1, "hget": 1}


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
        # Every tenth heartbeat re-registers the service (SADD).
        assert counter.counts() == {"evalsha": 20, "sadd": 2, **{k: 20 * v for k, v in PUBLISH_INSIDE.items()}}

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
