"""`stroute config show|validate`, and passwords that are never echoed."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from link_place_support import error_lines, isolated, run, run_bin, run_json  # noqa: F401
from stroute.testing import RedisServer

pytestmark = pytest.mark.usefixtures("isolated")

SECRET = "s3cret-Pa55word-never-shown"
TOP_KEYS = ["schema", "namespace", "prefix", "layout", "redis", "state", "links", "placement", "server"]


def test_show_defaults():
    code, data, _ = run_json("config", "show")
    assert code == 0
    assert list(data) == TOP_KEYS
    assert data["schema"] == "stroute/config/v1" and data["namespace"] == "default" and data["prefix"] == "sf"
    assert data["layout"] == "homo-go"
    assert data["redis"]["url"] is None and data["redis"]["password"] is None
    assert data["state"] == {"period": 30.0, "expire": 60.0, "refresh": 2.0}
    assert data["links"] == {"temp_ttl": 300.0, "cache_seconds": 240.0, "remove_delay": 60.0,
                             "coherent": True, "coherence_bound": 1.0}
    assert data["placement"] == {"strategy": "p2c", "good_load_range": 500, "slow_start": 0.0}


def test_show_layers_file_then_environment_then_flags(isolated):
    (isolated / "stroute.yaml").write_text(
        "namespace: from-file\nstate:\n  period: 10\n  expire: 40\nplacement:\n  strategy: hash\n"
    )
    env = {"STROUTE_STATE_EXPIRE": "50", "STROUTE_NAMESPACE": "from-env"}
    code, data, _ = run_json("-n", "from-flag", "--redis-url", "redis://h:1/0", "config", "show", env=env)
    assert code == 0
    assert data["namespace"] == "from-flag"
    assert data["state"]["period"] == 10.0 and data["state"]["expire"] == 50.0
    assert data["placement"]["strategy"] == "hash"
    assert data["redis"]["url"] == "redis://h:1/0"

    table = run("-n", "from-flag", "config", "show", env={**env, "COLUMNS": "200"})  # no wrapped cells
    assert table.exit_code == 0
    # Columns in a pipe: cells are aligned under the header's fields (a cell may hold spaces).
    header, *lines = table.stdout.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)] + [None]
    rows = {}
    for line in lines:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:])]
        rows[cells[0]] = cells[1:3]
    assert rows["namespace"] == ["from-flag", "flag --namespace"]
    assert rows["state.expire"] == ["50.0", "env STROUTE_STATE_EXPIRE"]
    assert rows["state.period"] == ["10.0", "file"]
    assert rows["links.temp_ttl"] == ["300.0", "default"]
    assert rows["redis.url"] == ["- (using embedded://)", "default"]
    assert "stroute.yaml" in table.stderr  # the title: in a pipe, on stderr


def test_show_yaml_is_a_valid_config_file(isolated):
    (isolated / "stroute.yaml").write_text("state:\n  refresh: 0.5\n")
    result = run("-o", "yaml", "config", "show")
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["state"]["refresh"] == 0.5
    (isolated / "copy.yaml").write_text(result.stdout)
    code, data, _ = run_json("config", "validate", "copy.yaml")
    assert (code, data) == (0, {"schema": "stroute/config-validate/v1", "file": "copy.yaml", "valid": True,
                            "error": None})


def test_a_config_file_of_another_schema_version_is_refused(isolated):
    """`config show` names its format (schema: stroute/config/v1); a file naming another is exit 2."""
    (isolated / "next.yaml").write_text("schema: stroute/config/v2\nnamespace: eu\n")
    code, data, stderr = run_json("config", "validate", "next.yaml")
    assert code == 2 and data["valid"] is False
    assert "schema 'stroute/config/v2' is not 'stroute/config/v1'" in data["error"]
    assert run("--config", "next.yaml", "config", "show").exit_code == 2


@pytest.mark.parametrize("where", ["url", "env", "file", "password_file"])
def test_show_never_prints_the_password(isolated, where):
    env, args = {}, []
    if where == "url":
        args = ["--redis-url", f"redis://admin:{SECRET}@db.example:6379/0"]
    elif where == "env":
        env = {"STROUTE_REDIS_PASSWORD": SECRET}
    elif where == "file":
        (isolated / "stroute.yaml").write_text(f"redis:\n  password: {SECRET}\n")
    else:
        (isolated / "pw").write_text(SECRET + "\n")
        (isolated / "stroute.yaml").write_text(f"redis:\n  password_file: {isolated / 'pw'}\n")
    for fmt in ("json", "yaml", "table"):
        result = run("-o", fmt, *args, "config", "show", env=env)
        assert result.exit_code == 0
        assert SECRET not in result.stdout + result.stderr
        # the table masks it; the data formats leave it out and say where it came from
        assert ("***" in result.stdout) == (fmt == "table")
        if fmt != "table":
            assert "left out" in result.stderr
    data = run_json(*args, "config", "show", env=env)[1]
    if where == "url":
        assert data["redis"]["url"] == "redis://admin@db.example:6379/0"
    else:
        assert data["redis"]["password"] is None
        assert data["redis"]["password_file"] == (str(isolated / "pw") if where == "password_file" else None)


# --- validate -----------------------------------------------------------------------------


def test_validate_a_good_file(isolated):
    (isolated / "good.yaml").write_text("namespace: prod\nredis:\n  url: redis://db:6379/0\n")
    code, data, _ = run_json("config", "validate", "good.yaml")
    assert (code, data) == (0, {"schema": "stroute/config-validate/v1", "file": "good.yaml", "valid": True,
                            "error": None})
    result = run("config", "validate", "good.yaml")
    assert result.exit_code == 0 and "config file good.yaml is valid" in result.stdout


def test_validate_ignores_the_environment_for_a_named_file(isolated):
    (isolated / "good.yaml").write_text("namespace: prod\n")
    code, data, _ = run_json("config", "validate", "good.yaml", env={"STROUTE_STATE_PERIOD": "-1"})
    assert code == 0 and data["valid"] is True


def test_validate_the_effective_config(isolated):
    (isolated / "stroute.yaml").write_text("state:\n  period: 5\n")
    code, data, _ = run_json("config", "validate")
    assert (code, data) == (0, {"schema": "stroute/config-validate/v1", "file": "stroute.yaml", "valid": True,
                            "error": None})
    code, data, err = run_json("config", "validate", env={"STROUTE_STATE_PERIOD": "-1"})
    assert code == 2 and data["valid"] is False
    assert "state.period" in data["error"] and "environment" in data["error"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("state: [unclosed\n", "not valid YAML at line"),
        ("- a list\n", "must hold a mapping"),
        ("nonsense: 1\n", "'nonsense'"),
        ("state:\n  periodd: 3\n", "state.periodd"),
        ("state:\n  period: -1\n", "state.period"),
        ("state:\n  period: soon\n", "'soon'"),
        ("namespace: 'a:b'\n", "'a:b'"),
        ("server:\n  cpu_factor: 2\n", "server.cpu_factor"),
        ("placement:\n  strategy: random\n", "'random'"),
        ("state:\n  period: 90\n  expire: 60\n", "state.period"),
        ("redis:\n  url: http://x\n", "'http://'"),
        ("redis:\n  password_file: /nonexistent/pw\n", "/nonexistent/pw"),
    ],
)
def test_validate_a_bad_file_is_exit_2_naming_the_problem(isolated, text, named):
    (isolated / "bad.yaml").write_text(text)
    code, data, err = run_json("config", "validate", "bad.yaml")
    assert code == 2
    assert data["file"] == "bad.yaml" and data["valid"] is False and named in data["error"]
    lines = error_lines(err)
    assert len(lines) == 1 and named in lines[0]
    table = run("config", "validate", "bad.yaml")
    assert table.exit_code == 2 and table.stdout == ""


def test_validate_a_missing_file_is_exit_2():
    code, data, err = run_json("config", "validate", "nowhere.yaml")
    assert code == 2 and "nowhere.yaml" in err and "does not exist" in err


def test_broken_config_file_fails_show_with_exit_2(isolated):
    (isolated / "broken.yaml").write_text("state: [1\n")
    result = run("--config", "broken.yaml", "config", "show")
    assert result.exit_code == 2
    assert len(error_lines(result.stderr)) == 1 and "broken.yaml" in result.stderr


def test_config_file_from_environment_variable(isolated):
    (isolated / "elsewhere.yaml").write_text("namespace: via-env\n")
    code, data, _ = run_json("config", "show", env={"STROUTE_CONFIG": str(isolated / "elsewhere.yaml")})
    assert code == 0 and data["namespace"] == "via-env"


# --- a wrong password is never echoed (real server with requirepass) ---------------------------------


class LockedRedisServer(RedisServer):
    """A redis-server that requires a password (its own client knows it)."""

    PASSWORD = "the-right-one"

    def __init__(self) -> None:
        super().__init__("--requirepass", self.PASSWORD)

    def client(self, **kwargs):
        return super().client(password=self.PASSWORD, **kwargs)


@pytest.fixture(scope="module")
def locked_server():
    server = LockedRedisServer().start()
    yield server
    server.close()


@pytest.mark.realserver
def test_wrong_password_is_never_echoed(locked_server, tmp_path):
    port = locked_server.port
    wrong = "wr0ng-Pa55-do-not-echo"
    (tmp_path / "pw.yaml").write_text(f"redis:\n  url: redis://127.0.0.1:{port}/0\n  password: {wrong}\n")
    attempts = [
        (["--redis-url", f"redis://:{wrong}@127.0.0.1:{port}/0"], {}),
        (["--redis-url", f"redis://default:{wrong}@127.0.0.1:{port}/0"], {}),
        (["--redis-url", f"redis://127.0.0.1:{port}/0"], {"STROUTE_REDIS_PASSWORD": wrong}),
        (["--config", "pw.yaml"], {}),
    ]
    commands = [["link", "set", "u1", "-s", "game", "--pod", "1"], ["place", "-s", "game", "u1"],
                ["tag", "get", "lobby"]]
    for i, (args, env) in enumerate(attempts):
        for command in commands if i == 0 else commands[:1]:
            proc = run_bin(tmp_path, *args, *command, **env)
            assert proc.returncode == 6, (args, command, proc.stderr)
            assert wrong not in proc.stdout + proc.stderr
            assert "Traceback" not in proc.stderr
            assert len(error_lines(proc.stderr)) == 1
        shown = run_bin(tmp_path, *args, "-o", "json", "config", "show", **env)
        assert shown.returncode == 0 and wrong not in shown.stdout + shown.stderr
    # The right password works, and is not echoed either.
    proc = run_bin(tmp_path, "--redis-url", f"redis://127.0.0.1:{port}/0", "-o", "json",
                   "link", "set", "u1", "-s", "game", "--pod", "1",
                   STROUTE_REDIS_PASSWORD=LockedRedisServer.PASSWORD)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pod"] == 1
    assert LockedRedisServer.PASSWORD not in proc.stdout + proc.stderr


# --- config show -o yaml is a config file safe to keep (issue 11, item 16) -------------------------------------


@pytest.mark.realserver
@pytest.mark.parametrize("where", ["url", "env", "file"])
def test_show_yaml_saved_as_a_file_authenticates_as_before_and_holds_no_secret(locked_server, isolated, where):
    """The output leaves the password out (a '***' would be sent as the password) and says where it was."""
    right = LockedRedisServer.PASSWORD
    port = locked_server.port
    args, env = [], {}
    if where == "url":
        args = ["--redis-url", f"redis://default:{right}@127.0.0.1:{port}/0"]
    elif where == "env":
        args, env = ["--redis-url", f"redis://127.0.0.1:{port}/0"], {"STROUTE_REDIS_PASSWORD": right}
    else:
        (isolated / "stroute.yaml").write_text(f"redis:\n  url: redis://127.0.0.1:{port}/0\n  password: {right}\n")
    shown = run("-o", "yaml", *args, "config", "show", env=env)
    assert shown.exit_code == 0, shown.stderr
    assert right not in shown.stdout + shown.stderr and "***" not in shown.stdout
    assert "left out" in shown.stdout.splitlines()[0] and shown.stdout.startswith("# ")  # the note travels with it
    assert "left out" in shown.stderr
    saved = isolated / "saved.yaml"
    saved.write_text(shown.stdout)
    tree = yaml.safe_load(shown.stdout)
    assert tree["redis"]["password"] is None and tree["redis"]["url"] == f"redis://{'default@' if where == 'url' else ''}127.0.0.1:{port}/0"
    assert run("config", "validate", str(saved)).exit_code == 0
    if where == "file":
        (isolated / "stroute.yaml").unlink()
    # Alone, the saved file has no password: Redis refuses it (exit 6), it never sends '***'.
    refused = run("--config", str(saved), "link", "set", "u", "-s", "game", "--pod", "1")
    assert refused.exit_code == 6 and "refused the credentials" in refused.stderr, refused.stderr
    # With the password given where the note says, it works as the original did.
    ok = run("--config", str(saved), "link", "set", "u", "-s", "game", "--pod", "1",
             env={"STROUTE_REDIS_PASSWORD": right})
    assert ok.exit_code == 0, ok.stderr


def test_show_yaml_keeps_the_password_file_and_leaves_out_what_it_read(isolated):
    (isolated / "pw").write_text(SECRET + "\n")
    (isolated / "stroute.yaml").write_text("redis:\n  url: memory://x\n  password_file: pw\n")
    shown = run("-o", "yaml", "config", "show")
    assert shown.exit_code == 0 and SECRET not in shown.stdout + shown.stderr
    tree = yaml.safe_load(shown.stdout)
    assert tree["redis"]["password"] is None and tree["redis"]["password_file"] == "pw"
    assert "redis.password_file" in shown.stdout.splitlines()[0]


# --- config files that are not text, not files, or not a config (issue 11, items 14 and 17) ---------------------


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"namespace: \xff\xfe\n", "is not UTF-8 text: byte 0xff at offset 11"),
        ("namespace: x\n".encode("utf-16"), "is not UTF-8 text"),
        (b"[" * 5000 + b"\n", "nested more than 32 levels deep"),
        ("".join(f"{' ' * 2 * i}k{i}:\n" for i in range(400)).encode(), "nested more than 32 levels deep"),
        (b"state:\n  period: 5\n  expire: 50\n  period: 10\n", "duplicate key 'period' at line 4 (first at line 2)"),
        (b"namespace: a\nstate: {}\nnamespace: b\n", "duplicate key 'namespace' at line 3 (first at line 1)"),
        (b"redis:\n  url: redis://127.0.0.1:1/0\nredis:\n  url: redis://127.0.0.1:2/0\n", "duplicate key 'redis'"),
    ],
)
def test_unreadable_config_text_is_exit_2_naming_the_problem(isolated, content, named):
    (isolated / "bad.yaml").write_bytes(content)
    for args in (["config", "validate", "bad.yaml"], ["--config", "bad.yaml", "config", "show"],
                 ["--config", "bad.yaml", "link", "get", "u", "-s", "game"]):
        result = run(*args)
        assert result.exit_code == 2, (args, result.stderr)
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and named in lines[0] and "bad.yaml" in lines[0], result.stderr
        assert "unexpected" not in result.stderr


def test_a_config_path_that_is_no_file_is_named_for_what_it_is(isolated):
    import os

    (isolated / "adir").mkdir()
    os.mkfifo(isolated / "apipe")
    cases = {"adir": "is a directory, not a regular file", "apipe": "is a FIFO (named pipe), not a regular file",
             "nowhere.yaml": "does not exist"}
    for name, named in cases.items():
        for args in (["--config", name, "config", "show"], ["config", "validate", name]):
            result = run(*args)  # a FIFO is never opened: reading it would wait for a writer
            assert result.exit_code == 2, result.stderr
            assert f"config file '{name}' {named}" in result.stderr
        via_env = run("config", "show", env={"STROUTE_CONFIG": str(isolated / name)})
        assert via_env.exit_code == 2 and named in via_env.stderr
    # the default ./stroute.yaml as a directory is reported too, not silently skipped
    (isolated / "stroute.yaml").mkdir()
    result = run("config", "show")
    assert result.exit_code == 2 and "'stroute.yaml' is a directory" in result.stderr
    # a password file that is a FIFO or not UTF-8: exit 2, and no byte of it shown
    (isolated / "stroute.yaml").rmdir()
    os.mkfifo(isolated / "pwpipe")
    (isolated / "pwbin").write_bytes(b"\xfe" + SECRET.encode())
    for name, named in (("pwpipe", "is a FIFO"), ("pwbin", "is not UTF-8 text: a byte at offset 0")):
        (isolated / "stroute.yaml").write_text(f"redis:\n  password_file: {name}\n")
        result = run("config", "show")
        assert result.exit_code == 2 and f"redis.password_file '{name}' {named}" in result.stderr, result.stderr
        assert "0xfe" not in result.stderr


# --- one URL parser: what validate accepts, commands accept (issue 11, item 13) -------------------------------


BAD_URLS = {
    "redis://127.0.0.1:99999/0": "Port out of range",
    "redis://127.0.0.1:0/0": "port 0",
    "redis://127.0.0.1/abc": "database number, not 'abc'",
    "redis://127.0.0.1/-1": "database number, not '-1'",
    "redis://127.0.0.1:1/0?db=-1": "database -1",
    "redis://[::1": "Invalid IPv6 URL",
    "redis://127.0.0.1:1/0?nosuch=1": "unknown option 'nosuch'",
    "redis://bad host:1/0": "not a host name",
    "unix://": "socket's path",
    "redis+cluster://": "at least one HOST:PORT",
    "redis+cluster://127.0.0.1:1,,127.0.0.1:2": "an empty host",
    "redis+cluster://::1:7000": "IPv6 address goes in brackets",
    "redis+cluster://127.0.0.1:70000": "port '70000'",
    "redis+cluster://127.0.0.1:1/3": "database 0 only",
    "redis+cluster://127.0.0.1:1?nosuch=1": "unknown option 'nosuch'",
    "redis+sentinel://127.0.0.1:1": "must name the master",
    "redis+sentinel://127.0.0.1:1/m?nosuch=1": "unknown option 'nosuch'",
    "REDIS+SENTINEL://127.0.0.1:1": "must name the master",
    "rediz://127.0.0.1:1/0": "unsupported Redis URL scheme",
    "127.0.0.1:6379": "must start with a scheme",
}
# Each parses; nothing listens on port 1 of loopback, so a command gets exit 6 (never 2).
GOOD_URLS = ["REDIS://127.0.0.1:1/0", "Rediss://127.0.0.1:1/0", "redis://[::1]:1/0", "redis://127.0.0.1:1",
             "redis://127.0.0.1:1/15?socket_timeout=1", "unix:///nonexistent/redis.sock",
             "redis+cluster://127.0.0.1:1", "REDIS+CLUSTER://[::1]:1,127.0.0.1:1/0",
             "redis+cluster://:pw@127.0.0.1:1?username=u", "redis+sentinel://127.0.0.1:1/mymaster/2",
             "redis+sentinel://[::1]:1/m?sentinel_password=x"]


@pytest.mark.parametrize("url", sorted(BAD_URLS))
def test_validate_and_every_command_refuse_the_same_urls(isolated, url):
    named = BAD_URLS[url]
    checked = run("--redis-url", url, "config", "validate")
    used = run("--redis-url", url, "link", "get", "u", "-s", "game")
    (isolated / "u.yaml").write_text(f"redis:\n  url: '{url}'\n")
    in_file = run("config", "validate", "u.yaml")
    for result in (checked, used, in_file):
        assert result.exit_code == 2, (url, result.stderr)
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and named in lines[0], result.stderr
    assert error_lines(checked.stderr) == error_lines(used.stderr) == error_lines(in_file.stderr)


@pytest.mark.parametrize("url", GOOD_URLS)
def test_validate_and_every_command_accept_the_same_urls(isolated, url):
    checked = run("--redis-url", url, "config", "validate")
    assert checked.exit_code == 0, checked.stderr
    used = run("--redis-url", url, "link", "get", "u", "-s", "game")
    assert used.exit_code == 6, used.stderr  # parsed, then Redis was not there
    assert "invalid Redis URL" not in used.stderr and "unexpected" not in used.stderr


@pytest.mark.realserver
def test_an_upper_case_scheme_reaches_the_real_server(real_url):
    url = real_url.replace("redis://", "REDIS://")
    assert run("--redis-url", url, "config", "validate").exit_code == 0
    set_ = run("--redis-url", url, "link", "set", "u", "-s", "game", "--pod", "3")
    assert set_.exit_code == 0, set_.stderr
    code, data, _ = run_json("--redis-url", url, "link", "get", "u", "-s", "game")
    assert code == 0 and data["links"][0]["pod"] == 3


@pytest.mark.realserver
def test_a_cluster_url_at_a_plain_server_is_exit_6_saying_so(redis_server, real_url):
    url = f"redis+cluster://127.0.0.1:{redis_server.port}"
    assert run("--redis-url", url, "config", "validate").exit_code == 0  # the text is fine; nothing contacted
    for args in (["link", "get", "u", "-s", "game"], ["top"], ["doctor"]):
        result = run("--redis-url", url, *args)
        assert result.exit_code == 6, (args, result.stderr)
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and "is not a cluster node (cluster mode is not enabled on it)" in lines[0]
        assert "use redis://" in result.stderr


def test_an_embedded_data_file_where_none_can_be_made_is_exit_2(isolated):
    """/proc takes no new files: the lock beside the data file cannot be made (was exit 1, FileNotFoundError)."""
    result = run("--redis-url", "embedded:///proc/stroute-test-data", "link", "get", "u", "-s", "game")
    assert result.exit_code == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "embedded:// cannot use the data file '/proc/stroute-test-data.rdb'" in lines[0]


def test_validate_checks_the_tls_options_as_connecting_does(isolated):
    (isolated / "certs").mkdir()
    (isolated / "ca.crt").write_text("not checked before connecting, only that it is a readable file\n")
    cases = [
        ("redis://127.0.0.1:1/0", {"STROUTE_REDIS_TLS_CA_FILE": str(isolated / "ca.crt")}, "TLS needs a rediss:// URL"),
        ("rediss://127.0.0.1:1/0", {"STROUTE_REDIS_TLS_CA_FILE": str(isolated / "certs")},
         f"redis.tls_ca_file '{isolated / 'certs'}' is a directory, not a regular file"),
        ("rediss://127.0.0.1:1/0", {"STROUTE_REDIS_TLS_CA_FILE": str(isolated / "nope.crt")}, "does not exist"),
    ]
    for url, env, named in cases:
        checked = run("--redis-url", url, "config", "validate", env=env)
        used = run("--redis-url", url, "link", "get", "u", "-s", "game", env=env)
        for result in (checked, used):
            assert result.exit_code == 2 and named in result.stderr, (url, env, result.stderr)
    good = run("--redis-url", "rediss://127.0.0.1:1/0", "config", "validate",
               env={"STROUTE_REDIS_TLS_CA_FILE": str(isolated / "ca.crt")})
    assert good.exit_code == 0, good.stderr
