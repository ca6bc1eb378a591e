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
from stroute.loadsources import OUTPUT_LIMIT, CommandLoad, FileLoad, LoadUnavailable
from stroute.podstate import RoutingState

pytestmark = pytest.mark.usefixtures("isolated")

ONCE_FIELDS = ["schema", "namespace", "service", "pod", "state", "load", "heartbeat_at_ms", "cordoned", "reason"]


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
    assert isinstance(data["heartbeat_at_ms"], int)
    state = read_state(store.client, "lobby", 0)
    assert (state.load, state.state, state.heartbeat_ms) == (42, RoutingState.READY, data["heartbeat_at_ms"])
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


def test_once_missing_load_file_publishes_draining_with_the_reason(url, store, tmp_path):
    code, data, stderr = once(url, "-s", "lobby", "--pod", "1", "--load-file", "nope")
    assert (code, data["state"], data["load"]) == (0, "DRAINING", 0)
    assert data["reason"] == "no load yet: cannot read load file 'nope': No such file or directory"
    assert "WARNING" in stderr and "cannot read load file 'nope'" in stderr
    assert read_state(store.client, "lobby", 1).state is RoutingState.DRAINING  # never READY with a made-up load


def test_once_load_cmd(url):
    code, data, _ = once(url, "-s", "lobby", "--pod", "1", "--load-cmd", "echo 33")
    assert (code, data["load"]) == (0, 33)


def test_once_failing_load_cmd_warns(url):
    code, data, stderr = once(url, "-s", "lobby", "--pod", "1", "--load-cmd", "echo oops >&2; exit 3")
    assert (code, data["state"], data["load"]) == (0, "DRAINING", 0)
    assert "exited with 3: oops" in stderr and "exited with 3: oops" in data["reason"]


def test_once_slow_load_cmd_times_out(url):
    started = time.monotonic()
    code, data, stderr = once(url, "-s", "lobby", "--pod", "1", "--load-cmd", "sleep 30; echo 1",
                              "--load-timeout", "0.3")
    assert time.monotonic() - started < 10
    assert (code, data["state"], data["load"]) == (0, "DRAINING", 0)
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
    # The config rules check these, as they would in a file, and name the key.
    (["--period", "0"], "invalid value 0.0 for state.period (from the command line): must be greater than 0"),
    (["--expire", "-1"], "invalid value -1.0 for state.expire (from the command line)"),
    (["--drain-seconds", "-1"], "invalid value -1.0 for server.drain_seconds (from the command line): must be 0"),
    (["--load-timeout", "0"], "invalid value 0.0 for server.load_timeout (from the command line)"),
    (["--period", "10", "--expire", "5"], "state.period"),
    (["--period", "2", "--load-timeout", "2", "--load-cmd", "echo 1"],
     "invalid value 2.0 for server.load_timeout: must be less than state.period (2.0)"),
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


def test_file_load_reads_a_regular_file_only(tmp_path):
    path = tmp_path / "load"
    source = FileLoad(path)  # missing at start: allowed, it may appear later
    with pytest.raises(LoadUnavailable, match="cannot read load file .*No such file"):
        source()
    path.write_text(" 9 \n")
    assert source() == 9
    path.write_text("garbled")
    with pytest.raises(LoadUnavailable, match="gave 'garbled', not a load"):
        source()
    path.write_text("7" * (OUTPUT_LIMIT + 1))
    with pytest.raises(LoadUnavailable, match="larger than 64 KiB"):
        source()
    path.unlink()
    os.mkfifo(path)  # a FIFO in its place later: refused at once, not waited on
    started = time.monotonic()
    with pytest.raises(LoadUnavailable, match="is a FIFO, not a regular file"):
        source()
    assert time.monotonic() - started < 1
    with pytest.raises(InvalidInput, match="it is a FIFO; the load file must be a regular file"):
        FileLoad(path)  # given at start: refused (exit 2)
    with pytest.raises(InvalidInput, match="it is a directory"):
        FileLoad(tmp_path)


def test_command_load():
    assert CommandLoad("printf '12\\n'")() == 12
    with pytest.raises(LoadUnavailable, match="gave '1.5', not a load"):
        CommandLoad("echo 1.5")()
    with pytest.raises(LoadUnavailable, match="was killed by SIGKILL"):
        CommandLoad("kill -9 $$")()


def test_command_load_reads_a_bounded_amount_and_kills_the_group(tmp_path):
    started = time.monotonic()
    with pytest.raises(LoadUnavailable, match="printed more than 64 KiB"):
        CommandLoad("yes", timeout=10)()  # endless output: stopped at the limit, long before the timeout
    assert time.monotonic() - started < 5
    # A timeout kills the whole process group: the pipeline's grandchild too.
    pid_file = tmp_path / "child"
    with pytest.raises(LoadUnavailable, match="timed out after 0.5 s"):
        CommandLoad(f"sleep 300 & echo $! > {pid_file}; wait", timeout=0.5)()
    child = int(pid_file.read_text())
    wait_until(lambda: not _alive(child), what="the grandchild to be killed")


def test_command_load_cancel_kills_a_running_command(tmp_path):
    source = CommandLoad("sleep 300", timeout=60)
    failure: list[BaseException] = []
    reader = threading.Thread(target=lambda: _catch(failure, source))
    reader.start()
    wait_until(lambda: source._running is not None, what="the command to start")
    started = time.monotonic()
    source.cancel()
    reader.join(10)
    assert not reader.is_alive() and time.monotonic() - started < 5
    assert isinstance(failure[0], LoadUnavailable)


def _catch(sink, fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 (handed to the test)
        sink.append(exc)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_fifo_load_file_is_refused_with_exit_2(url, store, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    code, data, stderr = once(url, "-s", "lobby", "--pod", "1", "--load-file", str(tmp_path / "pipe"))
    assert (code, data) == (2, None)
    assert "it is a FIFO" in stderr and len(error_lines(stderr)) == 1
    assert store.client.dbsize() == 0


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


# --- hardening: signals, a hung Redis, load sources that misbehave, two instances ---------------------------


@pytest.mark.realserver
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT, signal.SIGALRM,
                                 signal.SIGPWR, signal.SIGRTMIN])
def test_every_terminating_signal_is_a_warm_stop(tmp_path, real_url, redis_server, sig):
    client = redis_server.client()
    with serve_proc(tmp_path, real_url, "--pod", "3", "--load", "1", "--period", "0.2", "--expire", "2",
                    "--drain-seconds", "0.3") as proc:
        wait_until(lambda: state_of(client, 3) is RoutingState.READY, what="READY")
        proc.signal(sig)
        assert proc.wait(timeout=10) == 0, proc.stderr
    assert state_of(client, 3) is RoutingState.DOWN
    assert f"{sig.name}: draining for 0.3 s" in proc.stderr and "DRAINING -> DOWN" in proc.stderr
    assert "Traceback" not in proc.stderr


class _Stopped:
    """A redis-server stopped with SIGSTOP (it accepts connections and answers nothing) until the block ends."""

    def __init__(self, server):
        self.server = server

    def __enter__(self):
        os.kill(self.server.process.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        os.kill(self.server.process.pid, signal.SIGCONT)


@pytest.mark.realserver
def test_stop_budget_holds_when_redis_hangs(tmp_path):
    from stroute.server import HURRY_S, STOP_GRACE_S
    from stroute.testing import RedisServer

    server = RedisServer().start()
    try:
        client = server.client()
        # A first signal: DRAINING and DOWN are given up, the stop ends within drain + STOP_GRACE_S.
        with serve_proc(tmp_path, server.url, "--pod", "0", "--load", "1", "--period", "0.2", "--expire", "2",
                        "--drain-seconds", "2") as proc:
            wait_until(lambda: state_of(client) is RoutingState.READY, what="READY")
            with _Stopped(server):
                proc.signal(signal.SIGTERM)
                signalled = time.monotonic()
                assert proc.wait(timeout=30) == 0, proc.stderr
                took = time.monotonic() - signalled
        assert took < 2 + STOP_GRACE_S + 1, f"exit {took:.1f} s after SIGTERM"
        assert "could not publish DOWN: Redis did not answer in time" in proc.stderr
        # A second signal: out at once, whatever the drain window.
        with serve_proc(tmp_path, server.url, "--pod", "1", "--load", "1", "--period", "0.2", "--expire", "2",
                        "--drain-seconds", "30") as proc:
            wait_until(lambda: state_of(client, 1) is RoutingState.READY, what="READY")
            with _Stopped(server):
                proc.signal(signal.SIGTERM)
                proc.wait_for_stderr("SIGTERM: draining for 30 s")
                proc.signal(signal.SIGTERM)
                signalled = time.monotonic()
                assert proc.wait(timeout=30) == 0, proc.stderr
                took = time.monotonic() - signalled
        assert took < HURRY_S + 1, f"exit {took:.1f} s after the second SIGTERM"
        assert "SIGTERM again: drain cut short" in proc.stderr
    finally:
        server.close()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


@pytest.mark.realserver
def test_a_hanging_or_flooding_load_cmd_never_stales_the_pod(tmp_path, real_url, redis_server):
    client = redis_server.client()
    notes = lambda pod: client.hget("sf:{default:state:lobby}:notes", f"{pod}:reason")  # noqa: E731
    # A command that hangs from the start: DRAINING (never READY with load 0), and heartbeats on time.
    with serve_proc(tmp_path, real_url, "--pod", "0", "--load-cmd", "sleep 300", "--period", "1", "--expire", "3",
                    "--drain-seconds", "0") as proc, \
         serve_proc(tmp_path, real_url, "--pod", "1", "--load-cmd", "yes", "--period", "1", "--expire", "3",
                    "--drain-seconds", "0") as flood:
        wait_until(lambda: state_of(client, 0) is RoutingState.DRAINING, what="pod 0 DRAINING")
        wait_until(lambda: state_of(client, 1) is RoutingState.DRAINING, what="pod 1 DRAINING")
        first = read_state(client, "lobby", 0).heartbeat_ms
        proc.wait_for_stderr("timed out after 0.5 s")  # --load-timeout defaults to half the period here
        wait_until(lambda: read_state(client, "lobby", 0).heartbeat_ms >= first + 3000, timeout=10,
                   what="three periods of heartbeats")
        code, data, _ = cli_json("--redis-url", real_url, "pods", "-s", "lobby")
        rows = {row["pod"]: row for row in data["pods"]}
        assert rows[0]["state"] == "DRAINING" and rows[0]["alive"] and not rows[0]["routable"]
        assert rows[0]["reason"].startswith("no load yet: load command 'sleep 300' timed out")
        assert rows[1]["reason"].startswith("no load yet: load command 'yes' printed more than 64 KiB")
        assert notes(1).startswith("no load yet")
        assert _rss_kib(flood.process.pid) < 200_000
        table = cli("--redis-url", real_url, "pods", "-s", "lobby").stderr  # the notes: in a pipe, on stderr
        assert "pod 0 of lobby (DRAINING): no load yet: load command 'sleep 300' timed out" in table
        for p in (proc, flood):
            p.signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert p.wait(timeout=10) == 0, p.stderr
            assert time.monotonic() - signalled < 3
    assert state_of(client, 0) is RoutingState.DOWN and state_of(client, 1) is RoutingState.DOWN


@pytest.mark.realserver
def test_a_second_instance_refuses_and_takeover_stops_the_first(tmp_path, real_url, redis_server):
    client = redis_server.client()
    args = ("--pod", "2", "--load", "5", "--period", "0.2", "--expire", "30", "--drain-seconds", "0")
    with serve_proc(tmp_path, real_url, *args) as first:
        wait_until(lambda: state_of(client, 2) is RoutingState.READY, what="the first instance READY")
        epoch = read_state(client, "lobby", 2).epoch
        second = run_bin(tmp_path, "--redis-url", real_url, "serve", "-s", "lobby", *args)
        assert second.returncode == 4, second.stderr
        assert f"pod 2 of 'lobby' (namespace 'default') is alive under another epoch {epoch} (heartbeat " in \
            second.stderr
        assert "--takeover" in second.stderr and "Traceback" not in second.stderr
        assert read_state(client, "lobby", 2).epoch == epoch  # the refused instance wrote nothing
        once_refused = run_bin(tmp_path, "--redis-url", real_url, "serve", "--once", "-s", "lobby", "--pod", "2")
        assert once_refused.returncode == 4 and "alive under another epoch" in once_refused.stderr
        with serve_proc(tmp_path, real_url, *args, "--takeover", "--load", "6") as third:
            assert first.wait(timeout=10) == 4
            assert "was taken over by another instance" in first.stderr
            wait_until(lambda: read_state(client, "lobby", 2).load == 6, what="the new instance's heartbeats")
            new_epoch = read_state(client, "lobby", 2).epoch
            assert new_epoch != epoch
            third.signal(signal.SIGTERM)
            assert third.wait(timeout=10) == 0, third.stderr
    final = read_state(client, "lobby", 2)
    assert (final.epoch, final.state) == (new_epoch, RoutingState.DOWN)  # the first wrote no DOWN over it
