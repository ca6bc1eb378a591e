"""`stroute link get|set|try-set|remove|batch-get|list`: options, JSON shapes, exit codes."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from link_place_support import all_keys, error_lines, isolated, run, run_bin, run_json  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated")

GET_FIELDS = ["schema", "namespace", "uid", "service", "links"]
ROW_FIELDS = ["uid", "service", "pod", "persistent", "ttl_s"]
SET_FIELDS = ["schema", "namespace", "uid", "service", "pod", "previous", "persistent", "ttl_s"]
NO_BAD_KEYS = {"count": 0, "keys": []}


def link(url, *args, input=None, env=None):
    return run_json("--redis-url", url, "link", *args, input=input, env=env)


# --- set / get ------------------------------------------------------------------


def test_set_persistent_then_get(url, store):
    code, data, _ = link(url, "set", "u1", "-s", "game", "--pod", "3")
    assert code == 0
    assert list(data) == SET_FIELDS
    assert data == {"schema": "stroute/link-set/v1", "namespace": "default", "uid": "u1", "service": "game",
                    "pod": 3, "previous": None, "persistent": True, "ttl_s": None}
    assert store.get("default", "u1", "game").pod == 3

    code, data, _ = link(url, "get", "u1", "-s", "game")
    assert code == 0
    assert list(data) == GET_FIELDS and [list(r) for r in data["links"]] == [ROW_FIELDS]
    assert data == {"schema": "stroute/link-get/v1", "namespace": "default", "uid": "u1", "service": "game",
                    "links": [{"uid": "u1", "service": "game", "pod": 3, "persistent": True, "ttl_s": None}]}


def test_set_reports_previous_pod_and_pod_zero_is_a_pod(url, store):
    assert link(url, "set", "u1", "-s", "game", "--pod", "0")[1]["pod"] == 0
    code, data, _ = link(url, "set", "u1", "-s", "game", "--pod", "5")
    assert (code, data["pod"], data["previous"]) == (0, 5, 0)  # 0 is a pod, not "no previous link"
    assert isinstance(data["previous"], int) and data["previous"] is not False
    code, data, _ = link(url, "set", "u1", "-s", "game", "--pod", "0")
    assert data["previous"] == 5
    assert link(url, "get", "u1", "-s", "game")[1]["links"][0]["pod"] == 0


def test_set_temporary_with_ttl(url, store):
    code, data, _ = link(url, "set", "u1", "-s", "game", "--pod", "2", "--ttl", "30")
    assert code == 0
    assert (data["persistent"], data["ttl_s"]) == (False, 30)
    assert isinstance(data["ttl_s"], int)
    code, data, _ = link(url, "get", "u1", "-s", "game")
    (row,) = data["links"]
    assert row["persistent"] is False
    assert isinstance(row["ttl_s"], int) and 1 <= row["ttl_s"] <= 30
    assert store.links_of("default", "u1") == {}  # a temporary link is not in the index


def test_fractional_ttl_is_kept(url):
    code, data, _ = link(url, "set", "u1", "-s", "game", "--pod", "2", "--ttl", "1.5")
    assert code == 0 and data["ttl_s"] == 1.5


def test_get_missing_link_is_exit_3_with_no_links(url):
    code, data, err = link(url, "get", "nobody", "-s", "game")
    assert code == 3
    assert data == {"schema": "stroute/link-get/v1", "namespace": "default", "uid": "nobody", "service": "game",
                    "links": []}
    assert error_lines(err) == ["stroute: error: no link for uid 'nobody' of service 'game' in namespace 'default'"]


def test_get_missing_link_table_prints_nothing_on_stdout(url):
    result = run("--redis-url", url, "link", "get", "nobody", "-s", "game")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "no link for uid 'nobody'" in result.stderr


def test_get_all_persistent_links_of_a_user(url):
    link(url, "set", "u1", "-s", "game", "--pod", "3")
    link(url, "set", "u1", "-s", "chat", "--pod", "0")
    link(url, "set", "u1", "-s", "lobby", "--pod", "1", "--ttl", "60")  # temporary: not listed
    code, data, _ = link(url, "get", "u1")
    assert code == 0
    assert list(data) == GET_FIELDS  # the shape of `link get -s`: -s only narrows it
    assert data == {"schema": "stroute/link-get/v1", "namespace": "default", "uid": "u1", "service": None,
                    "links": [{"uid": "u1", "service": "chat", "pod": 0, "persistent": True, "ttl_s": None},
                              {"uid": "u1", "service": "game", "pod": 3, "persistent": True, "ttl_s": None}]}


def test_get_all_with_no_persistent_link_is_exit_3(url):
    link(url, "set", "u1", "-s", "lobby", "--pod", "1", "--ttl", "60")
    code, data, err = link(url, "get", "u1")
    assert code == 3
    assert data == {"schema": "stroute/link-get/v1", "namespace": "default", "uid": "u1", "service": None,
                    "links": []}
    assert "no persistent link" in err


def test_namespace_option_isolates_links(url, store):
    code, data, _ = run_json("--redis-url", url, "-n", "eu-1", "link", "set", "u1", "-s", "game", "--pod", "4")
    assert code == 0 and data["namespace"] == "eu-1"
    assert store.get("eu-1", "u1", "game").pod == 4
    assert store.get("default", "u1", "game") is None
    assert link(url, "get", "u1", "-s", "game")[0] == 3


def test_namespace_from_environment(url, store):
    code, data, _ = link(url, "set", "u1", "-s", "game", "--pod", "4", env={"STROUTE_NAMESPACE": "staging"})
    assert code == 0 and data["namespace"] == "staging"
    assert store.get("staging", "u1", "game").pod == 4


# --- try-set ------------------------------------------------------------------------

TRY_FIELDS = ["schema", "namespace", "uid", "service", "ok", "pod"]


def test_try_set_creates_a_missing_link(url, store):
    code, data, _ = link(url, "try-set", "u1", "-s", "game", "--pod", "2")
    assert code == 0
    assert list(data) == TRY_FIELDS
    assert data == {"schema": "stroute/link-try-set/v1", "namespace": "default", "uid": "u1", "service": "game",
                    "ok": True, "pod": 2}
    assert store.get("default", "u1", "game").persistent


def test_try_set_same_pod_is_ok(url):
    link(url, "set", "u1", "-s", "game", "--pod", "2")
    code, data, _ = link(url, "try-set", "u1", "-s", "game", "--pod", "2")
    assert (code, data["ok"], data["pod"]) == (0, True, 2)


def test_try_set_refused_is_exit_4_with_the_json(url, store):
    link(url, "set", "u1", "-s", "game", "--pod", "2")
    code, data, err = link(url, "try-set", "u1", "-s", "game", "--pod", "7")
    assert code == 4
    assert data == {"schema": "stroute/link-try-set/v1", "namespace": "default", "uid": "u1", "service": "game",
                    "ok": False, "pod": 2}
    assert "persistent link to pod 2" in err
    assert store.get("default", "u1", "game").pod == 2


def test_try_set_overrides_a_temporary_link(url, store):
    link(url, "set", "u1", "-s", "game", "--pod", "2", "--ttl", "60")
    code, data, _ = link(url, "try-set", "u1", "-s", "game", "--pod", "7", "--ttl", "60")
    assert (code, data["ok"], data["pod"]) == (0, True, 7)
    assert not store.get("default", "u1", "game").persistent


def test_try_set_table_output(url):
    link(url, "set", "u1", "-s", "game", "--pod", "2")
    result = run("--redis-url", url, "link", "try-set", "u1", "-s", "game", "--pod", "7")
    assert result.exit_code == 4
    assert "refused" in result.stdout and "u1" in result.stdout


# --- remove ----------------------------------------------------------------------------

REMOVE_FIELDS = ["schema", "namespace", "uid", "service", "removed"]


def test_remove_now(url, store):
    link(url, "set", "u1", "-s", "game", "--pod", "2")
    code, data, _ = link(url, "remove", "u1", "-s", "game")
    assert code == 0
    assert list(data) == REMOVE_FIELDS
    assert data == {"schema": "stroute/link-remove/v1", "namespace": "default", "uid": "u1", "service": "game",
                    "removed": True}
    assert store.get("default", "u1", "game") is None
    assert store.links_of("default", "u1") == {}


def test_remove_missing_is_exit_3(url):
    code, data, err = link(url, "remove", "nobody", "-s", "game")
    assert code == 3
    assert data == {"schema": "stroute/link-remove/v1", "namespace": "default", "uid": "nobody", "service": "game",
                    "removed": False}
    assert "nothing removed" in err


def test_remove_if_pod_mismatch_is_exit_4_and_keeps_the_link(url, store):
    link(url, "set", "u1", "-s", "game", "--pod", "2")
    code, data, err = link(url, "remove", "u1", "-s", "game", "--if-pod", "3")
    assert code == 4
    assert data["removed"] is False
    assert "points at pod 2, not 3" in err
    assert store.get("default", "u1", "game").pod == 2


def test_remove_if_pod_match(url, store):
    link(url, "set", "u1", "-s", "game", "--pod", "0")
    code, data, _ = link(url, "remove", "u1", "-s", "game", "--if-pod", "0")
    assert (code, data["removed"]) == (0, True)
    assert store.get("default", "u1", "game") is None


def test_remove_if_pod_on_missing_link_is_exit_3(url):
    assert link(url, "remove", "u1", "-s", "game", "--if-pod", "0")[0] == 3


def test_remove_after_makes_the_link_expire(url, store):
    link(url, "set", "u1", "-s", "game", "--pod", "2")
    code, data, _ = link(url, "remove", "u1", "-s", "game", "--after", "30")
    assert (code, data["removed"]) == (0, True)
    current = store.get("default", "u1", "game")
    assert current.pod == 2 and not current.persistent and current.ttl <= 30
    assert store.links_of("default", "u1") == {}


def test_remove_delayed_uses_the_configured_delay(url, store):
    link(url, "set", "u1", "-s", "game", "--pod", "2")
    code, data, _ = link(url, "remove", "u1", "-s", "game", "--delayed", env={"STROUTE_LINKS_REMOVE_DELAY": "25"})
    assert (code, data["removed"]) == (0, True)
    current = store.get("default", "u1", "game")
    assert current.pod == 2 and 20_000 < current.ttl_ms <= 25_000
    assert store.links_of("default", "u1") == {}


def test_remove_refuses_after_and_delayed_together(url, store):
    link(url, "set", "u1", "-s", "game", "--pod", "2")
    result = run("--redis-url", url, "link", "remove", "u1", "-s", "game", "--after", "5", "--delayed")
    assert result.exit_code == 2
    assert "--after '5' and delayed removal both given, not both" in result.stderr
    assert store.get("default", "u1", "game").persistent  # nothing written


def test_remove_table_output(url):
    link(url, "set", "u1", "-s", "game", "--pod", "2")
    result = run("--redis-url", url, "link", "remove", "u1", "-s", "game", "--after", "10")
    assert result.exit_code == 0
    assert "removed in 10 s" in result.stdout


# --- batch-get -----------------------------------------------------------------------------


def _seed_batch(url):
    link(url, "set", "a", "-s", "game", "--pod", "0")
    link(url, "set", "b", "-s", "game", "--pod", "3")
    link(url, "set", "42", "-s", "game", "--pod", "3", "--ttl", "60")
    link(url, "set", "c", "-s", "chat", "--pod", "1")


def test_batch_get_from_arguments(url):
    _seed_batch(url)
    code, data, _ = link(url, "batch-get", "-s", "game", "a", "b", "42", "c", "zz")
    assert code == 0
    assert list(data) == ["schema", "namespace", "service", "pods", "missing", "bad_keys"]
    assert data == {"schema": "stroute/link-batch-get/v1", "namespace": "default", "service": "game",
                    "pods": {"0": ["a"], "3": ["b", "42"]},
                    "missing": ["c", "zz"], "bad_keys": NO_BAD_KEYS}
    assert all(isinstance(uid, str) for users in data["pods"].values() for uid in users)


def test_batch_get_from_stdin(url):
    _seed_batch(url)
    code, data, _ = link(url, "batch-get", "-s", "game", "-", input="a\nb\n\n42  zz\n")
    assert code == 0
    assert data["pods"] == {"0": ["a"], "3": ["b", "42"]}
    assert data["missing"] == ["zz"]


def test_batch_get_many_uids_from_stdin(url, store):
    for i in range(0, 3000, 3):
        store.set("default", f"user{i}", "game", i % 5)
    uids = "\n".join(f"user{i}" for i in range(3000))
    code, data, _ = link(url, "batch-get", "-s", "game", "-", input=uids)
    assert code == 0
    assert sum(len(v) for v in data["pods"].values()) == 1000
    assert len(data["missing"]) == 2000
    assert data["pods"]["2"][0] == "user12"


def test_batch_get_without_uids_is_exit_2(url):
    code, data, err = link(url, "batch-get", "-s", "game")
    assert code == 2 and data is None
    assert "no uid given" in err
    code, _, err = link(url, "batch-get", "-s", "game", "-", input="\n")
    assert code == 2


def test_batch_get_table_output(url):
    _seed_batch(url)
    result = run("--redis-url", url, "link", "batch-get", "-s", "game", "a", "b", "zz")
    assert result.exit_code == 0
    assert "1 without a link: zz" in result.stdout


# --- list ---------------------------------------------------------------------------------------


def test_list_every_link(url):
    _seed_batch(url)
    code, data, _ = link(url, "list", "--sort")
    assert code == 0
    assert list(data) == ["schema", "namespace", "links", "bad_keys"]
    assert data["namespace"] == "default" and data["bad_keys"] == NO_BAD_KEYS
    rows = data["links"]
    assert all(list(r) == ROW_FIELDS for r in rows)
    assert [(r["uid"], r["service"], r["pod"], r["persistent"]) for r in rows] == [
        ("c", "chat", 1, True),
        ("42", "game", 3, False),
        ("a", "game", 0, True),
        ("b", "game", 3, True),
    ]
    temp = rows[1]
    assert isinstance(temp["ttl_s"], int) and 0 < temp["ttl_s"] <= 60
    assert rows[0]["ttl_s"] is None


def test_list_filters(url):
    _seed_batch(url)
    assert [r["uid"] for r in link(url, "list", "-s", "game", "--sort")[1]["links"]] == ["42", "a", "b"]
    assert sorted(r["uid"] for r in link(url, "list", "--pod", "3")[1]["links"]) == ["42", "b"]
    assert [r["uid"] for r in link(url, "list", "-s", "game", "--pod", "0")[1]["links"]] == ["a"]
    assert link(url, "list", "-s", "nothing")[1] == {"schema": "stroute/link-list/v1", "namespace": "default",
                                                     "links": [], "bad_keys": NO_BAD_KEYS}


def test_list_yaml_and_table(url):
    _seed_batch(url)
    result = run("--redis-url", url, "-o", "yaml", "link", "list", "-s", "chat")
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout) == {
        "schema": "stroute/link-list/v1", "namespace": "default",
        "links": [{"uid": "c", "service": "chat", "pod": 1, "persistent": True, "ttl_s": None}],
        "bad_keys": NO_BAD_KEYS,
    }
    result = run("--redis-url", url, "link", "list")
    assert result.exit_code == 0
    assert "temporary" in result.stdout and "persistent" in result.stdout
    assert "4 links" in result.stderr  # the count is no row: stdout carries only rows


def test_list_large_scan_reports_progress_on_stderr(url, store, monkeypatch):
    import stroute.cli.progress as progress

    monkeypatch.setattr(progress, "_LOG_EVERY_S", 0)  # a log line at every link
    pipe = store.client.pipeline(transaction=False)
    ks = store.keys("default")
    for i in range(1200):
        pipe.set(ks.link(f"u{i}", "game"), i % 3)
    pipe.execute()
    code, data, err = link(url, "list")
    assert code == 0 and len(data["links"]) == 1200
    assert re.search(r"scanning links\.\.\. \d+ so far", err)  # a line per page, pages of about 1000
    assert json.dumps(data)  # stdout held exactly one document


def test_json_is_a_single_document_on_stdout(url):
    _seed_batch(url)
    result = run("--redis-url", url, "-o", "json", "link", "get", "a", "-s", "game")
    assert result.stdout.count("\n") == 1
    json.loads(result.stdout)


# --- bad input: exit 2, one line naming the value, nothing written ------------------------------

BAD = [
    (["link", "set", "a{b", "-s", "game", "--pod", "1"], "'a{b'"),
    (["link", "set", "a}b", "-s", "game", "--pod", "1"], "'a}b'"),
    (["link", "set", "a b", "-s", "game", "--pod", "1"], "'a b'"),
    (["-n", "a:b", "link", "set", "u", "-s", "game", "--pod", "1"], "'a:b'"),
    (["link", "set", "u", "-s", "ga:me", "--pod", "1"], "'ga:me'"),
    (["link", "set", "u", "-s", "game", "--pod", "-1"], "-1"),
    (["link", "set", "u", "-s", "game", "--pod", "1.5"], "'1.5'"),
    (["link", "set", "u", "-s", "game", "--pod", "x"], "'x'"),
    (["link", "set", "u", "-s", "game", "--pod", "65536"], "65536"),
    (["link", "set", "u", "-s", "game", "--pod", "1", "--ttl", "-5"], "'-5'"),
    (["link", "set", "u", "-s", "game", "--pod", "1", "--ttl", "0"], "'0'"),
    (["link", "set", "u", "-s", "game", "--pod", "1", "--ttl", "soon"], "'soon'"),
    (["link", "try-set", "u", "-s", "game", "--pod", "-3"], "-3"),
    (["link", "try-set", "u{", "-s", "game", "--pod", "3"], "'u{'"),
    (["link", "remove", "u", "-s", "game", "--after", "-1"], "'-1'"),
    (["link", "remove", "u", "-s", "game", "--if-pod", "two"], "'two'"),
    (["link", "get", "u}", "-s", "game"], "'u}'"),
    (["link", "get", "x" * 300], "'xxxx"),
    (["link", "batch-get", "-s", "game", "ok", "bad{uid"], "'bad{uid'"),
    (["link", "list", "--pod", "-1"], "-1"),
    (["link", "list", "-s", "bad svc"], "'bad svc'"),
]


@pytest.mark.parametrize(("args", "named"), BAD, ids=[" ".join(a)[:40] for a, _ in BAD])
def test_bad_input_is_exit_2_naming_the_value_and_writes_nothing(url, store, args, named):
    store.set("default", "keep", "game", 1)
    before = all_keys(store.client)
    result = run("--redis-url", url, *args)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert all_keys(store.client) == before


def test_unknown_output_format_is_exit_2(url, store):
    before = all_keys(store.client)
    result = run("--redis-url", url, "-o", "xml", "link", "set", "u", "-s", "game", "--pod", "1")
    assert result.exit_code == 2
    assert "'xml'" in result.stderr
    assert all_keys(store.client) == before


def test_broken_config_file_is_exit_2(url, store, isolated):
    (isolated / "broken.yaml").write_text("state: [unclosed\n")
    before = all_keys(store.client)
    result = run("--redis-url", url, "--config", "broken.yaml", "link", "set", "u", "-s", "game", "--pod", "1")
    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "broken.yaml" in lines[0] and "not valid YAML" in lines[0]
    assert all_keys(store.client) == before


def test_missing_service_option_is_a_usage_error(url):
    result = run("--redis-url", url, "link", "set", "u", "--pod", "1")
    assert result.exit_code == 2
    assert "--service" in result.stderr


# --- the installed entry point against a real server ----------------------------------------------

pytest_real = pytest.mark.realserver


@pytest_real
def test_entry_point_round_trip(real_url, redis_server, tmp_path):
    def stroute(*args, input=None):
        proc = run_bin(tmp_path, "--redis-url", real_url, "-o", "json", "link", *args, input=input)
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr

    assert stroute("set", "u1", "-s", "game", "--pod", "0")[:2] == (0, {
        "schema": "stroute/link-set/v1", "namespace": "default", "uid": "u1", "service": "game", "pod": 0,
        "previous": None, "persistent": True, "ttl_s": None})
    assert stroute("get", "u1", "-s", "game")[1]["links"][0]["pod"] == 0
    assert stroute("try-set", "u1", "-s", "game", "--pod", "1")[:2] == (4, {
        "schema": "stroute/link-try-set/v1", "namespace": "default", "uid": "u1", "service": "game", "ok": False,
        "pod": 0})
    assert stroute("set", "u2", "-s", "game", "--pod", "1", "--ttl", "90")[0] == 0
    assert stroute("batch-get", "-s", "game", "-", input="u1 u2 u3")[1]["pods"] == {"0": ["u1"], "1": ["u2"]}
    listed = stroute("list", "-s", "game", "--sort")[1]["links"]
    assert [(r["uid"], r["pod"], r["persistent"]) for r in listed] == [("u1", 0, True), ("u2", 1, False)]
    assert [(r["service"], r["pod"]) for r in stroute("get", "u1")[1]["links"]] == [("game", 0)]
    assert stroute("remove", "u1", "-s", "game", "--if-pod", "1")[0] == 4
    assert stroute("remove", "u1", "-s", "game", "--if-pod", "0")[:2] == (0, {
        "schema": "stroute/link-remove/v1", "namespace": "default", "uid": "u1", "service": "game", "removed": True})
    code, data, err = stroute("get", "u1", "-s", "game")
    assert (code, data["links"]) == (3, [])
    assert "Traceback" not in err

    client = redis_server.client()
    try:
        assert client.get("sf:{default:lk:u2}game") == "1"
        assert 0 < client.ttl("sf:{default:lk:u2}game") <= 90
        assert not client.exists("sf:{default:lk:u1}game", "sf:{default:lk:u1}")
    finally:
        client.close()


@pytest_real
def test_entry_point_reads_links_written_in_the_seed_layout(real_url, redis_server, tmp_path):
    client = redis_server.client()
    try:
        # As the Go/Java seed writes them: the link string, plus the index hash for persistent ones.
        client.set("sf:{default:lk:10001}game", "3")
        client.hset("sf:{default:lk:10001}", "game", "3")
        client.set("sf:{default:lk:10001}chat", "0")
        client.hset("sf:{default:lk:10001}", "chat", "0")
        client.set("sf:{default:lk:10002}game", "5", px=120_000)
        client.set("sf:{other:lk:10003}game", "1")
        client.hset("sf:{other:lk:10003}", "game", "1")
    finally:
        client.close()

    def stroute(*args, input=None):
        proc = run_bin(tmp_path, "--redis-url", real_url, "-o", "json", *args, input=input)
        assert "Traceback" not in proc.stderr
        return proc.returncode, json.loads(proc.stdout)

    assert stroute("link", "get", "10001", "-s", "game") == (0, {
        "schema": "stroute/link-get/v1", "namespace": "default", "uid": "10001", "service": "game",
        "links": [{"uid": "10001", "service": "game", "pod": 3, "persistent": True, "ttl_s": None}]})
    code, data = stroute("link", "get", "10002", "-s", "game")
    (temp,) = data["links"]
    assert code == 0 and temp["pod"] == 5 and temp["persistent"] is False and 100 < temp["ttl_s"] <= 120
    code, data = stroute("link", "get", "10001")
    assert (code, [(r["service"], r["pod"]) for r in data["links"]]) == (0, [("chat", 0), ("game", 3)])
    assert stroute("link", "batch-get", "-s", "game", "10001", "10002", "10003")[1] == {
        "schema": "stroute/link-batch-get/v1", "namespace": "default", "service": "game",
        "pods": {"3": ["10001"], "5": ["10002"]}, "missing": ["10003"],
        "bad_keys": NO_BAD_KEYS}
    listed = stroute("link", "list", "--sort")[1]["links"]
    assert [(r["uid"], r["service"], r["pod"]) for r in listed] == [
        ("10001", "chat", 0), ("10001", "game", 3), ("10002", "game", 5)]
    assert stroute("-n", "other", "link", "list")[1]["links"] == [
        {"uid": "10003", "service": "game", "pod": 1, "persistent": True, "ttl_s": None}]


@pytest_real
def test_entry_point_bad_input_writes_nothing(real_url, redis_server, tmp_path):
    client = redis_server.client()
    try:
        cases = [
            (["link", "set", "a{b", "-s", "game", "--pod", "1"], "'a{b'"),
            (["-n", "a:b", "link", "set", "u", "-s", "game", "--pod", "1"], "'a:b'"),
            (["link", "set", "u", "-s", "game", "--pod", "-1"], "-1"),
            (["link", "set", "u", "-s", "game", "--pod", "one"], "'one'"),
            (["link", "set", "u", "-s", "game", "--pod", "1", "--ttl", "-5"], "'-5'"),
        ]
        for args, named in cases:
            before = all_keys(client)
            proc = run_bin(tmp_path, "--redis-url", real_url, *args)
            assert proc.returncode == 2, (args, proc.stderr)
            lines = error_lines(proc.stderr)
            assert len(lines) == 1 and named in lines[0], proc.stderr
            assert "Traceback" not in proc.stderr and proc.stdout == ""
            assert all_keys(client) == before
        (tmp_path / "stroute.yaml").write_text("redis:\n  url: " + real_url + "\nstate:\n  period: [1\n")
        proc = run_bin(tmp_path, "link", "set", "u", "-s", "game", "--pod", "1")
        assert proc.returncode == 2 and "stroute.yaml" in proc.stderr and "Traceback" not in proc.stderr
        assert all_keys(client) == {}
    finally:
        client.close()


_IMPORT_PROBE = """
import shlex, sys
from stroute.cli.app import main
url, commands = sys.argv[1], sys.argv[2:]
for command in commands:
    sys.argv = ["stroute", "--redis-url", url, "-o", "json", *shlex.split(command)]
    try:
        main()
    except SystemExit:
        pass
    sys.stdout.write("\\n")
sys.stderr.write("RICH_LOADED=%s\\n" % sorted(m for m in sys.modules if m.split(".")[0] == "rich"))
"""


@pytest_real
def test_json_output_does_not_load_rich(real_url, tmp_path):
    import subprocess
    import sys

    from link_place_support import bin_env

    commands = [
        "link get u1 -s game", "link get u1", "link set u1 -s game --pod 1", "link try-set u1 -s game --pod 1",
        "link list", "link batch-get -s game u1 u2", "link remove u1 -s game", "place -s game u1",
        "place -s game --explain u1", "place -s game a b", "tag set lobby lobby-v2", "tag get lobby",
        "config show", "config validate",
    ]
    proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, real_url, *commands], capture_output=True,
                          text=True, cwd=tmp_path, env=bin_env(tmp_path), timeout=60)
    assert "RICH_LOADED=[]" in proc.stderr, proc.stderr
    documents = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(documents) == len(commands)  # "place -s game u1": no pod, exit 5, and its document lists it failed
    assert all(d["schema"].startswith("stroute/") for d in documents)
