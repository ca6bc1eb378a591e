"""No command prints a password, whatever the URL and whatever fails (issue 11, item 15).

Generated: a secret (letters, digits and, written raw into the user info,
the characters URL parsers split at) carried in the URL's user info, in a
`?password=` or `?sentinel_password=` query, in STROUTE_REDIS_PASSWORD or
STROUTE_REDIS_SENTINEL_PASSWORD, in a config file or a password file; a
URL of any scheme, good or broken, at nothing (port 1 of loopback), at the
real test server (which has no password, so it refuses the AUTH) or at
no valid host; then any command, in any output format, sometimes with
STROUTE_DEBUG=1 (a traceback). The secret, as written or percent-encoded,
must appear in no byte of stdout or stderr. The commands run in-process
(CliRunner), each through its own error path: invalid URL (2), refused
credentials or unreachable (6), not a cluster (6), bad arguments (2).
"""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cli.ops_support import cli, isolated  # noqa: F401

pytestmark = [pytest.mark.usefixtures("isolated"), pytest.mark.realserver]

SAFE = string.ascii_letters + string.digits + "-._~!$*()"
RAW_ONLY = "@:/?#%&=+,;[] "  # characters only a raw user info or config value would hold

secrets = st.builds(lambda a, b: f"Zq{a}{b}Q9", st.text(alphabet=SAFE, min_size=4, max_size=10),
                    st.text(alphabet=SAFE + RAW_ONLY, max_size=6))

PLACES = ["userinfo", "userinfo-encoded", "user-and-password", "query", "sentinel-query", "env", "env-sentinel",
          "file", "password-file"]
SCHEMES = ["redis", "rediss", "REDIS", "unix", "redis+cluster", "redis+sentinel", "Redis+Sentinel", "rediz", "memory",
           ""]
COMMANDS = [
    ["link", "get", "u", "-s", "game"],
    ["link", "set", "u", "-s", "game", "--pod", "1"],
    ["link", "set", "u", "-s", "game", "--pod", "99999999"],  # refused before any connection
    ["link", "remove", "u", "-s", "game"],
    ["link", "list"],
    ["link", "batch-get", "-s", "game", "a", "b"],
    ["place", "-s", "game", "u"],
    ["pods", "-s", "game"],
    ["top"],
    ["tag", "get", "lobby"],
    ["tag", "set", "lobby", "game"],
    ["pod", "cordon", "-s", "game", "--pod", "0"],
    ["doctor"],
    ["export"],
    ["import", "-"],
    ["config", "show"],
    ["config", "validate"],
    ["acl", "--user", "u"],
    ["serve", "--once", "-s", "game", "--pod", "0", "--load", "1"],
]


def hosts(real_port: int):
    return st.sampled_from(["127.0.0.1:1", f"127.0.0.1:{real_port}", "[::1]:1", "127.0.0.1:99999", "bad host:1",
                            "", "127.0.0.1:1,127.0.0.1:x", "localhost:1"])


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), secret=secrets, place=st.sampled_from(PLACES), scheme=st.sampled_from(SCHEMES),
       path=st.sampled_from(["", "/0", "/abc", "/mymaster", "/mymaster/1"]),
       command=st.sampled_from(COMMANDS), output=st.sampled_from(["table", "json", "yaml"]),
       debug=st.booleans())
def test_no_error_path_prints_the_secret(isolated, redis_server, data, secret, place, scheme, path, command,
                                         output, debug):
    host = data.draw(hosts(redis_server.port))
    for left in ("stroute.yaml", "pw"):  # from an earlier example: each starts with no file
        (isolated / left).unlink(missing_ok=True)
    encoded = quote(secret, safe="")
    userinfo, query, env = "", "", {"STROUTE_DEBUG": "1"} if debug else {}
    if place == "userinfo":
        userinfo = f":{secret}@"
    elif place == "userinfo-encoded":
        userinfo = f":{encoded}@"
    elif place == "user-and-password":
        userinfo = f"admin:{secret}@"
    elif place == "query":
        query = f"?password={encoded}"
    elif place == "sentinel-query":
        query = f"?sentinel_password={encoded}"
    elif place == "env":
        env["STROUTE_REDIS_PASSWORD"] = secret
    elif place == "env-sentinel":
        env["STROUTE_REDIS_SENTINEL_PASSWORD"] = secret
    elif place == "file":
        (isolated / "stroute.yaml").write_text(f"redis:\n  password: {quote_yaml(secret)}\n")
    else:
        (isolated / "pw").write_text(secret + "\n")
        (isolated / "stroute.yaml").write_text("redis:\n  password_file: pw\n")
    url = f"{scheme}://{userinfo}{host}{path}{query}" if scheme else f"{userinfo}{host}{path}{query}"
    result = cli("-o", output, "--redis-url", url, *command, env=env)
    text = result.stdout + result.stderr
    for shape in {secret, encoded}:
        assert shape not in text, (url, command, result.exit_code, text)
    assert result.exit_code in (0, 2, 3, 5, 6), (url, command, result.exit_code, text)
    event(f"exit {result.exit_code}")  # --hypothesis-show-statistics: every error path is reached


def quote_yaml(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def test_the_split_hosts_message_of_the_issue_hides_the_password(isolated):
    result = cli("--redis-url", "redis+cluster://127.0.0.1:7000,127.0.0.1:x?password=SECRET-of-the-issue",
                 "link", "get", "u", "-s", "game")
    assert result.exit_code == 2
    assert "SECRET-of-the-issue" not in result.stdout + result.stderr
    assert "invalid host '127.0.0.1:x'" in result.stderr and "password=***" in result.stderr
