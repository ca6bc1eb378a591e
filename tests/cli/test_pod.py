"""`stroute pod cordon|uncordon|forget SVC POD`: JSON shapes, effects, exit codes."""

from __future__ import annotations

import json

import pytest

from ops_support import cli, cli_json, error_lines, isolated, put_state, run_bin  # noqa: F401
from stroute.podstate import RoutingState
from stroute.server import ServerDriver

pytestmark = pytest.mark.usefixtures("isolated")

CORDON_FIELDS = ["schema", "namespace", "service", "pod", "cordoned", "changed"]
CTL = "sf:{default:state:lobby}:ctl"


def pod(url, *args, env=None):
    return cli_json("--redis-url", url, "pod", *args, env=env)


def test_cordon_json_shape_and_effect(url, store):
    put_state(store.client, "lobby", 3, load=1)
    code, data, stderr = pod(url, "cordon", "lobby", "3")
    assert code == 0, stderr
    assert list(data) == CORDON_FIELDS
    assert data == {"schema": "stroute/pod-cordon/v1", "namespace": "default", "service": "lobby", "pod": 3,
                    "cordoned": True, "changed": True}
    assert store.client.hget(CTL, "3") == "cordon"
    view = store.snapshot("default", "lobby", expire_ms=60_000).pods[3]
    assert view.cordoned and view.alive and not view.routable
    # The pods table and JSON agree.
    row = cli_json("--redis-url", url, "pods", "-s", "lobby")[1]["pods"][0]
    assert (row["cordoned"], row["routable"], row["alive"]) == (True, False, True)


def test_cordon_twice_reports_no_change(url, store):
    put_state(store.client, "lobby", 3)
    assert pod(url, "cordon", "lobby", "3")[1]["changed"] is True
    code, data, _ = pod(url, "cordon", "lobby", "3")
    assert (code, data["cordoned"], data["changed"]) == (0, True, False)


def test_uncordon(url, store):
    put_state(store.client, "lobby", 0)
    pod(url, "cordon", "lobby", "0")
    code, data, _ = pod(url, "uncordon", "lobby", "0")
    assert code == 0
    assert list(data) == CORDON_FIELDS
    assert data == {"schema": "stroute/pod-cordon/v1", "namespace": "default", "service": "lobby", "pod": 0,
                    "cordoned": False, "changed": True}
    assert store.client.hget(CTL, "0") is None
    assert store.snapshot("default", "lobby", expire_ms=60_000).pods[0].routable
    code, data, _ = pod(url, "uncordon", "lobby", "0")
    assert (code, data["changed"]) == (0, False)


def test_cordon_survives_a_pod_restart(url, config, store):
    pod(url, "cordon", "lobby", "2")
    server = ServerDriver("lobby", 2, config, store=store)
    assert server.publish().cordoned is True
    again = ServerDriver("lobby", 2, config, store=store)  # a new incarnation
    assert again.publish().cordoned is True
    pod(url, "uncordon", "lobby", "2")
    assert again.publish().cordoned is False


def test_cordon_of_a_pod_that_never_published_says_so(url, store):
    code, data, stderr = pod(url, "cordon", "lobby", "7")
    assert (code, data["changed"]) == (0, True)
    assert "pod 7 of 'lobby' has not published a state" in stderr
    assert store.client.hget(CTL, "7") == "cordon"


def test_cordon_namespace_flag(url, store):
    code, data, _ = cli_json("--redis-url", url, "-n", "eu", "pod", "cordon", "lobby", "1")
    assert (code, data["namespace"]) == (0, "eu")
    assert store.client.hget("sf:{eu:state:lobby}:ctl", "1") == "cordon"
    assert store.client.hget(CTL, "1") is None


@pytest.mark.parametrize("verb", ["cordon", "uncordon", "forget"])
@pytest.mark.parametrize("svc, pod_arg, message", [
    ("lobby", "x", "invalid pod 'x'"),
    ("lobby", "-1", "invalid pod -1: must be an integer from 0 to 65535"),
    ("lobby", "65536", "invalid pod 65536: must be an integer from 0 to 65535"),
    ("lobby", "1.5", "invalid pod '1.5'"),
    ("a:b", "1", "invalid service 'a:b'"),
    ("{x}", "1", "invalid service"),
])
def test_invalid_input_is_exit_2_and_writes_nothing(url, store, verb, svc, pod_arg, message):
    code, data, stderr = pod(url, verb, svc, "--", pod_arg) if pod_arg.startswith("-") else pod(url, verb, svc, pod_arg)
    assert code == 2 and data is None
    assert message in stderr and len(error_lines(stderr)) == 1
    assert store.client.dbsize() == 0


def test_missing_arguments_are_exit_2(url):
    assert cli("--redis-url", url, "pod", "cordon", "lobby").exit_code == 2
    assert cli("--redis-url", url, "pod", "cordon").exit_code == 2
    assert cli("--redis-url", url, "pod", "drain", "lobby").exit_code == 2  # POD missing


def test_cordon_table_output(url, store):
    put_state(store.client, "lobby", 1)
    out = cli("--redis-url", url, "pod", "cordon", "lobby", "1").stdout
    assert "pod 1 of 'lobby'" in out and "cordoned" in out and "no new ones" in out
    out = cli("--redis-url", url, "pod", "cordon", "lobby", "1").stdout
    assert "already cordoned" in out
    out = cli("--redis-url", url, "pod", "uncordon", "lobby", "1").stdout
    assert "uncordoned" in out
    out = cli("--redis-url", url, "pod", "uncordon", "lobby", "1").stdout
    assert "was not cordoned" in out


# --- forget --------------------------------------------------------------------------


def test_forget_a_dead_pod(url, store):
    put_state(store.client, "lobby", 0)
    put_state(store.client, "lobby", 4, state=RoutingState.DOWN)
    code, data, _ = pod(url, "forget", "lobby", "4")
    assert code == 0
    assert data == {"schema": "stroute/pod-forget/v1", "namespace": "default", "service": "lobby", "pod": 4,
                    "removed": True}
    assert list(store.snapshot("default", "lobby", expire_ms=60_000).pods) == [0]


def test_forget_a_stale_pod(url, store):
    put_state(store.client, "lobby", 2, age_ms=120_000)
    assert pod(url, "forget", "lobby", "2")[0] == 0


def test_forget_refuses_an_alive_pod_unless_forced(url, store):
    put_state(store.client, "lobby", 1, state=RoutingState.DRAINING)
    code, data, stderr = pod(url, "forget", "lobby", "1")
    assert (code, data) == (4, None)
    assert "is alive" in stderr and "--force" in stderr
    assert 1 in store.snapshot("default", "lobby", expire_ms=60_000).pods
    code, data, _ = pod(url, "forget", "lobby", "1", "--force")
    assert (code, data["removed"]) == (0, True)


def test_forget_unknown_pod_is_exit_3(url):
    code, data, stderr = pod(url, "forget", "lobby", "9")
    assert code == 3
    assert data == {"schema": "stroute/pod-forget/v1", "namespace": "default", "service": "lobby", "pod": 9,
                    "removed": False}
    assert len(error_lines(stderr)) == 1


def test_redis_unreachable_is_exit_6():
    for verb in ("cordon", "uncordon", "forget"):
        code, data, stderr = pod("redis://127.0.0.1:1/0", verb, "lobby", "1")
        assert (code, data) == (6, None)
        assert len(error_lines(stderr)) == 1 and "Traceback" not in stderr


@pytest.mark.realserver
def test_cordon_through_the_entry_point(tmp_path, real_url, redis_server):
    done = run_bin(tmp_path, "--redis-url", real_url, "-o", "json", "pod", "cordon", "lobby", "0")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"schema": "stroute/pod-cordon/v1", "namespace": "default", "service": "lobby", "pod": 0, "cordoned": True,
                                       "changed": True}
    assert redis_server.client().hget(CTL, "0") == "cordon"
