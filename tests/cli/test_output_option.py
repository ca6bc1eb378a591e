"""`-o` works before or after the command; usage errors are one plain line."""

from __future__ import annotations

import json

import pytest
import yaml

from link_place_support import isolated, run  # noqa: F401  (fixture)
from stroute.testing import RedisServer


@pytest.mark.parametrize("place", ["before", "after"])
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_output_option_before_or_after_the_command(isolated, url, place, fmt):
    run("--redis-url", url, "link", "set", "42", "-s", "lobby", "--pod", "0")
    command = ["link", "get", "42", "-s", "lobby"]
    args = ["--redis-url", url, *(["-o", fmt, *command] if place == "before" else [*command, "-o", fmt])]
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    if fmt == "json":
        assert json.loads(result.stdout)["links"][0]["pod"] == 0
    else:
        assert yaml.safe_load(result.stdout)["links"][0]["pod"] == 0


def test_the_later_output_option_wins(isolated, url):
    run("--redis-url", url, "link", "set", "42", "-s", "lobby", "--pod", "1")
    result = run("--redis-url", url, "-o", "yaml", "link", "get", "42", "-s", "lobby", "--output", "json")
    assert json.loads(result.stdout)["links"][0]["pod"] == 1


@pytest.mark.parametrize("place", ["before", "after"])
def test_unknown_output_is_a_plain_usage_error_naming_the_value_and_the_choices(isolated, url, place):
    command = ["link", "get", "42", "-s", "lobby"]
    args = ["-o", "xml", *command] if place == "before" else [*command, "-o", "xml"]
    result = run("--redis-url", url, *args)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: Invalid value for '-o' / '--output': "
                      "'xml' is not one of 'table', 'wide', 'name', 'json', 'yaml'."]
    assert "╭" not in result.stderr  # no Rich box: one plain line a CI log keeps readable
    assert result.stdout == ""


def test_a_wrong_password_is_reported_as_refused_credentials(isolated):
    server = RedisServer("--requirepass", "right-secret").start()
    try:
        url = f"redis://default:wrong-secret@127.0.0.1:{server.port}/0"
        result = run("--redis-url", url, "link", "get", "42", "-s", "lobby")
        assert result.exit_code == 6
        assert "refused the credentials" in result.stderr
        assert "wrong-secret" not in result.stderr + result.stdout
        assert "right-secret" not in result.stderr + result.stdout
    finally:
        server.close()
