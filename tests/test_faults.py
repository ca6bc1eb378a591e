"""Faults: a Redis that is down, restarts, or hangs; a `serve` killed with SIGKILL.

Already covered elsewhere and not repeated here: serve surviving a restart
and stopping during an outage (tests/cli/test_serve.py), the driver through
restarts and a stop with Redis gone (tests/test_server.py). This file adds
the timing: heartbeats resume within one period of Redis's return; every
command gives up within the socket timeout on a server that never answers;
a SIGKILLed pod turns STALE after the expiry and gets no new users.
"""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from cli.ops_support import Proc, cli, cli_json, error_lines, isolated, read_state, wait_until  # noqa: F401
from stroute.podstate import RoutingState
from stroute.testing import RedisServer, free_port

pytestmark = pytest.mark.usefixtures("isolated")

TIMEOUT = 1.0  # redis.socket_timeout for the unreachable-Redis checks
SLACK = 0.6  # what a command may add to one socket timeout: imports, config, output


class Blackhole:
    """A loopback TCP port that never answers.

    accepting: the kernel completes the handshake (listen backlog), nothing
    is ever read or written, so each command waits for its read timeout.
    Otherwise the accept queue is full (backlog 0, filled by two
    connections), so a new connection's SYN is dropped and connect() waits
    for its connect timeout.
    """

    def __init__(self, *, accepting: bool) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128 if accepting else 0)
        self.port = self.sock.getsockname()[1]
        self.fillers: list[socket.socket] = []
        if not accepting:
            for _ in range(2):
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", self.port))
                self.fillers.append(filler)

    def close(self) -> None:
        for s in [*self.fillers, self.sock]:
            s.close()


EVERY_COMMAND = [
    ("link", "get", "u", "-s", "lobby"),
    ("link", "get", "u"),
    ("link", "set", "u", "-s", "lobby", "--pod", "1"),
    ("link", "try-set", "u", "-s", "lobby", "--pod", "1"),
    ("link", "remove", "u", "-s", "lobby"),
    ("link", "batch-get", "-s", "lobby", "u", "v"),
    ("link", "list"),
    ("place", "-s", "lobby", "u"),
    ("place", "-s", "lobby", "u", "v"),
    ("pods", "-s", "lobby"),
    ("top",),
    ("pod", "cordon", "-s", "lobby", "--pod", "1"),
    ("tag", "get", "main"),
    ("tag", "set", "main", "lobby"),
    ("serve", "--once", "-s", "lobby", "--pod", "0", "--load", "1"),
    ("doctor",),
]
# Against a hung server each command costs a whole timeout: one of each kind when the
# server accepts and never replies, three when connecting itself hangs.
HUNG_COMMANDS = {
    "accepts, never replies": [EVERY_COMMAND[i] for i in (0, 2, 6, 7, 9, 10, 14, 15)],
    "drops connections": [EVERY_COMMAND[i] for i in (2, 7, 14)],
}


@pytest.fixture(params=list(HUNG_COMMANDS))
def blackhole(request):
    hole = Blackhole(accepting=request.param == "accepts, never replies")
    hole.kind = request.param
    yield hole
    hole.close()


def check_gives_up(url: str, command: tuple[str, ...], budget: float) -> str:
    started = time.monotonic()
    result = cli("--redis-url", url, *command, env={"STROUTE_REDIS_SOCKET_TIMEOUT": str(TIMEOUT)})
    took = time.monotonic() - started
    assert result.exit_code == 6, (command, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    if command != ("doctor",):  # doctor reports the failed connection check in its table instead
        assert len(error_lines(result.stderr)) == 1 and "unreachable" in result.stderr, (command, result.stderr)
    assert took < budget, f"stroute {' '.join(command)} took {took:.2f} s (budget {budget} s)"
    return result.stderr


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=" ".join)
def test_refused_connection_is_exit_6_at_once(command):
    check_gives_up(f"redis://127.0.0.1:{free_port()}/0", command, budget=SLACK + 0.5)


def test_every_command_gives_up_on_a_hung_server_within_the_socket_timeout(blackhole):
    url = f"redis://127.0.0.1:{blackhole.port}/0"
    for command in HUNG_COMMANDS[blackhole.kind]:
        stderr = check_gives_up(url, command, budget=TIMEOUT + SLACK)
        if command != ("doctor",):
            assert "Timeout" in stderr, stderr


def test_a_hung_sentinel_costs_one_timeout(blackhole):
    url = f"redis+sentinel://127.0.0.1:{blackhole.port}/mymaster"
    stderr = check_gives_up(url, ("link", "get", "u", "-s", "lobby"), budget=TIMEOUT + SLACK)
    assert f"sentinel 127.0.0.1:{blackhole.port}" in stderr, stderr


# --- serve through an outage ----------------------------------------------------------------------------


class Refuser:
    """Stands in for a dead Redis on its port: accepts each connection and closes it at once,
    noting when, so the test sees serve's retries spread out to the backoff's cap."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.attempts: list[float] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.attempts.append(time.monotonic())
            conn.close()

    def longest_gap(self) -> float:
        times = list(self.attempts)
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.mark.realserver
def test_serve_resumes_heartbeats_within_one_period_after_redis_returns(tmp_path):
    period = 1.0
    server = RedisServer().start()
    try:
        with Proc(tmp_path, "--redis-url", server.url, "serve", "-s", "lobby", "--pod", "0", "--load", "3",
                  "--period", str(period), "--expire", "5", "--drain-seconds", "0",
                  STROUTE_REDIS_SOCKET_TIMEOUT="1") as proc:
            wait_until(lambda: read_state(server.client(), "lobby", 0), what="the first heartbeat")
            server.stop()
            refuser = Refuser(server.port)
            try:
                proc.wait_for_stderr("heartbeat failed, retrying with backoff")
                # Redis returns when serve has backed off to its longest wait (one period).
                wait_until(lambda: refuser.longest_gap() >= 0.9 * period, timeout=10 * period,
                           what="serve's retries to back off to one period")
            finally:
                refuser.close()
            server.start()  # the same port, an empty database; start() returns once it answers
            back = time.monotonic()
            client = server.client()
            wait_until(lambda: read_state(client, "lobby", 0), interval=0.01, timeout=3 * period,
                       what="heartbeats after Redis returned")
            resumed = time.monotonic() - back
            assert proc.process.poll() is None
            proc.wait_for_stderr("heartbeats resumed")
            proc.signal(signal.SIGTERM)
            assert proc.wait() == 0, proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        server.close()
    assert resumed <= period + 0.2, f"heartbeats resumed {resumed:.2f} s after Redis returned (period {period} s)"
    print(f"\nserve: heartbeats resumed {resumed:.2f} s after Redis returned (period {period:g} s)")


@pytest.mark.realserver
def test_a_sigkilled_serve_turns_stale_and_gets_no_new_users(tmp_path, real_url, redis_server):
    expire = 1.5
    env = {"STROUTE_STATE_EXPIRE": str(expire), "STROUTE_STATE_PERIOD": "0.2"}
    client = redis_server.client()
    args = ("--redis-url", real_url, "serve", "-s", "lobby", "--load", "1", "--period", "0.2",
            "--expire", str(expire), "--drain-seconds", "0")
    with Proc(tmp_path, *args, "--pod", "0") as keeper, Proc(tmp_path, *args, "--pod", "1") as victim:
        wait_until(lambda: all(read_state(client, "lobby", p) for p in (0, 1)), what="both pods publishing")

        def states():
            code, data, stderr = cli_json("--redis-url", real_url, "pods", "-s", "lobby",
                                          env=env)
            assert code == 0, stderr
            return {p["pod"]: p["state"] for p in data["pods"]}

        assert states() == {0: "READY", 1: "READY"}
        victim.process.kill()  # SIGKILL: no drain, no DOWN, the last heartbeat says READY
        killed = time.monotonic()
        victim.process.wait()
        wait_until(lambda: states()[1] == "STALE", interval=0.05, timeout=expire + 3, what="pod 1 STALE")
        stale_after = time.monotonic() - killed
        assert read_state(client, "lobby", 1).state is RoutingState.READY  # what it last published
        code, data, stderr = cli_json("--redis-url", real_url, "place", "-s", "lobby",
                                      *(f"new-{i}" for i in range(30)), env=env)
        assert code == 0, stderr
        assert {p["pod"] for p in data["placements"]} == {0} and data["failed"] == []
        assert states()[0] == "READY"
        keeper.signal(signal.SIGTERM)
        assert keeper.wait() == 0
    # STALE no sooner than the expiry minus one heartbeat period, and not long after it
    assert expire - 0.2 - 0.1 <= stale_after <= expire + 0.5, stale_after
    print(f"\nSIGKILLed serve: STALE {stale_after:.2f} s after the kill (state.expire {expire:g} s)")
