"""`stroute export` and `stroute import`: JSON lines, the round trip, validation, idempotence."""

from __future__ import annotations

import json

import pytest

from link_place_support import run_bin  # noqa: F401
from ops_support import cli, error_lines, isolated  # noqa: F401
from stroute.transfer import MAX_ERRORS_KEPT, import_links, parse_line
from stroute.errors import InvalidInput
from support import all_keys, check_invariant

pytestmark = pytest.mark.usefixtures("isolated")

FIELDS = ["schema", "namespace", "uid", "service", "pod", "persistent", "ttl_s"]
REPORT_FIELDS = ["schema", "namespace", "imported", "unchanged", "kept", "rejected", "errors", "dry_run", "bad_keys"]
TTL_TOLERANCE_MS = 3000
ODD_UIDS = ["ü:x", 'quo"te', "back\\slash", "🎮", "a" * 256, "0", "-1"]


def populate(store):
    """A mix: persistent and temporary, several services, odd uids, pods 0 and 65535."""
    for i in range(40):
        store.set("default", f"u{i}", "game", i % 5, 600_000 + i * 1000)
    for i in range(10):
        store.set("default", f"p{i}", "game", 65535 if i == 0 else 0)
        store.set("default", f"p{i}", "chat", 2)  # an index hash with two fields
        store.set("default", f"p{i}", "shop", 1, 120_000)  # and a temporary link beside them
    for n, uid in enumerate(ODD_UIDS):
        store.set("default", uid, "game", n, None if n % 2 else 300_000)
    store.set("eu", "u1", "game", 9)  # another namespace: not in the default export


def export_lines(url, *args):
    result = cli("--redis-url", url, "export", *args)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def importing(url, *args, input=None):
    result = cli("--redis-url", url, "-o", "json", "import", *args) if input is None else _with_input(url, args, input)
    data = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, data, result.stderr


def _with_input(url, args, text):
    from typer.testing import CliRunner

    from stroute.cli.app import app

    result = CliRunner().invoke(app, ["--redis-url", url, "-o", "json", "import", *args], input=text)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"import raised {result.exception!r}\n{result.stderr}")
    return result


def ttls(client) -> dict[str, int]:
    return {key: client.pttl(key) for key in client.scan_iter(count=1000) if client.type(key) == "string"}


def line(**fields) -> str:
    base = {"schema": "stroute/export/v1", "namespace": "default", "uid": "u", "service": "game", "pod": 1,
            "persistent": True, "ttl_s": None}
    base.update(fields)
    return json.dumps(base)


# --- export ---------------------------------------------------------------------------------


def test_export_lines_shape(url, store):
    populate(store)
    lines = export_lines(url)
    assert len(lines) == 40 + 30 + len(ODD_UIDS)
    for rec in lines:
        assert list(rec) == FIELDS
        assert rec["schema"] == "stroute/export/v1" and rec["namespace"] == "default"
        assert isinstance(rec["uid"], str) and isinstance(rec["pod"], int)
        assert (rec["ttl_s"] is None) == rec["persistent"]
        if not rec["persistent"]:
            assert isinstance(rec["ttl_s"], (int, float)) and 0 < rec["ttl_s"] <= 640
    by_key = {(r["uid"], r["service"]): r for r in lines}
    assert by_key[("p0", "game")]["pod"] == 65535 and by_key[("p0", "game")]["persistent"] is True
    assert by_key[("u39", "game")]["ttl_s"] == pytest.approx(639, abs=3)
    assert {uid for uid, _ in by_key} >= set(ODD_UIDS)


def test_export_filters_and_stderr_count(url, store):
    populate(store)
    assert {r["service"] for r in export_lines(url, "-s", "chat")} == {"chat"}
    on_0 = export_lines(url, "-s", "game", "--pod", "0")
    assert on_0 and all(r["pod"] == 0 and r["service"] == "game" for r in on_0)
    assert len(export_lines(url, "--pod", "2")) == 8 + 10 + 1
    result = cli("--redis-url", url, "-n", "eu", "export")
    assert [json.loads(x)["uid"] for x in result.stdout.splitlines()] == ["u1"]
    assert "exported 1 link of namespace 'eu'" in result.stderr


def test_export_always_writes_json_lines(url, store):
    store.set("default", "a", "game", 1)
    for args in ((), ("-o", "json"), ("-o", "table")):
        result = cli("--redis-url", url, *args, "export")
        assert json.loads(result.stdout)["uid"] == "a"
    result = cli("--redis-url", url, "-o", "yaml", "export")
    assert result.exit_code == 2 and "JSON lines" in result.stderr


def test_export_bad_filters_are_exit_2(url):
    assert cli("--redis-url", url, "export", "--pod", "x").exit_code == 2
    assert cli("--redis-url", url, "export", "-s", "a:b").exit_code == 2


# --- the round trip -------------------------------------------------------------------------


def test_export_flush_import_gives_back_identical_data(url, store, tmp_path):
    populate(store)
    store.client.delete("sf:{eu:lk:u1}game", "sf:{eu:lk:u1}")  # only the exported namespace
    before, before_ttls = all_keys(store.client), ttls(store.client)
    result = cli("--redis-url", url, "export")
    (tmp_path / "links.jsonl").write_text(result.stdout)
    store.client.flushdb()
    assert all_keys(store.client) == {}
    code, data, stderr = importing(url, "links.jsonl")
    assert code == 0, stderr
    assert list(data) == REPORT_FIELDS
    assert data == {"schema": "stroute/import/v1", "namespace": "default", "imported": 77, "unchanged": 0, "kept": 0, "rejected": 0, "errors": [],
                    "dry_run": False, "bad_keys": {"count": 0, "keys": []}}
    # Same keys, same values, same persistent-or-not (all_keys), the index hashes restored...
    assert all_keys(store.client) == before
    check_invariant(store.client)
    # ... and the TTLs within a tolerance.
    after_ttls = ttls(store.client)
    for key, pttl in before_ttls.items():
        if pttl == -1:
            assert after_ttls[key] == -1, key
        else:
            assert abs(after_ttls[key] - pttl) < TTL_TOLERANCE_MS, (key, pttl, after_ttls[key])


@pytest.mark.realserver
def test_round_trip_through_the_installed_command(real_url, store_real, tmp_path):
    populate(store_real)
    before = all_keys(store_real.client)
    exported = run_bin(tmp_path, "--redis-url", real_url, "export")
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "backup.jsonl").write_text(exported.stdout)
    eu = run_bin(tmp_path, "--redis-url", real_url, "-n", "eu", "export")
    store_real.client.flushdb()
    imported = run_bin(tmp_path, "--redis-url", real_url, "-o", "json", "import", "backup.jsonl")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["imported"] == 77
    piped = run_bin(tmp_path, "--redis-url", real_url, "-n", "eu", "import", "-", input=eu.stdout)
    assert piped.returncode == 0, piped.stderr
    assert all_keys(store_real.client) == before


@pytest.fixture
def store_real(real_url):
    from stroute.store import Store

    s = Store.from_url(real_url)
    yield s
    s.close()


# --- idempotence, kept, overwrite -------------------------------------------------------------


def test_import_twice_changes_nothing(url, store, tmp_path):
    populate(store)
    (tmp_path / "f").write_text(cli("--redis-url", url, "export").stdout)
    before, before_ttls = all_keys(store.client), ttls(store.client)
    code, data, _ = importing(url, "f")
    assert (code, data["imported"], data["unchanged"]) == (0, 0, 77)
    assert all_keys(store.client) == before
    after = ttls(store.client)
    for key, pttl in before_ttls.items():  # an unchanged link keeps its TTL: not refreshed
        assert after[key] <= pttl


def test_a_different_existing_link_is_kept_unless_overwrite(url, store, tmp_path):
    (tmp_path / "f").write_text("\n".join([
        line(uid="a", pod=1),  # exists, another pod
        line(uid="b", pod=2),  # exists temporary: another kind
        line(uid="c", pod=3, persistent=False, ttl_s=60),  # exists persistent: another kind
        line(uid="d", pod=4),  # new
    ]) + "\n")
    store.set("default", "a", "game", 7)
    store.set("default", "b", "game", 2, 600_000)
    store.set("default", "c", "game", 3)
    code, data, stderr = importing(url, "f")
    assert (code, data["imported"], data["kept"], data["unchanged"]) == (0, 1, 3, 0)
    assert "3 links already exist with another pod or kind and were kept; --overwrite" in stderr
    assert store.get("default", "a", "game").pod == 7
    assert not store.get("default", "b", "game").persistent
    code, data, _ = importing(url, "f", "--overwrite")
    assert (code, data["imported"], data["unchanged"]) == (0, 3, 1)
    assert store.get("default", "a", "game").pod == 1
    assert store.get("default", "b", "game").persistent
    c = store.get("default", "c", "game")
    assert not c.persistent and 55_000 < c.ttl_ms <= 60_000
    assert store.links_of("default", "c") == {}
    check_invariant(store.client)


def test_dry_run_writes_nothing_and_says_what_it_would_do(url, store, tmp_path):
    (tmp_path / "f").write_text("\n".join([line(uid="a", pod=1), line(uid="b", pod=2), line(uid="c", pod=3),
                                           "not json"]) + "\n")
    store.set("default", "a", "game", 1)
    store.set("default", "b", "game", 9)
    before = all_keys(store.client)
    code, data, stderr = importing(url, "f", "--dry-run")
    assert code == 2
    assert (data["imported"], data["unchanged"], data["kept"], data["rejected"], data["dry_run"]) == (1, 1, 1, 1, True)
    assert "the other lines were checked" in stderr
    assert all_keys(store.client) == before
    code, data, _ = importing(url, "f", "--dry-run", "--overwrite")
    assert (data["imported"], data["kept"]) == (2, 0)
    assert all_keys(store.client) == before


# --- validation -------------------------------------------------------------------------------

BAD_LINES = [
    ("{not json", "not valid JSON at column 2"),
    ("[1, 2]", "expected a JSON object"),
    ('"u"', "got a string"),
    (json.dumps({"namespace": "default", "uid": "u", "service": "game", "pod": 1, "persistent": True}),
     "missing field 'ttl'"),
    (line(persistant=True), "unknown field 'persistant'"),
    (line(namespace="eu"), "namespace 'eu' is not the namespace being imported into ('default'); import it with -n eu"),
    (line(namespace="e:u"), "invalid namespace 'e:u'"),
    (line(uid="a b"), "invalid uid 'a b'"),
    (line(uid="a{b"), "invalid uid 'a{b'"),
    (line(uid=42), "invalid uid 42: must be a JSON string"),
    (line(uid=""), "invalid uid ''"),
    (line(service="x/y"), "invalid service 'x/y'"),
    (line(pod=-1), "invalid pod -1"),
    (line(pod=65536), "invalid pod 65536"),
    (line(pod="3"), "invalid pod '3'"),
    (line(pod=1.5), "invalid pod 1.5"),
    (line(pod=True), "invalid pod True"),
    (line(pod=None), "invalid pod None"),
    (line(persistent="yes"), "invalid persistent 'yes'"),
    (line(ttl_s=30), "a persistent link has \"ttl_s\": null"),
    (line(persistent=False, ttl_s=None), "invalid ttl_s None"),
    (line(persistent=False, ttl_s=0), "invalid ttl_s 0"),
    (line(persistent=False, ttl_s=-5), "invalid ttl_s -5"),
    (line(persistent=False, ttl_s="60"), "invalid ttl_s '60'"),
    (line(persistent=False, ttl_s=1e300), "invalid ttl_s 1e+300"),
    (line(schema="stroute/export/v2"), "schema 'stroute/export/v2' is not 'stroute/export/v1'"),
    (line(schema=None), "schema None is not 'stroute/export/v1'"),
    (json.dumps({k: v for k, v in json.loads(line()).items() if k != "ttl_s"}), "missing field 'ttl_s'"),
    (json.dumps({**json.loads(line()), "ttl": None}), "unknown field 'ttl'"),
    (json.dumps({k: v for k, v in json.loads(line()).items() if k != "schema"}),
     'missing field \'ttl\' (a line without "schema": \'stroute/export/v1\' is read as an export made before it)'),
    ('{"namespace": "default", "uid": "u", "service": "game", "pod": 1, "persistent": false, "ttl": NaN}',
     "NaN is no JSON number"),
]


@pytest.mark.parametrize("text, message", BAD_LINES)
def test_each_bad_line_is_rejected_with_a_reason(text, message):
    with pytest.raises(InvalidInput) as caught:
        parse_line(text, "default")
    assert message in str(caught.value)


def test_bad_lines_are_reported_by_number_and_the_good_ones_imported(url, store, tmp_path):
    good = [line(uid="g1", pod=1), line(uid="g2", pod=2, persistent=False, ttl_s=90.5)]
    bad = [text for text, _ in BAD_LINES]
    lines = [good[0], *bad[:10], "", "   ", good[1], *bad[10:], line(uid="g1", pod=5)]
    (tmp_path / "f").write_text("\n".join(lines) + "\n")
    code, data, stderr = importing(url, "f")
    assert code == 2
    assert (data["imported"], data["rejected"]) == (2, len(BAD_LINES) + 1)
    numbers = [e["line"] for e in data["errors"]]
    expected = list(range(2, 12)) + list(range(15, 15 + len(bad) - 10)) + [15 + len(bad) - 10]
    assert numbers == expected
    assert data["errors"][-1]["error"] == "uid 'g1' of service 'game' is already on line 1 with another pod or kind"
    assert "stroute: line 2: not valid JSON at column 2" in stderr
    assert f"{len(BAD_LINES) + 1} of {len(BAD_LINES) + 3} lines rejected; nothing of them was written" in stderr
    assert f"... and {len(BAD_LINES) + 1 - 20} more rejected lines" in stderr
    assert len(error_lines(stderr)) == 1
    # Nothing of a bad line was written: only the two good links exist.
    assert {(link.uid, link.pod) for link in store.scan_links("default")} == {("g1", 1), ("g2", 2)}
    assert 85_000 < store.get("default", "g2", "game").ttl_ms <= 90_500
    check_invariant(store.client)


def test_an_export_made_before_the_json_contract_still_imports(url, store, tmp_path):
    """Lines with no "schema" and "ttl" (not "ttl_s"): the backups made before v1."""
    old = [{"namespace": "default", "uid": "a", "service": "game", "pod": 1, "persistent": True, "ttl": None},
           {"namespace": "default", "uid": "b", "service": "game", "pod": 2, "persistent": False, "ttl": 90.5}]
    (tmp_path / "old.jsonl").write_text("".join(json.dumps(o) + "\n" for o in old))
    code, data, stderr = importing(url, "old.jsonl")
    assert (code, data["imported"], data["rejected"]) == (0, 2, 0), stderr
    assert store.get("default", "a", "game").persistent
    assert 85_000 < store.get("default", "b", "game").ttl_ms <= 90_500
    # and exported again, they come out in the v1 format
    assert {(r["uid"], r["schema"], r["ttl_s"] is None) for r in export_lines(url)} == {
        ("a", "stroute/export/v1", True), ("b", "stroute/export/v1", False)}


def test_non_utf8_and_bom(url, store, tmp_path):
    data = b"\xef\xbb\xbf" + line(uid="a").encode() + b"\n" + b'{"uid": "\xff"}\n' + line(uid="b").encode() + b"\n"
    (tmp_path / "f").write_bytes(data)
    code, report, _ = importing(url, "f")
    assert code == 2
    assert (report["imported"], report["errors"]) == (2, [{"line": 2, "error": "not valid UTF-8 (byte 10)"}])


def test_many_rejections_are_counted_past_the_listed_ones(store):
    report = import_links(store, "default", ["junk"] * (MAX_ERRORS_KEPT + 5))
    assert report.rejected == MAX_ERRORS_KEPT + 5 and len(report.errors) == MAX_ERRORS_KEPT


def test_import_from_stdin_and_table(url, store):
    code, data, _ = importing(url, "-", input=line(uid="s1") + "\n" + line(uid="s2", pod=0) + "\n")
    assert (code, data["imported"]) == (0, 2)
    from typer.testing import CliRunner

    from stroute.cli.app import app

    result = CliRunner().invoke(app, ["--redis-url", url, "import", "-"], input=line(uid="s1") + "\n")
    assert "imported 0, unchanged 1, kept 0, rejected 0 (namespace 'default')" in result.stdout


def test_import_into_another_namespace(url, store):
    code, data, _ = importing(url, "-", input=line(namespace="eu", uid="e") + "\n")
    assert (code, data["rejected"]) == (2, 1)
    from typer.testing import CliRunner

    from stroute.cli.app import app

    result = CliRunner().invoke(app, ["--redis-url", url, "-n", "eu", "-o", "json", "import", "-"],
                                input=line(namespace="eu", uid="e") + "\n")
    assert json.loads(result.stdout)["imported"] == 1
    assert store.get("eu", "e", "game").pod == 1


def test_missing_file_is_exit_2(url):
    code, data, stderr = importing(url, "nope.jsonl")
    assert (code, data) == (2, None)
    assert "cannot read 'nope.jsonl'" in stderr


@pytest.mark.realserver
def test_a_file_that_opens_but_cannot_be_read_is_exit_2(real_url, store_real, tmp_path):
    """/proc/self/mem opens, and its first read fails (EIO): exit 2 naming it, not 'unexpected OSError'."""
    store_real.set("default", "keep", "game", 1)
    before = all_keys(store_real.client)
    for path, named in (("/proc/self/mem", "cannot read '/proc/self/mem' at its first line: Input/output error"),
                        (str(tmp_path), f"cannot read '{tmp_path}': Is a directory")):
        code, data, stderr = importing(real_url, path)
        assert (code, data) == (2, None), stderr
        lines = error_lines(stderr)
        assert len(lines) == 1 and named in lines[0], stderr
        assert "unexpected" not in stderr
    assert all_keys(store_real.client) == before


def test_large_import_is_pipelined_in_batches(url, store):
    lines = [line(uid=f"u{i}", pod=i % 7, persistent=bool(i % 2), ttl_s=None if i % 2 else 100) for i in range(1234)]
    report = import_links(store, "default", lines)
    assert (report.imported, report.rejected) == (1234, 0)
    again = import_links(store, "default", lines)
    assert again.unchanged == 1234
    check_invariant(store.client)


@pytest.mark.realserver
def test_export_into_a_reader_that_stops_early(real_url, store_real, tmp_path):
    import subprocess

    from ops_support import bin_env, stroute_bin

    pipe = store_real.client.pipeline(transaction=False)
    for i in range(5000):
        pipe.set(f"sf:{{default:lk:u{i}}}game", str(i % 4))
    pipe.execute()
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {stroute_bin()} --redis-url {real_url} export | head -1"],
                            capture_output=True, text=True, cwd=tmp_path, env=bin_env(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["service"] == "game"
    assert "error" not in result.stderr
