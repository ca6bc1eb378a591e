"""What `pods`, `top` and `doctor` show from P:{ns:state:svc}:notes: the reason a
pod publishes what it does, and a pod whose epoch keeps changing."""

from __future__ import annotations

import pytest

from ops_support import cli, cli_json, isolated  # noqa: F401
from stroute.podstate import EPOCH_HISTORY, RoutingState, parse_notes

pytestmark = pytest.mark.usefixtures("isolated")

READY, DRAINING = RoutingState.READY, RoutingState.DRAINING


def publish(store, pod, epoch, state=READY, reason=False, service="lobby"):
    published = store.publish_state("default", service, pod, load=1, state=state, epoch=epoch, expire_ms=60_000,
                                    claim="force", reason=reason)
    assert published.written


def rows(url, command=("pods", "-s", "lobby")):
    code, data, stderr = cli_json("--redis-url", url, *command)
    assert code == 0, stderr
    return {row["pod"]: row for row in data["pods"]}


def test_reason_shown_in_json_and_table(url, store):
    publish(store, 0, 1000)
    publish(store, 1, 2000, state=DRAINING, reason="no load yet: cannot read load file '/x': No such file")
    publish(store, 2, 3000, reason="load source failing: \x1b[31m[bold]red")
    by_pod = rows(url)
    assert by_pod[0]["reason"] is None and not by_pod[0]["flapping"] and by_pod[0]["recent_epochs"] == 1
    assert by_pod[1]["reason"] == "no load yet: cannot read load file '/x': No such file"
    table = cli("--redis-url", url, "pods", "-s", "lobby").stderr  # the notes: in a pipe, on stderr
    assert "pod 1 of lobby (DRAINING): no load yet: cannot read load file '/x': No such file" in table
    # What a pod wrote is shown, not interpreted: no terminal escape, no Rich markup.
    assert "\x1b" not in table and "\\x1b[31m[bold]red" in table
    # The note goes when the pod publishes without a reason.
    publish(store, 1, 2000, reason=None)
    assert rows(url)[1]["reason"] is None
    assert "pod 1 of lobby" not in cli("--redis-url", url, "pods", "-s", "lobby").stderr
    top = cli_json("--redis-url", url, "top")[1]
    assert top["services"][0]["pods"][2]["reason"].startswith("load source failing")


def test_a_pod_whose_epoch_keeps_changing(url, store):
    publish(store, 0, 1000)
    publish(store, 1, 500)
    for epoch in (2000, 3000):  # two instances taking pod 0 in turn: A, B, A
        publish(store, 0, epoch)
    publish(store, 0, 1000)
    publish(store, 0, 1000)  # the same epoch again is no change
    by_pod = rows(url)
    assert (by_pod[0]["recent_epochs"], by_pod[0]["flapping"]) == (4, True)
    assert (by_pod[1]["recent_epochs"], by_pod[1]["flapping"]) == (1, False)
    table = cli("--redis-url", url, "pods", "-s", "lobby").stderr  # the notes: in a pipe, on stderr
    assert "pod 0 of lobby: 4 epochs in the last 10 min (restarting, or two instances taking it in turn)" in table
    code, data, _ = cli_json("--redis-url", url, "doctor")
    check = next(c for c in data["checks"] if c["name"] == "service:lobby")
    assert check["status"] == "WARN"
    assert "pod 0's epoch keeps changing: 4 epochs in the last 10 min" in check["detail"]
    # The history is bounded.
    for epoch in range(10_000, 10_000 + 3 * EPOCH_HISTORY):
        publish(store, 0, epoch)
    raw = store.client.hget("sf:{default:state:lobby}:notes", "0:epochs")
    assert raw.count(",") == EPOCH_HISTORY - 1


def test_forget_removes_the_notes(url, store):
    publish(store, 3, 1000, state=RoutingState.DOWN, reason="stopped")
    assert store.remove_state("default", "lobby", 3)
    assert store.pod_notes("default", "lobby") == {}


def test_parse_notes_skips_what_it_cannot_read():
    notes = parse_notes({"1:reason": "x", "1:epochs": "5:6,bad,7:8", "x:reason": "y", "2:other": "z",
                         "3:epochs": ""})
    assert sorted(notes) == [1, 3]
    assert notes[1].reason == "x" and notes[1].epochs == ((5, 6), (7, 8))
    assert notes[3].epochs == () and not notes[3].flapping(10)


def test_wrong_typed_notes_and_control_keys_never_stop_a_heartbeat(url, store):
    """Keys stroute did not write beside the state hash: heartbeats still land, pods still answers."""
    from stroute.config import Config
    from stroute.server import ServerDriver

    store.client.set("sf:{default:state:lobby}:notes", "junk")
    config = Config().with_overrides(**{"redis.url": url, "state.expire": 60})
    for pod in (0, 1):
        server = ServerDriver("lobby", pod, config, store=store)
        server.set_load_state(4)
        server.set_routing_state("DRAINING", reason="a reason that cannot be noted")
        assert server.publish().written
    by_pod = rows(url)
    assert by_pod[0]["state"] == "DRAINING" and by_pod[1]["reason"] is None
    assert store.client.get("sf:{default:state:lobby}:notes") == "junk"  # left as it was
    # A control hash of the wrong type: the heartbeat (pod 0 reads the whole hash
    # for its summary) still lands, read as no cordon.
    store.client.set("sf:{default:state:lobby}:ctl", "junk")
    for pod in (1, 0):  # pod 0 last: its summary sees both READY
        server = ServerDriver("lobby", pod, config.with_overrides(**{"state.expire": 60}), store=store)
        server.set_load_state(5)
        published = server.publish()
        assert published.written and not published.cordoned
        assert store.client.hget("sf:{default:state:lobby}", str(pod)).startswith("5-")
    assert store.workload("default", "lobby") == "READY"
