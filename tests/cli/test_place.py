"""`stroute place`: one uid, several, stdin, --persist, --explain, exit codes."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter

import pytest

from link_place_support import (  # noqa: F401
    all_keys,
    bin_env,
    error_lines,
    isolated,
    publish,
    run,
    run_bin,
    run_json,
    stroute_bin,
)
from stroute.testing import free_port

pytestmark = pytest.mark.usefixtures("isolated")

FIELDS = ["schema", "namespace", "service", "placements", "failed"]  # one shape for one uid and for many
PLACEMENT_FIELDS = ["uid", "pod", "source"]


def place(url, *args, input=None, env=None):
    return run_json("--redis-url", url, "place", *args, input=input, env=env)


def only(data: dict) -> dict:
    """The one placement of a one-uid document."""
    (placement,) = data["placements"]
    assert list(placement) == PLACEMENT_FIELDS
    return placement


def pods_of(data: dict) -> dict:
    """uid -> pod of a document's placements, in their order."""
    return {p["uid"]: p["pod"] for p in data["placements"]}


def failed_uids(data: dict) -> list:
    return [f["uid"] for f in data["failed"]]


@pytest.fixture
def three_pods(config, store):
    publish(config, store, "game", {0: 10, 1: 10, 2: 10})


# --- one uid ------------------------------------------------------------------------


def test_place_one_new_user_then_existing(url, store, three_pods):
    code, data, _ = place(url, "-s", "game", "u1")
    assert code == 0
    assert list(data) == FIELDS
    assert data["schema"] == "stroute/place/v1" and data["failed"] == []
    assert data["namespace"] == "default" and data["service"] == "game"
    placed = only(data)
    assert placed["uid"] == "u1" and placed["pod"] in (0, 1, 2) and isinstance(placed["pod"], int)
    assert placed["source"] == "new"
    link = store.get("default", "u1", "game")
    assert link.pod == placed["pod"] and not link.persistent  # temporary by default
    assert 290 <= link.ttl <= 300

    code, again, _ = place(url, "-s", "game", "u1")
    assert (code, only(again)) == (0, {"uid": "u1", "pod": placed["pod"], "source": "existing"})


def test_place_persist_creates_a_persistent_link(url, store, three_pods):
    code, data, _ = place(url, "-s", "game", "--persist", "u1")
    assert code == 0
    assert store.get("default", "u1", "game").persistent
    assert store.links_of("default", "u1") == {"game": only(data)["pod"]}


def test_place_persist_upgrades_a_temporary_link_in_place(url, store, three_pods):
    store.set("default", "u1", "game", 2, ttl_ms=60_000)
    code, data, _ = place(url, "-s", "game", "--persist", "u1")
    assert (code, only(data)["pod"], only(data)["source"]) == (0, 2, "existing")
    assert store.get("default", "u1", "game").persistent


def test_new_users_avoid_draining_down_and_cordoned_pods(url, config, store):
    publish(config, store, "game", {0: 0}, state="DRAINING")
    publish(config, store, "game", {1: 0}, state="DOWN")
    publish(config, store, "game", {2: 0, 3: 50})
    store.set_cordon("default", "game", 2, True)
    code, data, _ = place(url, "-s", "game", *[f"u{i}" for i in range(30)])
    assert code == 0
    assert set(pods_of(data).values()) == {3}


def test_existing_link_to_a_draining_pod_is_honoured(url, config, store):
    publish(config, store, "game", {0: 0}, state="DRAINING")
    publish(config, store, "game", {1: 0})
    store.set("default", "u1", "game", 0)
    code, data, _ = place(url, "-s", "game", "u1")
    assert (code, only(data)["pod"], only(data)["source"]) == (0, 0, "existing")


def test_temporary_link_to_a_dead_pod_is_moved(url, store, three_pods):
    store.set("default", "u1", "game", 9, ttl_ms=60_000)  # pod 9 never published a state
    code, data, _ = place(url, "-s", "game", "u1")
    placed = only(data)
    assert code == 0 and placed["source"] == "moved" and placed["pod"] in (0, 1, 2)
    assert store.get("default", "u1", "game").pod == placed["pod"]


def test_persistent_link_to_a_dead_pod_is_exit_5(url, store, three_pods):
    store.set("default", "u1", "game", 9)
    code, data, err = place(url, "-s", "game", "u1")
    assert code == 5 and data["placements"] == [] and failed_uids(data) == ["u1"]
    assert "pod 9 unavailable" in data["failed"][0]["error"]
    assert "pod 9 unavailable" in error_lines(err)[0]
    assert store.get("default", "u1", "game").pod == 9


def test_no_pod_is_exit_5_and_writes_nothing(url, store):
    before = all_keys(store.client)
    code, data, err = place(url, "-s", "game", "u1")
    assert code == 5 and (data["placements"], failed_uids(data)) == ([], ["u1"])
    lines = error_lines(err)
    assert len(lines) == 1 and "no available pod for service 'game'" in lines[0]
    assert "Traceback" not in err
    assert all_keys(store.client) == before


def test_place_table_output(url, three_pods):
    result = run("--redis-url", url, "place", "-s", "game", "u1")
    assert result.exit_code == 0
    assert "u1" in result.stdout and "new" in result.stdout


# --- several uids and stdin -------------------------------------------------------------


def test_place_several_uids(url, store, three_pods):
    store.set("default", "old", "game", 1)
    code, data, _ = place(url, "-s", "game", "a", "b", "old", "42")
    assert code == 0
    assert list(data) == FIELDS
    assert data["namespace"] == "default" and data["service"] == "game"
    assert all(list(p) == PLACEMENT_FIELDS for p in data["placements"])
    assert list(pods_of(data)) == ["a", "b", "old", "42"]
    assert pods_of(data)["old"] == 1
    assert [p["source"] for p in data["placements"]] == ["new", "new", "existing", "new"]
    assert all(isinstance(p, int) for p in pods_of(data).values())
    assert data["failed"] == []
    for uid, pod in pods_of(data).items():
        assert store.get("default", uid, "game").pod == pod


def test_place_dash_reads_stdin_even_for_one_uid(url, three_pods):
    code, data, _ = place(url, "-s", "game", "-", input="only\n")
    assert code == 0
    assert list(data) == FIELDS and list(pods_of(data)) == ["only"]


def test_place_stdin_dedups_and_ignores_blank_lines(url, three_pods):
    code, data, _ = place(url, "-s", "game", "-", input="a\n\nb a\n  c\n")
    assert code == 0 and list(pods_of(data)) == ["a", "b", "c"]


def test_place_several_with_no_pod_is_exit_5_with_the_json(url, store):
    code, data, err = place(url, "-s", "game", "a", "b")
    assert code == 5
    assert list(data) == FIELDS and data["placements"] == [] and failed_uids(data) == ["a", "b"]
    assert all("no available pod for service 'game'" in f["error"] for f in data["failed"])
    assert "2 of 2 uids not placed" in error_lines(err)[0]


def test_place_several_partial_failure_is_exit_5(url, store, three_pods):
    store.set("default", "stuck", "game", 9)  # persistent link to a dead pod
    code, data, err = place(url, "-s", "game", "a", "stuck", "b")
    assert code == 5
    assert list(pods_of(data)) == ["a", "b"]
    assert failed_uids(data) == ["stuck"] and "pod 9 unavailable" in data["failed"][0]["error"]
    assert "uid 'stuck'" in error_lines(err)[0]


def test_place_several_table_output(url, three_pods):
    result = run("--redis-url", url, "place", "-s", "game", "a", "b")
    assert result.exit_code == 0
    assert "2 placed, 0 failed" in result.stdout
    many = run("--redis-url", url, "place", "-s", "game", "-", input=" ".join(f"u{i}" for i in range(60)))
    assert many.exit_code == 0 and "USERS" in many.stdout and "60 placed" in many.stdout


def test_place_without_uids_is_exit_2(url, three_pods):
    assert run("--redis-url", url, "place", "-s", "game").exit_code == 2
    code, _, err = place(url, "-s", "game", "-", input="")
    assert code == 2 and "no uid given" in err


@pytest.mark.parametrize(
    ("args", "stdin", "named"),
    [
        (["place", "-s", "game", "a{b"], None, "'a{b'"),
        (["place", "-s", "game", "ok1", "bad}"], None, "'bad}'"),
        (["place", "-s", "game", "-"], "ok1\nok2\nbad{\n", "'bad{'"),
        (["place", "-s", "bad:svc", "u1"], None, "'bad:svc'"),
        (["-n", "ns:1", "place", "-s", "game", "u1"], None, "'ns:1'"),
        (["place", "-s", "game", "--explain", "a", "b"], None, "--explain"),
    ],
)
def test_place_bad_input_is_exit_2_and_writes_nothing(url, store, three_pods, args, stdin, named):
    before = all_keys(store.client)
    result = run("--redis-url", url, *args, input=stdin)
    assert result.exit_code == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and named in lines[0]
    assert result.stdout == ""
    assert all_keys(store.client) == before


# --- --explain ----------------------------------------------------------------------------


def test_explain_shows_snapshot_candidates_and_choice(url, config, store):
    publish(config, store, "game", {0: 120, 1: 40, 2: 80})
    publish(config, store, "game", {3: 10}, state="DRAINING")
    code, data, _ = place(url, "-s", "game", "--explain", "u1")
    assert code == 0
    assert list(data) == FIELDS + ["explain"]
    explain = data["explain"]
    assert explain["strategy"] == "p2c"
    assert [(p["pod"], p["state"], p["load"], p["routable"]) for p in explain["pods"]] == [
        (0, "READY", 120, True), (1, "READY", 40, True), (2, "READY", 80, True), (3, "DRAINING", 10, False)]
    assert all(isinstance(p["heartbeat_age_ms"], int) and p["heartbeat_age_ms"] >= 0 for p in explain["pods"])
    assert [c["pod"] for c in explain["candidates"]] == [0, 1, 2]
    assert len(explain["considered"]) == 2 and set(explain["considered"]) <= {0, 1, 2}
    lower = min(explain["considered"], key=lambda p: {0: 120, 1: 40, 2: 80}[p])
    assert explain["choice"] == lower == only(data)["pod"]
    assert only(data)["source"] == "new"
    assert "lower" in explain["why"] and "new link" in explain["why"]


def test_explain_an_existing_link(url, store, three_pods):
    store.set("default", "u1", "game", 2)
    code, data, _ = place(url, "-s", "game", "--explain", "u1")
    assert (code, only(data)["pod"], only(data)["source"]) == (0, 2, "existing")
    assert "already" in data["explain"]["why"]


def test_explain_with_the_hash_strategy(url, three_pods):
    env = {"STROUTE_PLACEMENT_STRATEGY": "hash"}
    code, data, _ = place(url, "-s", "game", "--explain", "u1", env=env)
    assert code == 0
    assert data["explain"]["strategy"] == "hash"
    assert data["explain"]["considered"] == [0, 1, 2]
    assert "rendezvous" in data["explain"]["why"]
    # Rendezvous hashing is stable: another client picks the same pod for the uid.
    assert only(place(url, "-s", "game", "u2", env=env)[1])["pod"] == place(url, "-s", "game", "--explain", "u2",
                                                                        env=env)[1]["explain"]["choice"]


@pytest.mark.parametrize(("strategy", "words"), [
    ("p2c", "two random routable pods"),
    ("least-loaded", "lowest reported load (10)"),
    ("round-robin", "round-robin turn 0 over the 2 pods with load <= 510"),
    ("hash", "rendezvous"),
])
def test_explain_names_each_strategy_and_its_reason(url, config, store, strategy, words):
    publish(config, store, "game", {0: 10, 1: 300, 2: 900})
    env = {"STROUTE_PLACEMENT_STRATEGY": strategy}
    code, data, _ = place(url, "-s", "game", "--explain", "u1", env=env)
    assert code == 0 and only(data)["source"] == "new"
    explain = data["explain"]
    assert explain["strategy"] == strategy
    assert explain["choice"] == only(data)["pod"] and explain["choice"] in explain["considered"]
    assert words in explain["why"], explain["why"]
    if strategy == "least-loaded":
        assert only(data)["pod"] == 0
    if strategy == "round-robin":
        assert explain["considered"] == [0, 1]  # pod 2 is above the good-load range


def test_explain_no_pod_still_prints_the_snapshot_and_exits_5(url, config, store):
    publish(config, store, "game", {0: 5}, state="DRAINING")
    code, data, err = place(url, "-s", "game", "--explain", "u1")
    assert code == 5
    assert data["placements"] == [] and failed_uids(data) == ["u1"]
    assert data["explain"]["pods"][0]["state"] == "DRAINING"
    assert data["explain"]["candidates"] == [] and data["explain"]["choice"] is None
    assert "no available pod" in data["explain"]["why"]
    assert "no available pod" in error_lines(err)[0]


def test_explain_table_output(url, config, store):
    publish(config, store, "game", {0: 120, 1: 40})
    result = run("--redis-url", url, "place", "-s", "game", "--explain", "u1")
    assert result.exit_code == 0
    assert "chosen" in result.stdout and "why: p2c" in result.stdout and "READY" in result.stdout


# --- the installed entry point against a real server -------------------------------------------

realserver = pytest.mark.realserver


def _equal_pods(redis_server, service="game", pods=3):
    client = redis_server.client()
    try:
        now_ms = int(client.time()[0]) * 1000
        for pod in range(pods):
            client.hset(f"sf:{{default:state:{service}}}", str(pod), f"100-{now_ms}-1")  # raw, seed format
    finally:
        client.close()


def _links_in_redis(redis_server, uids, service="game"):
    client = redis_server.client()
    try:
        values = client.mget([f"sf:{{default:lk:{uid}}}{service}" for uid in uids])
    finally:
        client.close()
    return {uid: None if v is None else int(v) for uid, v in zip(uids, values)}


@realserver
def test_place_3000_new_users_spreads_within_15_percent(real_url, redis_server, tmp_path):
    _equal_pods(redis_server)
    uids = [f"user-{i}" for i in range(3000)]
    proc = run_bin(tmp_path, "--redis-url", real_url, "-o", "json", "place", "-s", "game", "-",
                   input="\n".join(uids) + "\n")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["failed"] == [] and len(data["placements"]) == 3000
    counts = Counter(pods_of(data).values())
    mean = 3000 / 3
    assert set(counts) == {0, 1, 2}
    assert all(abs(n - mean) <= 0.15 * mean for n in counts.values()), counts
    assert _links_in_redis(redis_server, uids) == pods_of(data)


@realserver
def test_concurrent_place_processes_agree(real_url, redis_server, tmp_path):
    _equal_pods(redis_server)
    uids = [f"racer-{i}" for i in range(300)]
    stdin = "\n".join(uids)
    procs = [
        subprocess.Popen([stroute_bin(), "--redis-url", real_url, "-o", "json", "place", "-s", "game", "-"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=tmp_path, env=bin_env(tmp_path))
        for _ in range(6)
    ]
    answers = []
    for proc in procs:
        out, err = proc.communicate(stdin, timeout=60)
        assert proc.returncode == 0, err
        answers.append(pods_of(json.loads(out)))
    assert all(answer == answers[0] for answer in answers)
    assert _links_in_redis(redis_server, uids) == answers[0]


def test_redis_down_is_exit_6_fast_without_traceback(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    for args in (["place", "-s", "game", "u1"], ["link", "get", "u1", "-s", "game"], ["link", "list"]):
        started = time.monotonic()
        proc = run_bin(tmp_path, "--redis-url", url, "-o", "json", *args, timeout=30)
        elapsed = time.monotonic() - started
        assert proc.returncode == 6, proc.stderr
        assert elapsed < 5, elapsed
        assert proc.stdout == ""
        assert "Traceback" not in proc.stderr
        lines = error_lines(proc.stderr)
        assert len(lines) == 1 and "unreachable" in lines[0]
