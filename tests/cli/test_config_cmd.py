"""`stroute config show|validate`, and passwords that are never echoed."""

from __future__ import annotations

import json

import pytest
import yaml

from link_place_support import error_lines, isolated, run, run_bin, run_json  # noqa: F401
from stroute.testing import RedisServer

pytestmark = pytest.mark.usefixtures("isolated")

SECRET = "s3cret-Pa55word-never-shown"
TOP_KEYS = ["namespace", "prefix", "redis", "state", "links", "placement", "server"]


def test_show_defaults():
    code, data, _ = run_json("config", "show")
    assert code == 0
    assert list(data) == TOP_KEYS
    assert data["namespace"] == "default" and data["prefix"] == "sf"
    assert data["redis"]["url"] is None and data["redis"]["password"] is None
    assert data["state"] == {"period": 30.0, "expire": 60.0, "refresh": 2.0}
    assert data["links"] == {"temp_ttl": 300.0, "cache_seconds": 240.0, "remove_delay": 60.0,
                             "coherent": True, "coherence_bound": 1.0}
    assert data["placement"] == {"strategy": "p2c", "good_load_range": 500}


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
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]]
            for line in table.stdout.splitlines() if line.startswith("| ") and "Key" not in line}
    assert rows["namespace"] == ["from-flag", "flag --namespace"]
    assert rows["state.expire"] == ["50.0", "env STROUTE_STATE_EXPIRE"]
    assert rows["state.period"] == ["10.0", "file"]
    assert rows["links.temp_ttl"] == ["300.0", "default"]
    assert rows["redis.url"] == ["- (using embedded://)", "default"]
    assert "stroute.yaml" in table.stdout


def test_show_yaml_is_a_valid_config_file(isolated):
    (isolated / "stroute.yaml").write_text("state:\n  refresh: 0.5\n")
    result = run("-o", "yaml", "config", "show")
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["state"]["refresh"] == 0.5
    (isolated / "copy.yaml").write_text(result.stdout)
    code, data, _ = run_json("config", "validate", "copy.yaml")
    assert (code, data) == (0, {"file": "copy.yaml", "valid": True, "error": None})


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
        assert "***" in result.stdout
    data = run_json(*args, "config", "show", env=env)[1]
    if where == "url":
        assert data["redis"]["url"] == "redis://admin:***@db.example:6379/0"
    else:
        assert data["redis"]["password"] == "***"


# --- validate -----------------------------------------------------------------------------


def test_validate_a_good_file(isolated):
    (isolated / "good.yaml").write_text("namespace: prod\nredis:\n  url: redis://db:6379/0\n")
    code, data, _ = run_json("config", "validate", "good.yaml")
    assert (code, data) == (0, {"file": "good.yaml", "valid": True, "error": None})
    result = run("config", "validate", "good.yaml")
    assert result.exit_code == 0 and "config file good.yaml is valid" in result.stdout


def test_validate_ignores_the_environment_for_a_named_file(isolated):
    (isolated / "good.yaml").write_text("namespace: prod\n")
    code, data, _ = run_json("config", "validate", "good.yaml", env={"STROUTE_STATE_PERIOD": "-1"})
    assert code == 0 and data["valid"] is True


def test_validate_the_effective_config(isolated):
    (isolated / "stroute.yaml").write_text("state:\n  period: 5\n")
    code, data, _ = run_json("config", "validate")
    assert (code, data) == (0, {"file": "stroute.yaml", "valid": True, "error": None})
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
