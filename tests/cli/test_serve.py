"""`stroute serve`: identity, load sources, --once, config overrides, signals, outages.

In-process CliRunner tests cover options and exit codes; the daemon's real
behaviour (signals, drain, a Redis restart) is tested on the installed entry
point as a child process against a real redis-server.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time

import pytest

from ops_support import (  # noqa: F401
    Proc, cli, cli_json, error_lines, isolated, read_state, run_bin, wait_until,
)
from stroute import identity
from stroute.errors import InvalidInput
from stroute.loadsources import CommandLoad, FileLoad
from stroute.podstate import RoutingState

pytestmark = pytest.mark.usefixtures("isolated")

ONCE_FIELDS = ["namespace", "service", "pod", "state", "load", "heartbeat_ms", "cordoned"]


def once(url, *args, env=None):
    return cli_json("--redis-url", url, "serve", "--once", *args, env=env)


# --- identity -------------------------------------------------------------------------


@pytest.mark.parametrize("name, pod", [
    ("lobby-3", 3), ("lobby-0", 0), ("my-game-server-12", 12), ("x-65535", 65535),
    ("lobby", None), ("lobby-", None), ("-3", None), ("lobby-65536", None), ("lobby-3a", None), ("", None),
])
def test_ordinal(name, pod):
    assert identity.ordinal(name) == pod


def test_pod_from_env_prefers_pod_name_then_hostname():
    assert identity.pod_from_env({"POD_NAME": "a-1", "HOSTNAME": "a-2"}) == (1, "POD_NAME=a-1")
    assert identity.pod_from_env({"POD_NAME": "laptop", "HOSTNAME": "a-2"}) == (2, "HOSTNAME=a-2")
    assert identity.pod_from_env({"HOSTNAME": "a-2"}) == (2, "HOSTNAME=a-2")
    with pytest.raises(InvalidInput) as caught:
        identity.pod_from_env({"HOSTNAME": "laptop"})
    assert "POD_NAME is not set" in str(caught.value) and "'laptop'" in str(caught.value)
    assert "--pod" in caught.value.hint


def test_serve_takes_the_pod_from_pod_name(url, store):
    code, data, _ = once(url, "-s", "lobby", "--load", "1", env={"POD_NAME": "lobby-3"})
    assert (code, data["pod"]) == (0, 3)
    assert read_state(store.client, "lobby", 3).load == 1


def test_serve_takes_the_pod_from_hostname(url):
    code, data, _ = once(url, "-s", "lobby", "--load", "1", env={"HOSTNAME": "lobby-5"})
    assert (code, data["pod"]) == (0, 5)


def test_pod_flag_and_env_win_over_the_pod_name(url):
    assert once(url, "-s", "lobby", "--pod", "2", env={"POD_NAME": "lobby-3"})[1]["pod"] == 2
    assert once(url, "-s", "lobby", env={"POD_NAME": "lobby-3", "STROUTE_POD": "4"})[1]["pod"] == 4


def test_no_identity_is_a_clear_exit_2(url, store):
    code, data, stderr = once(url, "-s", "lobby", env={"HOSTNAME": "laptop"})
    assert (code, data) == (2, None)
    assert "cannot tell which pod this is" in stderr and "HOSTNAME='laptop'" in stderr
    assert "hint: pass --pod N" in stderr
    assert len(error_lines(stderr)) == 1
    assert store.client.dbsize() == 0


@pytest.mark.parametrize("value", ["x", "-1", "65536"])
def test_invalid_pod_is_exit_2(url, value):
    code, _, stderr = once(url, "-s", "lobby", f"--pod={value}")
    assert code == 2 and "invalid pod" in stderr


def test_service_is_required_or_from_env(url):
    code, _, stderr = once(url, "--pod", "0")
    assert code == 2 and "serve needs a service name" in stderr
    code, data, _ = once(url, "--pod", "0", env={"STROUTE_SERVICE": "chat"})
    assert (code, data["service"]) == (0, "chat")
    code, _, stderr = once(url, "--pod", "0", "-s", "bad:name")
    assert code == 2 and "invalid service" in stderr


# --- --once and load sources ------------------------------------------------------------


def test_once_json_shape_and_what_it_writes(url, store):
    code, data, stderr = once(url, "-s", "lobby", "--pod", "0", "--load", "42")
    assert code == 0, stderr
    assert list(data) == ONCE_FIELDS
    assert (data["namespace"], data["service"], data["pod"], data["state"], data["load"], data["cordoned"]) == (
        "default", "lobby", 0, "READY", 42, False)
    assert isinstance(data["heartbeat_ms"], int)
    state = read_state(store.client, "lobby", 0)
    assert (state.load, state.state, state.heartbeat_ms) == (42, RoutingState.READY, data["heartbeat_ms"])
    assert store.services("default") == ["lobby"]
    assert store.workload("default", "lobby") == "READY"  # pod 0 publishes the summary


def test_once_reports_an_operator_cordon(url, store):
    store.set_cordon("default", "lobby", 1, True)
    code, data, _ = once(url, "-s", "lobby", "--pod", "1", "--load", "1")
    assert (code, data["cordoned"]) == (0, True)
    table = cli("--redis-url", url, "serve", "--once", "-s", "lobby", "--pod", "1", "--load", "1")
    assert "cordoned by an operator" in table.stdout and "load 1" in table.stdout


def test_once_namespace_flag(url, store):
    code, data, _ = cli_json("--redis-url", url, "-n", "eu", "serve", "--once", "-s", "lobby", "--pod", "1")
    assert (code, data["namespace"]) == (0, "eu")
    assert store.services("eu") == ["lobby"] and store.services("default") == []


def test_once_load_file(url, tmp_path):
    (tmp_path / "load").write_text("17\n")
    code, data, _ = once(url, "-s", "lobby", "--pod", "1", "--load-file", "load")
    assert (code, data["load"]) == (0, 17)


def test_once_missing_load_file_warns_and_publishes_zero(url, tmp_path):
    code, data, stderr = once(url, "-s", "lobby", "--pod", "1", "--load-file", "nope")
    assert (code, data["load"]) == (0, 0)
    assert "WARNING" in stderr and "cannot read load file 'nope'" in stderr


def test_once_load_cmd(url):
    code, data, _ = once(url, "-s", "lobby", "--pod", "1", "--load-cmd", "echo 33")
    assert (code, data["load"]) == (0, 33)


def test_once_failing_load_cmd_warns(url):
    code, data, stderr = once(url, "-s", "lobby", "--pod", "1", "--load-cmd", "echo oops >&2; exit 3")
    assert (code, data["load"]) == (0, 0)
    assert "exited with 3: oops" in stderr


def test_once_slow_load_cmd_times_out(url):
    started = time.monotonic()
    code, data, stderr = once(url, "-s", "lobby", "--pod", "1", "--load-cmd", "sleep 30; echo 1",
                              "--load-timeout", "0.3")
    assert time.monotonic() - started < 10
    assert (code, data["load"]) == (0, 0)
    assert "timed out after 0.3 s" in stderr


def test_once_without_a_load_option_uses_cpu(url):
    code, data, _ = once(url, "-s", "lobby", "--pod", "1")
    assert code == 0 and 0 <= data["load"] <= 1000


def test_once_verbose_logs_the_heartbeat(url):
    code, _, stderr = once(url, "-s", "lobby", "--pod", "1", "--load", "5", "-v")
    assert code == 0
    assert "DEBUG stroute.server: heartbeat pod 1 of lobby: READY, load 5" in stderr
    code, _, stderr = once(url, "-s", "lobby", "--pod", "1", "--load", "5")
    assert "DEBUG" not in stderr


def test_logging_is_left_as_it_was(url):
    logger = logging.getLogger("stroute")
    handlers, level = list(logger.handlers), logger.level
    once(url, "-s", "lobby", "--pod", "1", "-v")
    assert (logger.handlers, logger.level) == (handlers, level)


@pytest.mark.parametrize("args, message", [
    (["--load", "1", "--load-file", "f"], "--load and --load-file cannot be combined"),
    (["--load-file", "f", "--load-cmd", "echo 1"], "--load-file and --load-cmd cannot be combined"),
    (["--load", "x"], "invalid load 'x'"),
    (["--load", "-5"], "invalid load -5"),
    (["--period", "0"], "invalid --period 0.0"),
    (["--expire", "-1"], "invalid --expire -1.0"),
    (["--drain-seconds", "-1"], "invalid --drain-seconds -1.0"),
    (["--load-timeout", "0"], "invalid --load-timeout 0.0"),
    (["--period", "10", "--expire", "5"], "state.period"),
])
def test_option_errors_are_exit_2(url, store, args, message):
    code, data, stderr = once(url, "-s", "lobby", "--pod", "0", *args)
    assert (code, data) == (2, None)
    assert message in stderr, stderr
    assert len(error_lines(stderr)) == 1
    assert store.client.dbsize() == 0


def test_once_redis_unreachable_is_exit_6():
    code, data, stderr = once("redis://127.0.0.1:1/0", "-s", "lobby", "--pod", "0", "--load", "1")
    assert (code, data) == (6, None)
    assert len(error_lines(stderr)) == 1 and "unreachable" in stderr and "Traceback" not in stderr


def test_serve_in_process_until_sigterm(url, store):
    """The whole loop in this process: handlers installed, SIGTERM drains, DOWN, exit 0, handlers restored."""
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    seen: list[RoutingState] = []

    def operator():
        # serve installs its handlers before its first heartbeat: READY means it is safe to signal.
        wait_until(lambda: (s := read_state(store.client, "lobby", 1)) and s.state is RoutingState.READY)
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(lambda: read_state(store.client, "lobby", 1).state is RoutingState.DOWN)
        seen.append(RoutingState.DOWN)

    helper = threading.Thread(target=operator, daemon=True)
    helper.start()
    result = cli("--redis-url", url, "serve", "-s", "lobby", "--pod", "1", "--load", "3",
                 "--period", "0.1", "--expire", "1", "--drain-seconds", "0.2")
    helper.join(timeout=15)
    assert result.exit_code == 0, result.stderr
    assert seen == [RoutingState.DOWN]
    assert result.stdout == ""  # logs go to stderr
    for line in ("serving pod 1 (from --pod) of 'lobby'", "lobby: READY", "SIGTERM: draining for 0.2 s",
                 "READY -> DRAINING", "DRAINING -> DOWN", "stopped"):
        assert line in result.stderr, (line, result.stderr)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


# --- load sources, unit ---------------------------------------------------------------------


def test_file_load_keeps_the_last_good_value_and_logs_changes_once(tmp_path, caplog):
    path = tmp_path / "load"
    source = FileLoad(path)
    caplog.set_level(logging.INFO, logger="stroute.load")
    path.write_text("8")
    assert source() == 8 and source.ok
    path.write_text("garbled")
    assert source() == 8 and source() == 8 and source.ok is False
    path.unlink()
    assert source() == 8
    path.write_text(" 9 \n")
    assert source() == 9
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages  # garbled once, missing once, back once
    assert "gave 'garbled'" in messages[0] and "keeping load 8" in messages[0]
    assert "cannot read" in messages[1]
    assert "works again: load 9" in messages[2]


def test_command_load():
    assert CommandLoad("printf '12\\n'")() == 12
    bad = CommandLoad("echo 1.5")
    assert bad() == 0 and bad.ok is False


# --- the daemon as a real process -------------------------------------------------------------


def serve_proc(tmp_path, url, *args, **env):
    return Proc(tmp_path, "--redis-url", url, "serve", "-s", "lobby", *args, **env)


def state_of(client, pod=0):
    s = read_state(client, "lobby", pod)
    return None if s is None else s.state


@pytest.mark.realserver
def test_sigterm_drains_then_down_then_exit_0(tmp_path, real_url, redis_server):
    client = redis_server.client()
    drain = 1.5
    with serve_proc(tmp_path, real_url, "--pod", "0", "--load", "4", "--period", "0.2", "--expire", "2",
                    "--drain-seconds", str(drain)) as proc:
        wait_until(lambda: state_of(client) is RoutingState.READY, what="READY")
        assert read_state(client, "lobby", 0).load == 4
        proc.signal(signal.SIGTERM)
        signalled = time.monotonic()
        seen = []

        def progress():
            state = state_of(client)
            if not seen or seen[-1] is not state:
                seen.append(state)
            return state is RoutingState.DOWN

        wait_until(progress, interval=0.01, what="DOWN")
        took = time.monotonic() - signalled
        assert proc.wait(timeout=10) == 0, proc.stderr
    assert seen[0] in (RoutingState.READY, RoutingState.DRAINING)
    assert RoutingState.DRAINING in seen and seen[-1] is RoutingState.DOWN
    assert took >= drain - 0.2, f"DOWN after {took:.2f} s, before the {drain} s drain window"
    assert "SIGTERM: draining for 1.5 s" in proc.stderr
    assert "READY -> DRAINING" in proc.stderr and "DRAINING -> DOWN" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.realserver
def test_second_signal_cuts_the_drain_short(tmp_path, real_url, redis_server):
    client = redis_server.client()
    with serve_proc(tmp_path, real_url, "--pod", "1", "--load", "4", "--period", "0.2", "--expire", "2",
                    "--drain-seconds", "60") as proc:
        wait_until(lambda: state_of(client, 1) is RoutingState.READY, what="READY")
        proc.signal(signal.SIGTERM)
        wait_until(lambda: state_of(client, 1) is RoutingState.DRAINING, what="DRAINING")
        proc.signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert proc.wait(timeout=10) == 0, proc.stderr
        assert time.monotonic() - signalled < 5
    assert state_of(client, 1) is RoutingState.DOWN
    assert "SIGTERM again: drain cut short" in proc.stderr


@pytest.mark.realserver
def test_sigint_is_a_warm_stop_too(tmp_path, real_url, redis_server):
    client = redis_server.client()
    with serve_proc(tmp_path, real_url, "--pod", "2", "--period", "0.2", "--expire", "2",
                    "--drain-seconds", "0.3") as proc:
        wait_until(lambda: state_of(client, 2) is RoutingState.READY, what="READY")
        proc.signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, proc.stderr
    assert state_of(client, 2) is RoutingState.DOWN
    assert "SIGINT: draining for 0.3 s" in proc.stderr


@pytest.mark.realserver
def test_identity_from_pod_name_in_a_process(tmp_path, real_url, redis_server):
    client = redis_server.client()
    with serve_proc(tmp_path, real_url, "--load", "1", "--period", "0.2", "--drain-seconds", "0",
                    POD_NAME="lobby-7") as proc:
        wait_until(lambda: state_of(client, 7) is RoutingState.READY, what="pod 7 READY")
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert "serving pod 7 (from POD_NAME=lobby-7)" in proc.stderr
    assert state_of(client, 7) is RoutingState.DOWN


@pytest.mark.realserver
def test_no_identity_in_a_process_is_exit_2(tmp_path, real_url):
    done = run_bin(tmp_path, "--redis-url", real_url, "serve", "-s", "lobby", HOSTNAME="workstation")
    assert done.returncode == 2
    assert "cannot tell which pod this is" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.realserver
def test_serve_picks_up_a_changed_load_file(tmp_path, real_url, redis_server):
    client = redis_server.client()
    load_file = tmp_path / "load"
    load_file.write_text("5\n")
    with serve_proc(tmp_path, real_url, "--pod", "0", "--load-file", str(load_file), "--period", "0.1",
                    "--expire", "2", "--drain-seconds", "0") as proc:
        load = lambda: (s := read_state(client, "lobby", 0)) and s.load  # noqa: E731
        wait_until(lambda: load() == 5, what="load 5")
        load_file.write_text("17\n")
        wait_until(lambda: load() == 17, what="load 17 from the changed file")
        load_file.write_text("not a number")
        proc.wait_for_stderr("gave 'not a number'")
        heartbeat = read_state(client, "lobby", 0).heartbeat_ms
        wait_until(lambda: read_state(client, "lobby", 0).heartbeat_ms > heartbeat, what="a later heartbeat")
        assert load() == 17  # the last good load is kept
        load_file.write_text("3")
        wait_until(lambda: load() == 3, what="load 3")
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert proc.stderr.count("gave 'not a number'") == 1  # logged once, not every heartbeat
    assert "works again: load 3" in proc.stderr


@pytest.mark.realserver
def test_serve_once_in_a_process(tmp_path, real_url, redis_server):
    done = run_bin(tmp_path, "--redis-url", real_url, "-o", "json", "serve", "--once", "-s", "lobby",
                   "--pod", "4", "--load", "9")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert list(data) == ONCE_FIELDS and (data["pod"], data["load"], data["state"]) == (4, 9, "READY")
    assert read_state(redis_server.client(), "lobby", 4).load == 9


@pytest.mark.realserver
def test_serve_once_in_a_process_redis_down_is_exit_6(tmp_path):
    done = run_bin(tmp_path, "--redis-url", "redis://127.0.0.1:1/0", "serve", "--once", "-s", "lobby",
                   "--pod", "0", "--load", "1")
    assert done.returncode == 6
    assert done.stderr.count("stroute: error:") == 1 and "Traceback" not in done.stderr


@pytest.mark.realserver
def test_serve_through_a_redis_restart(tmp_path):
    from stroute.testing import RedisServer

    server = RedisServer().start()
    try:
        with serve_proc(tmp_path, server.url, "--pod", "0", "--load", "6", "--period", "0.2", "--expire", "2",
                        "--drain-seconds", "0.2") as proc:
            wait_until(lambda: state_of(server.client()) is RoutingState.READY, what="READY")
            server.stop()
            proc.wait_for_stderr("heartbeat failed, retrying with backoff")
            assert proc.process.poll() is None
            server.start()  # no persistence: an empty database
            wait_until(lambda: state_of(server.client()) is RoutingState.READY, what="heartbeats after the restart")
            proc.wait_for_stderr("heartbeats resumed")
            assert server.client().smembers("sf:{default}:services") == {"lobby"}
            proc.signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0, proc.stderr
        assert state_of(server.client()) is RoutingState.DOWN
        assert "Traceback" not in proc.stderr
    finally:
        server.close()


@pytest.mark.realserver
def test_serve_starts_before_redis_and_stops_during_an_outage(tmp_path):
    from stroute.testing import RedisServer

    server = RedisServer()  # not started yet
    try:
        with serve_proc(tmp_path, server.url, "--pod", "1", "--load", "2", "--period", "0.2", "--expire", "2",
                        "--drain-seconds", "0.5") as proc:
            proc.wait_for_stderr("heartbeat failed")
            server.start()
            wait_until(lambda: state_of(server.client(), 1) is RoutingState.READY, what="READY once Redis is up")
            server.stop()
            proc.signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert proc.wait(timeout=20) == 0, proc.stderr
            assert time.monotonic() - signalled < 10  # the drain window plus failed publishes, no hang
        assert "could not publish DOWN" in proc.stderr
    finally:
        server.close()
