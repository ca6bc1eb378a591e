"""What the original drivers write, read by every stroute command; what stroute writes, read by the originals.

The keys and values are written with the raw commands of tests/originals.py
(the originals' formats and script argument order), on a real redis-server:
pod 0, persistent and temporary links, a delayed removal, Go's literal
`state` field and JSON link, Go's workload key, Java's EXPIRE -1 on an
upgrade, and a homo-java namespace with its three parts.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from originals import (
    JAVA_LINK_TTL_S, GoReader, GoWriter, JavaReader, JavaWriter, go_link_key, java_index_key, java_link_key,
)
from stroute.cli.app import app
from stroute.podstate import RoutingState

pytestmark = pytest.mark.realserver

GO_NS, JAVA_NS = "default", "app:eu:state"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("STROUTE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def stroute(url: str, layout: str, ns: str, *args: str, input: str | None = None):
    result = CliRunner().invoke(app, ["--redis-url", url, "--layout", layout, "-n", ns, *args], input=input,
                                env={"STROUTE_STATE_REFRESH": "0"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"stroute {' '.join(args)} raised {result.exception!r}\n{result.stderr}")
    return result


def stroute_json(url, layout, ns, *args, input=None):
    result = stroute(url, layout, ns, "-o", "json", *args, input=input)
    out = result.stdout.strip()
    data = json.loads(out) if out.startswith("{") else [json.loads(line) for line in out.splitlines() if line]
    return result.exit_code, data, result.stderr


# --- homo-go --------------------------------------------------------------------------------------------


@pytest.fixture
def go_fleet(real_url, redis_server, isolated):
    """Service game: pod 0 and 3 published by stroute (READY), pods 1 and 2 by Go's server driver;
    service chat: Go's pods only, with its workload key. Links written by Go's scripts."""
    client = redis_server.client()
    go = GoWriter(client, GO_NS)
    for pod in (1, 2):
        go.publish_state("game", pod)
        go.publish_state("chat", pod)
    assert go.publish_workload("chat", 2) == "Normal"
    assert go.publish_workload("game", 0) == "Idle"
    assert go.set_link("u0", "game", 0, -1) == -1  # pod 0, persistent
    assert go.set_link("u1", "game", 1, 300) == -1  # temporary, to Go's pod 1
    assert go.set_link("u2", "game", 3, -1) == -1
    assert go.remove_link("u2", "game", 60)  # a delayed removal: Go deletes at once
    go.set_link_json("uj", "game", 3, 300, 1_700_000_000)  # the shipped set-link script: JSON
    for pod in (0, 3):
        assert stroute(real_url, "homo-go", GO_NS, "serve", "-s", "game", "--pod", str(pod), "--load", "1",
                       "--once").exit_code == 0
    yield client
    client.close()


def test_go_commands_read_what_go_wrote(go_fleet, real_url):
    code, top, err = stroute_json(real_url, "homo-go", GO_NS, "top")
    assert code == 0, err
    services = {s["service"]: s for s in top["services"]}
    assert set(services) == {"chat", "game"}  # chat is in no registry: found by its state key
    chat = services["chat"]
    assert chat["unparseable"] == [{"pod": 1, "value": "state"}, {"pod": 2, "value": "state"}]
    assert chat["published_workload"] == "Normal" and chat["workload"] == "DOWN"
    # game's pod 0 is stroute's: its summary replaced the Idle Go wrote (stroute's own values are not repeated).
    assert services["game"]["published_workload"] == "DEGRADED"
    assert [p["pod"] for p in services["game"]["pods"] if p["routable"]] == [0, 3]

    table = stroute(real_url, "homo-go", GO_NS, "pods", "-s", "chat")
    assert table.exit_code == 0
    assert table.stdout.count("UNPARSEABLE") == 2 and "'state'" in table.stdout and "DOWN(Normal)" in table.stdout  # columns: no space in a cell

    code, doctor, _ = stroute_json(real_url, "homo-go", GO_NS, "doctor")
    checks = {c["name"]: c for c in doctor["checks"]}
    assert "found by their state keys only" in checks["services"]["detail"] and "chat" in checks["services"]["detail"]
    detail = checks["service:chat"]["detail"]
    assert "pod 1 has an unparseable state field of sf:{default:state:chat}: 'state'" in detail
    assert "writes the literal 'state'" in detail

    code, got, _ = stroute_json(real_url, "homo-go", GO_NS, "link", "get", "u0", "-s", "game")
    assert code == 0 and got["links"][0]["pod"] == 0 and got["links"][0]["persistent"]
    code, got, _ = stroute_json(real_url, "homo-go", GO_NS, "link", "get", "u2", "-s", "game")
    assert code == 3 and got["links"] == []  # Go's delayed removal removed it at once

    # The JSON link is a bad key: reported, every other link listed and exported, exit 7.
    got = stroute(real_url, "homo-go", GO_NS, "link", "get", "uj", "-s", "game")
    assert got.exit_code == 7 and go_link_key(GO_NS, "uj", "game") in got.stderr
    code, listed, err = stroute_json(real_url, "homo-go", GO_NS, "link", "list")
    assert code == 7 and go_link_key(GO_NS, "uj", "game") in err
    rows = listed["links"] if isinstance(listed, dict) else listed
    assert {(r["uid"], r["pod"]) for r in rows} == {("u0", 0), ("u1", 1)}
    exported = stroute(real_url, "homo-go", GO_NS, "export")
    assert exported.exit_code == 7 and "uj" in exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    assert {(r["uid"], r["pod"], r["ttl_s"] is None) for r in lines} == {("u0", 0, True), ("u1", 1, False)}

    # Placement around Go's pods: u0 stays on pod 0, u1 leaves Go's pod 1 (unparseable: dead),
    # new users go to stroute's pods 0 and 3; uj fails alone.
    code, placed, err = stroute_json(real_url, "homo-go", GO_NS, "place", "-s", "game", "u0", "u1", "uj",
                                     *[f"n{i}" for i in range(40)])
    assert code == 7, err
    pods = {row["uid"]: row["pod"] for row in placed["placements"]}
    assert pods["u0"] == 0 and pods["u1"] in (0, 3)
    assert {pods[f"n{i}"] for i in range(40)} == {0, 3}
    assert [row["uid"] for row in placed["failed"]] == ["uj"]


def test_go_reads_what_stroute_wrote(go_fleet, real_url):
    client = go_fleet
    assert stroute(real_url, "homo-go", GO_NS, "link", "set", "s1", "-s", "game", "--pod", "3").exit_code == 0
    assert stroute(real_url, "homo-go", GO_NS, "link", "set", "s0", "-s", "game", "--pod", "0").exit_code == 0
    reader = GoReader(client, GO_NS)
    assert reader.linked_pod("s1", "game") == 3 and reader.cache_valid(3)
    assert reader.linked_pod("s0", "game") == 0 and not reader.cache_valid(0)  # Go's pod-0 bug, not stroute's
    assert client.hgetall(f"sf:{{{GO_NS}:lk:s1}}") == {"game": "3"}  # GetLinkService's map
    assert reader.available("game", 3) and reader.routable("game") == []


# --- homo-java ------------------------------------------------------------------------------------------


@pytest.fixture
def java_fleet(real_url, redis_server, isolated):
    """Service game: stroute's pod 0 (READY), Java's pods 1 (READY, load 3) and 2 (state 0);
    service chat: Java's pods only. Links by Java's scripts."""
    client = redis_server.client()
    java = JavaWriter(client, JAVA_NS)
    java.publish_state("game", 1, 3, 1)
    java.publish_state("game", 2, 0, 0)
    java.publish_state("chat", 0, 7, 1)
    java.publish_state("chat", 1, 9, 1)
    java.set_link("u0", "game", 0, -1)  # pod 0, persistent
    java.set_link("u1", "game", 1, JAVA_LINK_TTL_S)
    java.set_link("u2", "game", 1, -1)
    java.remove_link("u2", "game", 60)  # delayed: the link stays 60 s, the index entry goes
    assert java.set_link_if_absent("u5", "game", 1, JAVA_LINK_TTL_S) == 1
    assert java.set_link_if_absent("u5", "game", 2, -1) == 1  # "make it persistent": EXPIRE -1 deletes it
    assert stroute(real_url, "homo-java", JAVA_NS, "serve", "-s", "game", "--pod", "0", "--load", "1",
                   "--once").exit_code == 0
    yield client
    client.close()


def test_java_commands_read_what_java_wrote(java_fleet, real_url):
    client = java_fleet
    code, top, err = stroute_json(real_url, "homo-java", JAVA_NS, "top")
    assert code == 0, err
    services = {s["service"]: s for s in top["services"]}
    assert set(services) == {"chat", "game"}
    assert {p["pod"]: (p["state"], p["load"]) for p in services["chat"]["pods"]} == {0: ("READY", 7), 1: ("READY", 9)}
    assert {p["pod"]: p["state"] for p in services["game"]["pods"]} == {0: "READY", 1: "READY", 2: "DOWN"}

    code, got, _ = stroute_json(real_url, "homo-java", JAVA_NS, "link", "get", "u0", "-s", "game")
    assert code == 0 and got["links"][0]["pod"] == 0 and got["links"][0]["persistent"]
    code, got, _ = stroute_json(real_url, "homo-java", JAVA_NS, "link", "get", "u2", "-s", "game")
    assert code == 0 and not got["links"][0]["persistent"] and 0 < got["links"][0]["ttl_s"] <= 60
    assert not client.exists(java_index_key(JAVA_NS, "u2"))
    code, got, _ = stroute_json(real_url, "homo-java", JAVA_NS, "link", "get", "u5", "-s", "game")
    assert code == 3  # Java's EXPIRE -1 deleted it

    exported = stroute(real_url, "homo-java", JAVA_NS, "export")
    assert exported.exit_code == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    assert {(r["uid"], r["pod"], r["ttl_s"] is None) for r in lines} == {
        ("u0", 0, True), ("u1", 1, False), ("u2", 1, False)}
    assert {r["namespace"] for r in lines} == {JAVA_NS}

    code, placed, err = stroute_json(real_url, "homo-java", JAVA_NS, "place", "-s", "game", "u0", "u1",
                                     *[f"n{i}" for i in range(60)])
    assert code == 0, err
    pods = {row["uid"]: row["pod"] for row in placed["placements"]}
    assert (pods["u0"], pods["u1"]) == (0, 1)
    assert {pods[f"n{i}"] for i in range(60)} == {0, 1}  # never Java's DOWN pod 2


def test_java_reads_what_stroute_wrote(java_fleet, real_url):
    client = java_fleet
    assert stroute(real_url, "homo-java", JAVA_NS, "link", "set", "s1", "-s", "game", "--pod", "1").exit_code == 0
    code, placed, _ = stroute_json(real_url, "homo-java", JAVA_NS, "place", "-s", "game", "s2")
    assert code == 0
    reader = JavaReader(client, JAVA_NS)
    assert reader.linked_pod("s1", "game") == 1
    assert reader.all_link_service("s1") == {"game": 1}
    assert reader.linked_pod("s2", "game") == placed["placements"][0]["pod"]
    assert client.ttl(java_link_key(JAVA_NS, "s2", "game")) > 0
    # stroute's own pod 0 heartbeat is a pod Java routes to; after a cordon it is not.
    assert reader.update("game") and reader.good["game"] == [0, 1]
    assert stroute(real_url, "homo-java", JAVA_NS, "pod", "cordon", "game", "0").exit_code == 0
    assert reader.update("game") and reader.good["game"] == [1]
    # And a DRAINING heartbeat (serve --once publishes what it is told).
    assert stroute(real_url, "homo-java", JAVA_NS, "pod", "uncordon", "game", "0").exit_code == 0
    from stroute.store import Store

    store = Store.from_url(real_url, layout="homo-java")
    try:
        store.publish_state(JAVA_NS, "game", 0, load=1, state=RoutingState.DRAINING, epoch=None, expire_ms=60_000)
    finally:
        store.close()
    assert reader.update("game") and reader.good["game"] == [1]
