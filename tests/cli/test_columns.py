"""Tables for people, columns for pipes; listings that stream as they scan."""

from __future__ import annotations

import json
import subprocess

import pytest

from link_place_support import run_bin
from ops_support import cli, cli_json, isolated, put_state, redis_millis  # noqa: F401
from stroute.podstate import RoutingState

pytestmark = pytest.mark.usefixtures("isolated")

BOX = set("│─┼╭╮╰╯├┤┬┴═║+|…")  # Rich's borders (rounded and ASCII) and its ellipsis
LONG_UID = "u" + "x" * 200  # wider than any terminal: a table would cut or wrap it


def plant(store) -> None:
    """Pods in every state, a DEGRADED service, links of both kinds (one with a long uid)."""
    client = store.client
    put_state(client, "lobby", 0, load=5, epoch=redis_millis(client) - 5000)
    put_state(client, "lobby", 1, load=7, state=RoutingState.DRAINING)
    put_state(client, "lobby", 2, load=9, state=RoutingState.DOWN)
    put_state(client, "lobby", 3, load=1, age_ms=120_000)  # STALE
    store.set("default", LONG_UID, "lobby", 0)
    store.set("default", "t1", "lobby", 1, 600_000)
    store.set("default", "p1", "chat", 2)


def assert_columns(out: str) -> list[list[str]]:
    """Plain columns: ASCII, no border or ellipsis, every line the header's number of fields."""
    assert out.isascii() and not BOX & set(out), out
    lines = [line.split() for line in out.splitlines()]
    assert lines and all(len(fields) == len(lines[0]) for fields in lines), out
    return lines


# --- pipes ------------------------------------------------------------------------------


@pytest.mark.realserver
def test_pipe_output_is_columns_grep_finds_every_state(real_url, redis_server, tmp_path):
    from stroute.store import Store

    store = Store.from_url(real_url)
    try:
        plant(store)
    finally:
        store.close()
    top = run_bin(tmp_path, "--redis-url", real_url, "top", "--count-links", COLUMNS="40")
    assert top.returncode == 0, top.stderr
    rows = assert_columns(top.stdout)
    assert rows[0][:3] == ["SERVICE", "POD", "STATE"] and "LINKS" in rows[0]
    states = [row[2] for row in rows[1:]]
    for state in ("READY", "DRAINING", "DOWN", "STALE", "DEGRADED"):
        assert state in states, (state, top.stdout)
    # What `stroute top --count-links | grep -c DEGRADED` counts.
    grep = subprocess.run(["grep", "-c", "DEGRADED"], input=top.stdout, capture_output=True, text=True)
    assert grep.stdout.strip() == "1"
    listed = run_bin(tmp_path, "--redis-url", real_url, "link", "list", COLUMNS="40")
    assert listed.returncode == 0, listed.stderr
    rows = assert_columns(listed.stdout)
    assert rows[0] == ["UID", "SERVICE", "POD", "KIND", "TTL"]
    assert [LONG_UID, "lobby", "0", "persistent", "-"] in rows  # whole, at any terminal width
    assert "3 links" in listed.stderr


def test_no_headers_wide_and_name(url, store):
    plant(store)
    bare = cli("--redis-url", url, "--no-headers", "link", "list", "--sort")
    rows = assert_columns(bare.stdout)
    assert rows == [["p1", "chat", "2", "persistent", "-"], ["t1", "lobby", "1", "temporary", rows[1][4]],
                    [LONG_UID, "lobby", "0", "persistent", "-"]]
    assert rows[1][4].endswith("s") and 590 <= int(rows[1][4][:-1]) <= 600
    wide = cli("--redis-url", url, "link", "list", "-o", "wide", "--kind", "temporary", "--no-headers")
    assert assert_columns(wide.stdout)[0][5] == store.keys("default").link("t1", "lobby")
    names = cli("--redis-url", url, "-o", "name", "link", "list", "--sort")
    assert names.stdout.splitlines() == ["p1", "t1", LONG_UID]
    pods = cli("--redis-url", url, "-o", "name", "pods", "-s", "lobby")
    assert pods.stdout.splitlines() == ["lobby/0", "lobby/1", "lobby/2", "lobby/3"]
    top = cli("--redis-url", url, "top", "-o", "wide")
    header = assert_columns(top.stdout)[0]
    assert header[-2:] == ["EPOCH", "REASON"]
    headerless = cli("--redis-url", url, "pods", "-s", "lobby", "--no-headers")
    assert headerless.stdout.splitlines()[0].split()[:2] == ["lobby", "0"]


def test_name_is_refused_where_nothing_is_listed_and_nothing_is_written(url, store):
    result = cli("--redis-url", url, "-o", "name", "link", "set", "u1", "-s", "lobby", "--pod", "1")
    assert result.exit_code == 2 and "-o name applies to commands that list things" in result.stderr
    assert store.get("default", "u1", "lobby") is None


def test_a_terminal_too_narrow_drops_low_priority_columns_and_says_so(monkeypatch, url, store):
    from rich.console import Console

    import stroute.cli.pods as pods_cli
    from stroute.cli import output

    plant(store)
    monkeypatch.setattr(pods_cli, "columns_wanted", lambda: False)  # render as for a terminal
    views, _ = pods_cli._top_views(type("G", (), {"config": lambda self: _config(url), "store": lambda self: store})())
    out = Console(width=60, force_terminal=True, color_system=None, record=True)
    output.print_fitted(out, output._safe(pods_cli.render(views, namespace="default")))
    text = out.export_text()
    assert "…" not in text
    assert "2 columns hidden to fit 60 columns: Up, bar" in text  # the bar first, then the incarnation age
    for state in ("READY", "DRAINING", "DOWN", "STALE"):
        assert state in text
    wide = Console(width=200, force_terminal=True, color_system=None, record=True)
    output.print_fitted(wide, output._safe(pods_cli.render(views, namespace="default")))
    assert "hidden" not in wide.export_text()


def _config(url):
    from stroute.config import Config

    return Config().with_overrides(**{"redis.url": url})


# --- streaming ----------------------------------------------------------------------------


def _many(store, n: int) -> None:
    pipe = store.client.pipeline(transaction=False)
    ks = store.keys("default")
    for i in range(n):
        pipe.set(ks.link(f"u{i}", "game"), i % 4)
    pipe.execute()


@pytest.mark.parametrize("fmt", [[], ["-o", "json"], ["-o", "name"]])
def test_first_rows_print_before_the_scan_ends(monkeypatch, url, store, fmt):
    """Hooks on each SCAN page parsed and on each write to stdout: the first
    row is written while pages are still to be read."""
    import sys

    import stroute.cli.link as link_cli
    from stroute.keys import KeySpace

    _many(store, 3000)
    events: list[str] = []
    parse = KeySpace.parse_link_columns
    monkeypatch.setattr(KeySpace, "parse_link_columns", lambda self, *a, **k: (events.append("page"), parse(self, *a, **k))[1])

    class Spy:
        def __init__(self, real):
            self.real = real

        def write(self, text):
            if text.strip():
                events.append("write")
            return self.real.write(text)

        def __getattr__(self, name):
            return getattr(self.real, name)

    real_print = link_cli._print_links

    def spied(*args, **kwargs):
        sys.stdout = Spy(sys.stdout)  # the runner's stdout, seen through the spy
        try:
            return real_print(*args, **kwargs)
        finally:
            sys.stdout = sys.stdout.real

    monkeypatch.setattr(link_cli, "_print_links", spied)
    result = cli("--redis-url", url, *fmt, "link", "list")
    assert result.exit_code == 0, result.stderr
    pages = events.count("page")
    assert pages >= 3, events
    assert events[:events.index("write")].count("page") < pages, events  # before the last page was read
    if fmt == ["-o", "json"]:
        data = json.loads(result.stdout)
        assert len(data["links"]) == 3000 and result.stdout == json.dumps(data, ensure_ascii=False) + "\n"
    else:
        assert len(result.stdout.splitlines()) == 3000 + (fmt == [])


def test_limit_stops_the_scan(monkeypatch, url, store):
    from stroute.keys import KeySpace

    _many(store, 3000)
    pages = []
    parse = KeySpace.parse_link_columns
    monkeypatch.setattr(KeySpace, "parse_link_columns", lambda self, *a, **k: (pages.append(1), parse(self, *a, **k))[1])
    code, data, _ = cli_json("--redis-url", url, "link", "list", "--limit", "5")
    assert code == 0 and len(data["links"]) == 5
    every = len(pages)
    pages.clear()
    cli_json("--redis-url", url, "link", "list")
    assert every < len(pages)


def test_sort_says_it_buffers_and_sorts(url, store):
    plant(store)
    code, data, err = cli_json("--redis-url", url, "link", "list", "--sort", "--limit", "2")
    assert code == 0 and "--sort: reading every link" in err
    assert [(r["service"], r["uid"]) for r in data["links"]] == [("chat", "p1"), ("lobby", "t1")]


# --- filters and counts ----------------------------------------------------------------------


def test_list_filters(url, store):
    plant(store)
    store.set("default", "t2", "lobby", 1, 5_000)

    def uids(*args):
        code, data, err = cli_json("--redis-url", url, "link", "list", *args)
        assert code == 0, err
        return sorted(r["uid"] for r in data["links"])

    assert uids("--kind", "temporary") == ["t1", "t2"]
    assert uids("--kind", "persistent") == ["p1", LONG_UID]
    assert uids("--ttl-below", "60") == ["t2"]
    assert uids("--uid-pattern", "t*") == ["t1", "t2"]
    assert uids("--uid-pattern", "[pt]1") == ["p1", "t1"]
    assert uids("--uid-pattern", "t?", "-s", "lobby", "--pod", "1", "--kind", "temporary") == ["t1", "t2"]
    assert uids("--uid-pattern", "nobody*") == []


@pytest.mark.parametrize("args, named", [
    (["--kind", "kept"], "'kept'"),
    (["--ttl-below", "0"], "'0'"),
    (["--ttl-below", "soon"], "'soon'"),
    (["--uid-pattern", "a{b"], "'a{b'"),
    (["--uid-pattern", "a b"], "'a b'"),
    (["--kind", "persistent", "--ttl-below", "5"], "--ttl-below"),
    (["--limit", "0"], "0"),
])
def test_list_bad_filters_are_exit_2(url, args, named):
    result = cli("--redis-url", url, "link", "list", *args)
    assert result.exit_code == 2 and named in result.stderr and result.stdout == ""


def test_link_count(url, store):
    plant(store)
    store.set("default", "t2", "lobby", 1, 5_000)
    code, data, err = cli_json("--redis-url", url, "link", "count")
    assert code == 0, err
    assert data == {"schema": "stroute/link-count/v1",
        "namespace": "default",
        "services": [
            {"service": "chat", "pods": [{"pod": 2, "persistent": 1, "temporary": 0, "total": 1}],
             "persistent": 1, "temporary": 0, "total": 1},
            {"service": "lobby", "pods": [{"pod": 0, "persistent": 1, "temporary": 0, "total": 1},
                                          {"pod": 1, "persistent": 0, "temporary": 2, "total": 2}],
             "persistent": 1, "temporary": 2, "total": 3},
        ],
        "total": 4,
        "bad_keys": {"count": 0, "keys": []},
    }
    assert cli_json("--redis-url", url, "link", "count", "-s", "chat")[1]["total"] == 1
    table = cli("--redis-url", url, "link", "count")
    rows = assert_columns(table.stdout)
    assert rows[0] == ["SERVICE", "POD", "PERSISTENT", "TEMPORARY", "TOTAL"]
    assert ["lobby", "all", "1", "2", "3"] in rows and "4 links" in table.stderr
    names = cli("--redis-url", url, "-o", "name", "link", "count")
    assert names.stdout.splitlines() == ["chat/2", "lobby/0", "lobby/1"]


def test_export_takes_the_listing_filters(url, store):
    plant(store)
    store.set("default", "t2", "chat", 1, 5_000)
    result = cli("--redis-url", url, "export", "--kind", "temporary", "--uid-pattern", "t*", "--ttl-below", "60")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["uid"] for line in result.stdout.splitlines()] == ["t2"]
    bad = cli("--redis-url", url, "export", "--kind", "kept")
    assert bad.exit_code == 2 and "'kept'" in bad.stderr and bad.stdout == ""


def test_a_streamed_listing_on_a_narrow_terminal_drops_columns_and_says_so(monkeypatch, capsys):
    from stroute.cli import output

    monkeypatch.setattr(output, "columns_wanted", lambda: False)  # as on a terminal
    monkeypatch.setattr(output, "plain", lambda: True)  # no bold escape in what is checked
    monkeypatch.setenv("COLUMNS", "40")
    output.configure(output="table", no_headers=False)
    stream = output.RowStream([output.Column("UID"), output.Column("Service", drop=1), output.Column("Pod"),
                               output.Column("Kind", drop=2), output.Column("TTL"), output.Column("Key", wide=True)])
    stream.add([["user-000001", "lobby-with-a-long-name", "3", "persistent", "-", "k1"]])
    stream.add([["u2", "lobby", "4", "temporary", "60s", "k2"]])
    out, err = capsys.readouterr()
    assert out.splitlines() == ["UID          POD  TTL", "user-000001  3    -", "u2           4    60s"]
    assert "Kind, Service columns hidden to fit 40 columns" in err
