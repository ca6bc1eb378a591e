"""Bad data in Redis never blocks the namespace; a refused command writes
nothing (issue 11, items 6, 7, 8, 9, 11 and 17, through the command line).

One corrupt link value (`banana`, or the JSON the original Go driver
writes), a key of another type under a link's name and a key whose uid
holds '}' sit among good links. Every command that walks the links
processes every good key, names the bad ones (a count and the first keys
on stderr, "bad_keys" in the JSON) and exits 7.
"""

from __future__ import annotations

import json

import pytest

from ops_support import cli, cli_json, error_lines, isolated, put_state, run_bin  # noqa: F401
from support import all_keys, check_invariant

pytestmark = pytest.mark.usefixtures("isolated")

BANANA = "sf:{default:lk:w}game"
GO_VALUE = "sf:{default:lk:g}game"
A_HASH = "sf:{default:lk:h}game"
BRACE = "sf:{default:lk:a}b}game"
BAD = {BANANA, GO_VALUE, A_HASH, BRACE}
STALE_MS = 120_000


def plant(store):
    """Good links on pods 3 and 4 of game (and one of chat), and the four bad keys."""
    for i in range(6):
        store.set("default", f"t{i}", "game", 3, 600_000)
    store.set("default", "p0", "game", 3)
    store.set("default", "x", "game", 4)
    store.set("default", "c", "chat", 3)
    raw = store.client
    raw.set(BANANA, "banana")
    raw.set(GO_VALUE, json.dumps({"podId": 3, "persistTime": -1, "service": "game"}))
    raw.hset(A_HASH, "pod", "3")
    raw.set(BRACE, "3", px=600_000)  # uid 'a}b' written by another service


def bad_keys_of(data) -> set[str]:
    return {entry["key"] for entry in data["bad_keys"]["keys"]}


def assert_reported(code, data, stderr, expected=BAD):
    assert code == 7, stderr
    assert data["bad_keys"]["count"] == len(expected)
    assert bad_keys_of(data) == expected
    lines = error_lines(stderr)
    keys = "1 key in namespace 'default' holds" if len(expected) == 1 else f"{len(expected)} keys in namespace 'default' hold"
    assert len(lines) == 1 and f"{keys} data stroute cannot read, skipped" in lines[0]
    assert "every other key was processed" in lines[0]
    assert sum(key in lines[0] for key in expected) == min(3, len(expected))  # the first few keys, named
    assert "Traceback" not in stderr


# --- item 9: every command that walks the links carries on -----------------------------------------


def test_link_list_lists_every_good_link_and_reports_the_bad_keys(url, store):
    plant(store)
    code, data, stderr = cli_json("--redis-url", url, "link", "list")
    assert_reported(code, data, stderr)
    assert sorted((r["uid"], r["service"]) for r in data["links"]) == sorted(
        [(f"t{i}", "game") for i in range(6)] + [("p0", "game"), ("x", "game"), ("c", "chat")])
    assert not any(r["uid"] == "a" for r in data["links"])  # never misattributed to uid 'a'
    problems = {e["key"]: e["problem"] for e in data["bad_keys"]["keys"]}
    assert problems[BANANA] == "holds 'banana', not a pod index"
    assert problems[A_HASH] == "is a hash, not a link (a string)"
    assert "more than one '}'" in problems[BRACE]
    code, data, stderr = cli_json("--redis-url", url, "link", "list", "-s", "chat")
    assert (code, data["bad_keys"]["count"], len(data["links"])) == (0, 0, 1)


def test_link_list_table_still_shows_the_good_links(url, store):
    plant(store)
    result = cli("--redis-url", url, "link", "list", "--pod", "4")
    assert result.exit_code == 7
    assert "x" in result.stdout and "1 link" in result.stderr
    assert "hold data stroute cannot read" in result.stderr


def test_batch_get_reads_every_uid_and_reports_the_bad_ones(url, store):
    plant(store)
    code, data, stderr = cli_json("--redis-url", url, "link", "batch-get", "-s", "game", "t0", "w", "g", "x", "zz")
    assert_reported(code, data, stderr, {BANANA, GO_VALUE})
    assert data["pods"] == {"3": ["t0"], "4": ["x"]} and data["missing"] == ["zz"]


def test_clear_removes_every_good_link_and_leaves_the_bad_keys(url, store):
    plant(store)
    put_state(store.client, "game", 3, age_ms=STALE_MS)
    before = {key: store.client.type(key) for key in BAD}
    code, data, stderr = cli_json("--redis-url", url, "link", "clear", "-s", "game", "--pod", "3")
    assert_reported(code, data, stderr)
    assert (data["found"], data["removed"], data["kept"]) == (7, 7, 0)
    assert [l.pod for l in store.scan_links("default", service="game", bad=_bad())] == [4]
    assert {key: store.client.type(key) for key in BAD} == before  # the bad keys are left alone
    store.client.delete(*BAD)  # foreign data: no index of theirs to check
    check_invariant(store.client)


def _bad():
    from stroute.store import BadKeys

    return BadKeys()


@pytest.mark.parametrize("verb", ["pods", "top"])
def test_count_links_counts_the_good_links(url, store, verb):
    plant(store)
    put_state(store.client, "game", 3)
    put_state(store.client, "game", 4)
    args = ["pods", "-s", "game"] if verb == "pods" else ["top"]
    code, data, stderr = cli_json("--redis-url", url, *args, "--count-links")
    assert_reported(code, data, stderr)
    game = data if verb == "pods" else next(s for s in data["services"] if s["service"] == "game")
    assert {row["pod"]: row["links"] for row in game["pods"]} == {3: 7, 4: 1}


def test_export_writes_every_good_link_and_names_the_bad_keys(url, store, tmp_path):
    plant(store)
    result = cli("--redis-url", url, "export")
    assert result.exit_code == 7
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 9 and all(line["uid"] != "a" for line in lines)
    assert "exported 9 links" in result.stderr and "4 keys in namespace 'default'" in result.stderr
    # Every line written imports again.
    (tmp_path / "f").write_text(result.stdout)
    store.client.flushdb()
    code, data, stderr = cli_json("--redis-url", url, "import", "f")
    assert (code, data["imported"], data["rejected"]) == (0, 9, 0), stderr


def test_drain_migrate_moves_every_good_link(url, store):
    plant(store)
    put_state(store.client, "game", 3)
    put_state(store.client, "game", 4)
    code, data, stderr = cli_json("--redis-url", url, "pod", "drain", "-s", "game", "--pod", "3", "--migrate")
    assert_reported(code, data, stderr)
    assert (data["links_before"], data["moved"], data["remaining"]) == (7, 6, 1)  # the persistent one stays
    assert {l.uid for l in store.scan_links("default", pod=4, bad=_bad())} >= {f"t{i}" for i in range(6)}


# --- item 7 and item 6: a refused write writes nothing ------------------------------------------------


@pytest.mark.parametrize("args", [
    ["link", "set", "w", "-s", "game", "--pod", "1"],
    ["link", "set", "w", "-s", "game", "--pod", "1", "--ttl", "60"],
    ["link", "try-set", "w", "-s", "game", "--pod", "1"],
    ["link", "remove", "w", "-s", "game", "--if-pod", "1"],
    ["link", "set", "i", "-s", "game", "--pod", "1"],
    ["link", "remove", "i", "-s", "game", "--after", "30"],
    ["link", "get", "w", "-s", "game"],
    ["link", "get", "i"],
    ["place", "w", "-s", "game"],
])
def test_a_command_over_a_corrupt_key_exits_7_naming_it_and_writes_nothing(url, store, args):
    store.client.set(BANANA, "banana")
    store.client.set("sf:{default:lk:i}game", "2")
    store.client.set("sf:{default:lk:i}", "a string, not the index hash")
    put_state(store.client, "game", 1)
    before = all_keys(store.client)
    code, data, stderr = cli_json("--redis-url", url, *args)
    assert code == 7, stderr
    named = BANANA if "w" in args else "sf:{default:lk:i}"
    assert len(error_lines(stderr)) == 1 and f"key {named!r}" in stderr
    assert all_keys(store.client) == before


def test_link_remove_deletes_a_value_that_is_no_pod_index(url, store):
    store.client.set(BANANA, "banana")
    code, data, stderr = cli_json("--redis-url", url, "link", "remove", "w", "-s", "game")
    assert (code, data["removed"]) == (0, True), stderr
    assert store.client.exists(BANANA) == 0


@pytest.mark.parametrize("args, named", [
    (["link", "remove", "u", "-s", "game", "--after", "1e14"], "invalid --after '1e14'"),
    (["link", "set", "u", "-s", "game", "--pod", "1", "--ttl", "1e20"], "invalid ttl '1e20'"),
    (["link", "try-set", "u", "-s", "game", "--pod", "1", "--ttl", "315360001"], "invalid ttl '315360001'"),
    (["link", "set", "u", "-s", "game", "--pod", "1", "--ttl", "0.0001"], "invalid ttl '0.0001'"),
])
def test_a_ttl_or_delay_redis_cannot_take_is_exit_2_and_writes_nothing(url, store, args, named):
    store.set("default", "u", "game", 3)
    before = all_keys(store.client)
    code, data, stderr = cli_json("--redis-url", url, *args)
    assert (code, data) == (2, None)
    assert f"{named}: must be a number of seconds from 0.001 to 315360000 (10 years)" in stderr
    assert all_keys(store.client) == before
    check_invariant(store.client)


# --- item 8: a bad line never aborts an import ------------------------------------------------------------


def test_a_5000_digit_integer_is_one_rejected_line(url, store, tmp_path):
    good = '{"namespace": "default", "uid": "u%d", "service": "game", "pod": 1, "persistent": true, "ttl": null}'
    lines = [good % 1, good.replace('"pod": 1', '"pod": ' + "7" * 5000) % 2, good % 3,
             good.replace("null", "1e999").replace("true", "false") % 4, good.replace('"uid"', '"uid": "x", "uid"') % 5]
    (tmp_path / "f").write_text("\n".join(lines) + "\n")
    code, data, stderr = cli_json("--redis-url", url, "import", "f")
    assert code == 2
    assert (data["imported"], data["rejected"]) == (2, 3)
    assert [e["line"] for e in data["errors"]] == [2, 4, 5]
    assert "Exceeds the limit" in data["errors"][0]["error"] and "unexpected" not in stderr
    assert "invalid ttl inf" in data["errors"][1]["error"]
    assert "field 'uid' is given twice" in data["errors"][2]["error"]
    assert store.links_of("default", "u3") == {"game": 1}


def test_import_ttl_rule_is_the_command_line_rule(url, store, tmp_path):
    line = {"schema": "stroute/export/v1", "namespace": "default", "uid": "u", "service": "game", "pod": 1,
            "persistent": False, "ttl_s": 0.0001}
    (tmp_path / "f").write_text(json.dumps(line) + "\n")
    code, data, _ = cli_json("--redis-url", url, "import", "f")
    assert code == 2
    assert data["errors"][0]["error"] == ("invalid ttl_s 0.0001: must be a number of seconds from 0.001 to "
                                          "315360000 (10 years)")
    assert all_keys(store.client) == {}


# --- item 17: BOM and invisible characters ------------------------------------------------------------------


def test_place_from_stdin_drops_a_leading_bom(url, store):
    from typer.testing import CliRunner

    from stroute.cli.app import app

    put_state(store.client, "game", 0)
    done = CliRunner().invoke(app, ["--redis-url", url, "-o", "json", "place", "-s", "game", "-"],
                              input="\ufeffu1\nu2\n")
    assert done.exit_code == 0, done.stderr
    assert [(p["uid"], p["pod"]) for p in json.loads(done.stdout)["placements"]] == [("u1", 0), ("u2", 0)]
    assert store.get("default", "u1", "game").pod == 0


@pytest.mark.parametrize("uid", ["a\u200bb", "\u200d", "x\u202ey", "\ufeffu", "a\u00adb", "t\U000e0041"])
def test_a_uid_with_an_invisible_format_character_is_exit_2(url, store, uid):
    code, data, stderr = cli_json("--redis-url", url, "link", "set", uid, "-s", "game", "--pod", "1")
    assert (code, data) == (2, None)
    assert "no whitespace, control or invisible format characters (Unicode category Cf" in stderr
    assert all_keys(store.client) == {}


@pytest.mark.realserver
def test_bad_keys_through_the_installed_command(real_url, redis_server, tmp_path):
    from stroute.store import Store

    store = Store.from_url(real_url)
    try:
        plant(store)
    finally:
        store.close()
    done = run_bin(tmp_path, "--redis-url", real_url, "link", "list")
    assert done.returncode == 7, done.stderr
    assert "9 links" in done.stderr and len(done.stdout.splitlines()) == 1 + 9
    assert "stroute: error: 4 keys in namespace 'default' hold data stroute cannot read, skipped" in done.stderr
    assert "stroute: hint: 'stroute doctor' checks the namespace's data" in done.stderr


def test_doctor_names_the_bad_keys_and_checks_the_good_links(url, store):
    plant(store)
    store.client.set("sf:{default:lk:i}", "a string, not the index hash")
    store.client.set("sf:{default:lk:i}game", "2")
    for pod in (2, 3, 4):
        put_state(store.client, "game", pod)
    put_state(store.client, "chat", 3)
    code, data, stderr = cli_json("--redis-url", url, "doctor")
    assert code == 1, stderr  # doctor's code for a FAILed check
    checks = {c["name"]: c for c in data["checks"]}
    links, index = checks["links"], checks["index"]
    assert links["status"] == "FAIL" and links["detail"].startswith("4 keys under link names hold data stroute cannot read")
    assert "10 links sampled" in links["detail"]  # the good ones are still checked
    assert index["status"] == "FAIL" and "index key sf:{default:lk:i} is a string, not a hash" in index["detail"]


def test_top_watch_counts_the_good_links_and_says_what_it_skipped(url, store):
    store.set("default", "u", "game", 1)
    store.client.set(BANANA, "banana")
    put_state(store.client, "game", 1)
    result = cli("--redis-url", url, "top", "--watch", "--count", "1", "--interval", "0.1", "--count-links")
    assert result.exit_code == 0, result.stderr
    assert f"1 key not counted: no readable link (first: {BANANA})" in result.stdout


def test_a_state_key_of_another_type_is_bad_data_for_that_service_only(url, store):
    """pods of one service: exit 7 naming the key (not 6: Redis did not fail);
    top shows the other services and warns about that one."""
    put_state(store.client, "lobby", 0, load=3)
    store.client.sadd("sf:{default}:services", "lobby", "game")
    store.client.set("sf:{default:state:game}", "not a hash")
    code, data, stderr = cli_json("--redis-url", url, "pods", "-s", "game")
    assert code == 7, stderr
    assert "'sf:{default:state:game}' is a string, not a hash" in stderr
    code, data, stderr = cli_json("--redis-url", url, "pods", "-s", "lobby")
    assert code == 0 and data["pods"][0]["load"] == 3
    code, data, stderr = cli_json("--redis-url", url, "top")
    assert code == 0, stderr
    assert [s["service"] for s in data["services"]] == ["lobby"]
    assert [w["service"] for w in data["warnings"]] == ["game"]


def test_a_tag_key_of_another_type_is_bad_data(url, store):
    store.client.hset("sf:{default:tag:main}", "x", "1")
    code, data, stderr = cli_json("--redis-url", url, "tag", "get", "main")
    assert code == 7, stderr
    assert "'sf:{default:tag:main}' is a hash, not a string" in stderr
