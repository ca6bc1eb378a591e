"""`stroute tag get|set`."""

from __future__ import annotations

import pytest

from link_place_support import all_keys, error_lines, isolated, run, run_json  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated")


def tag(url, *args, env=None):
    return run_json("--redis-url", url, "tag", *args, env=env)


def test_set_then_get(url, store):
    code, data, _ = tag(url, "set", "lobby", "lobby-v2")
    assert code == 0
    assert data == {"schema": "stroute/tag-set/v1", "namespace": "default", "tag": "lobby", "service": "lobby-v2",
                    "previous": None}
    assert store.get_tag("default", "lobby") == "lobby-v2"
    code, data, _ = tag(url, "get", "lobby")
    assert (code, data) == (0, {"schema": "stroute/tag-get/v1", "namespace": "default", "tag": "lobby",
                                "service": "lobby-v2"})


def test_set_again_reports_previous(url):
    tag(url, "set", "lobby", "lobby-v1")
    code, data, _ = tag(url, "set", "lobby", "lobby-v2")
    assert (code, data["service"], data["previous"]) == (0, "lobby-v2", "lobby-v1")


def test_get_unknown_tag_is_exit_3_with_null_service(url):
    code, data, err = tag(url, "get", "nothing")
    assert code == 3
    assert data == {"schema": "stroute/tag-get/v1", "namespace": "default", "tag": "nothing", "service": None}
    assert error_lines(err) == ["stroute: error: tag 'nothing' is not set in namespace 'default'"]


def test_tags_are_per_namespace(url, store):
    assert run_json("--redis-url", url, "-n", "eu", "tag", "set", "lobby", "lobby-eu")[0] == 0
    assert store.get_tag("eu", "lobby") == "lobby-eu"
    assert tag(url, "get", "lobby")[0] == 3


def test_table_output(url):
    result = run("--redis-url", url, "tag", "set", "lobby", "lobby-v2")
    assert result.exit_code == 0 and "lobby-v2" in result.stdout and "PREVIOUS" in result.stdout
    result = run("--redis-url", url, "tag", "get", "lobby")
    assert result.exit_code == 0 and "lobby-v2" in result.stdout
    result = run("--redis-url", url, "tag", "get", "nothing")
    assert result.exit_code == 3 and result.stdout == ""


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["tag", "set", "lob:by", "lobby-v2"], "'lob:by'"),
        (["tag", "set", "lobby", "lobby v2"], "'lobby v2'"),
        (["tag", "set", "lobby", "{x}"], "'{x}'"),
        (["tag", "get", "_bad"], "'_bad'"),
        (["-n", "a:b", "tag", "set", "lobby", "lobby-v2"], "'a:b'"),
    ],
)
def test_bad_names_are_exit_2_and_write_nothing(url, store, args, named):
    before = all_keys(store.client)
    result = run("--redis-url", url, *args)
    assert result.exit_code == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and named in lines[0]
    assert all_keys(store.client) == before


def test_get_escapes_terminal_control_sequences_stored_in_redis(url, store):
    """A tag written by another program may hold anything; the table never sends it to the terminal raw."""
    value = "lobby\x1b[31mRED\x1b[0m\x07\u200b\u202e[bold]x:smile:"
    store.client.set("sf:{default:tag:lobby}", value)
    result = run("--redis-url", url, "tag", "get", "lobby")
    assert result.exit_code == 0
    for raw in ("\x1b", "\x07", "\u200b", "\u202e"):
        assert raw not in result.stdout
    assert "lobby\\x1b[31mRED\\x1b[0m\\x07\\u200b\\u202e[bold]x:smile:" in result.stdout  # shown, escaped, no markup
    code, data, _ = tag(url, "get", "lobby")
    assert code == 0 and data["service"] == value  # JSON carries the value itself, escaped by JSON
