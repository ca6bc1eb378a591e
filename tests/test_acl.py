"""Namespace isolation enforced by Redis: `stroute -n NS acl` and a user made from it.

The user is created on a real server from the command's own output, piped to
redis-cli as an operator would. In its namespace every command works; in
another (`blue2`, whose keys share the prefix `sf:{blue`) each command exits
6 saying "permission denied for namespace blue2", and no key changes.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from cli.ops_support import cli, cli_json, error_lines, isolated, put_state, run_bin  # noqa: F401
from stroute import acl
from stroute.testing import RedisServer, cli_binary
from support import all_keys, wait_until

pytestmark = pytest.mark.usefixtures("isolated")

NS, OTHER = "blue", "blue2"
PASSWORD = "Blue-pw-4j8"


# --- the rule (no server) -------------------------------------------------------------------------------


def test_the_rule_names_only_the_namespace_keys():
    rule = acl.rule("blue", prefix="sf")
    assert rule.user == "stroute-blue" and rule.keys == ("sf:{blue:*", "sf:{blue}:*")
    args = rule.arguments()
    assert args[:4] == ["on", "resetkeys", "resetchannels", "-@all"]  # re-applying it replaces the old rule
    assert not any(a.startswith(">") or a.startswith("#") or a == "nopass" for a in args)  # no password
    assert "+evalsha" in args and "+scan" in args and "+flushall" not in args and "+keys" not in args
    assert "+scan" not in acl.rule("blue", scan=False).arguments()
    assert rule.command() == "ACL SETUSER stroute-blue " + " ".join(args)


def test_the_longest_namespace_gets_its_default_user():
    namespace = "n" * 63
    assert acl.rule(namespace).user == "stroute-" + namespace


def test_the_command_prints_one_line_and_json():
    result = cli("-n", NS, "acl", "--user", "gw")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("ACL SETUSER gw on resetkeys")
    assert "ACL SETUSER gw >PASSWORD" in result.stderr  # how to add the password
    code, data, _ = cli_json("-n", NS, "acl", "--no-scan")
    assert code == 0
    assert list(data) == ["schema", "namespace", "user", "rule", "arguments", "keys", "commands", "channels", "scan"]
    assert data["schema"] == "stroute/acl/v1"
    assert data["channels"] == ["__redis__:invalidate"] and "&__redis__:invalidate" in data["arguments"]
    assert (data["namespace"], data["user"], data["scan"]) == (NS, "stroute-blue", False)
    assert data["keys"] == ["sf:{blue:*", "sf:{blue}:*"] and "scan" not in data["commands"]


def test_the_prefix_comes_from_the_config(tmp_path):
    (tmp_path / "stroute.yaml").write_text("prefix: game\nnamespace: eu-1\n")
    code, data, _ = cli_json("acl")
    assert code == 0 and data["keys"] == ["game:{eu-1:*", "game:{eu-1}:*"] and data["user"] == "stroute-eu-1"


@pytest.mark.parametrize("args, needle", [
    (["-n", "a:b", "acl"], "invalid value 'a:b' for namespace"),
    (["-n", "blue", "acl", "--user", "has space"], "invalid Redis user name 'has space'"),
    (["-n", "blue", "acl", "--user", ">pw"], "invalid Redis user name '>pw'"),
])
def test_bad_names_are_exit_2(args, needle):
    result = cli(*args)
    assert result.exit_code == 2 and needle in result.stderr, result.stderr


# --- a real server ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    server = RedisServer().start()
    yield server
    server.close()


def make_user(tmp_path, server: RedisServer, *extra: str) -> str:
    """Apply `stroute -n NS acl` with redis-cli, as the operator does; give it a password; its URL."""
    rule = run_bin(tmp_path, "-n", NS, "acl", *extra)
    assert rule.returncode == 0, rule.stderr
    applied = subprocess.run([cli_binary(), "-p", str(server.port)], input=rule.stdout, capture_output=True,
                             text=True, timeout=30)
    assert applied.stdout.strip() == "OK", (applied.stdout, applied.stderr)
    user = json.loads(run_bin(tmp_path, "-n", NS, "-o", "json", "acl", *extra).stdout)["user"]
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", user, f">{PASSWORD}")
    admin.close()
    return f"redis://{user}:{PASSWORD}@127.0.0.1:{server.port}/0"


@pytest.fixture
def confined(tmp_path, server):
    """(URL of the stroute-blue user, admin client), with some data in both namespaces."""
    admin = server.client()
    admin.flushall()
    url = make_user(tmp_path, server)
    for ns in (NS, OTHER):
        put_state(admin, "lobby", 0, load=1, namespace=ns)
        put_state(admin, "lobby", 1, load=2, namespace=ns)
        admin.set(f"sf:{{{ns}:lk:old}}lobby", "1")
        admin.hset(f"sf:{{{ns}:lk:old}}", "lobby", "1")
        admin.set(f"sf:{{{ns}:tag:main}}", "lobby")
    yield url, admin
    admin.close()


COMMANDS = [
    ("link", "set", "u1", "-s", "lobby", "--pod", "1"),
    ("link", "try-set", "u1", "-s", "lobby", "--pod", "1"),
    ("link", "get", "u1", "-s", "lobby"),
    ("link", "get", "old"),
    ("link", "batch-get", "-s", "lobby", "u1", "old", "nobody"),
    ("link", "list"),
    ("link", "remove", "u1", "-s", "lobby", "--after", "30"),
    ("link", "remove", "old", "-s", "lobby", "--if-pod", "1"),
    ("place", "-s", "lobby", "u2"),
    ("place", "-s", "lobby", "--persist", "u3", "u4", "u5"),
    ("pods", "-s", "lobby"),
    ("top",),
    ("pod", "cordon", "-s", "lobby", "--pod", "1"),
    ("pod", "uncordon", "-s", "lobby", "--pod", "1"),
    ("tag", "set", "next", "lobby"),
    ("tag", "get", "main"),
    ("serve", "--once", "-s", "lobby", "--pod", "2", "--load", "7"),
]


@pytest.mark.realserver
def test_every_command_works_in_its_own_namespace(confined):
    url, admin = confined
    for command in COMMANDS:
        code, data, stderr = cli_json("--redis-url", url, "-n", NS, *command)
        assert code == 0, (command, stderr)
        assert "permission" not in stderr
    assert admin.get("sf:{blue:lk:u3}lobby") is not None and admin.hget("sf:{blue:state:lobby}", "2")
    code, data, stderr = cli_json("--redis-url", url, "-n", NS, "doctor")
    assert "permission" not in stderr, stderr
    assert {c["name"]: c["status"] for c in data["checks"]}["scripts"] == "PASS", data


@pytest.mark.realserver
def test_a_confined_client_driver_keeps_a_coherent_cache(confined):
    from stroute.client import ClientDriver
    from stroute.config import Config

    url, admin = confined
    config = Config().with_overrides(**{"redis.url": url, "namespace": NS, "state.expire": 60})
    with ClientDriver(config) as driver:
        assert driver.wait_coherent(), "the rule must allow the invalidation channel"
        pod = driver.place("u9", "lobby").pod
        assert driver.place("u9", "lobby").source == "cache"
        admin.set(f"sf:{{{NS}:lk:u9}}lobby", str(1 - pod), px=60_000)
        wait_until(lambda: driver.compute_linked_pod(NS, "u9", "lobby") == 1 - pod, timeout=2,
                   what="the move seen by the confined driver")


@pytest.mark.realserver
def test_every_command_is_refused_in_another_namespace(confined):
    url, admin = confined
    before = all_keys(admin)
    for command in COMMANDS:
        code, data, stderr = cli_json("--redis-url", url, "-n", OTHER, *command)
        assert (code, data) == (6, None), (command, stderr)
        assert len(error_lines(stderr)) == 1, stderr
        assert f"permission denied for namespace {OTHER}:" in stderr, (command, stderr)
        assert f"'stroute -n {OTHER} acl'" in stderr  # the hint says how to get the right user
        assert PASSWORD not in stderr
    assert all_keys(admin) == before


@pytest.mark.realserver
def test_without_scan_link_list_is_refused_and_the_rest_works(tmp_path, confined, server):
    _, admin = confined
    url = make_user(tmp_path, server, "--user", "noscan", "--no-scan")
    code, _, stderr = cli_json("--redis-url", url, "-n", NS, "link", "list")
    assert code == 6 and "permission denied: " in stderr and "'scan' command" in stderr, stderr
    code, data, stderr = cli_json("--redis-url", url, "-n", NS, "place", "-s", "lobby", "u9")
    assert code == 0, stderr


@pytest.mark.realserver
def test_scan_shows_other_namespaces_key_names_but_not_their_values(confined):
    """What an ACL cannot do: SCAN declares no key, so the names leak (hence --no-scan)."""
    url, admin = confined
    import redis

    user = redis.Redis.from_url(url, decode_responses=True)
    try:
        names = set(user.scan_iter(match="sf:{blue2:*"))
        assert "sf:{blue2:lk:old}lobby" in names
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.get("sf:{blue2:lk:old}lobby")
    finally:
        user.close()


@pytest.mark.realserver
def test_a_user_set_up_before_type_was_allowed_still_writes_links(confined):
    """The link scripts check the index with HGET, so a rule applied by an
    older stroute (without +type) keeps working; only naming a key of another
    type needs TYPE."""
    url, admin = confined
    user = url.split("//")[1].split(":")[0]
    admin.execute_command("ACL", "SETUSER", user, "-type")
    for command in (*COMMANDS[:8], ("place", "-s", "lobby", "--persist", "u6")):
        code, data, stderr = cli_json("--redis-url", url, "-n", NS, *command)
        assert code == 0, (command, stderr)
