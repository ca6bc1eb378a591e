"""redis+sentinel://: commands and a running `stroute serve` follow a Sentinel failover.

A master, a replica (--replicaof) and one sentinel run on loopback, every one
with a password (the sentinel's differs from the data nodes'). The failover
test runs `SENTINEL FAILOVER` and shows that new `stroute` processes and a
`stroute serve` started before it carry on against the new master. Waiting is
polling with a deadline, never a blind sleep.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from cli.ops_support import Proc, cli, error_lines, isolated, read_state, run_bin, wait_until  # noqa: F401
from stroute.podstate import RoutingState
from stroute.testing import RedisServer, free_port, server_binary, stop_process

pytestmark = pytest.mark.usefixtures("isolated")

MASTER = "mymaster"
DATA_PASSWORD = "data-Secret-7"
SENTINEL_PASSWORD = "sentinel-Secret-9"


class SentinelProcess:
    """One `redis-server sentinel.conf --sentinel` child process on loopback."""

    def __init__(self, master_port: int, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp
        self.conf = tmp / "sentinel.conf"
        self.conf.write_text("\n".join([
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f"dir {tmp}",
            f"logfile {tmp / 'sentinel.log'}",
            f"requirepass {SENTINEL_PASSWORD}",
            f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 1",
            f"sentinel auth-pass {MASTER} {DATA_PASSWORD}",
            f"sentinel down-after-milliseconds {MASTER} 1000",
            f"sentinel failover-timeout {MASTER} 5000",
            "",
        ]))
        self.process = subprocess.Popen([server_binary(), str(self.conf), "--sentinel"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=SENTINEL_PASSWORD, decode_responses=True, socket_timeout=2)

    def master_port(self) -> int:
        return int(self.client().execute_command("SENTINEL", "get-master-addr-by-name", MASTER)[1])

    def close(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        path = self.dir / "sentinel.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


class SentinelSet:
    def __init__(self, tmp: Path) -> None:
        # requirepass is set once each node answers (RedisServer.start() pings without a password).
        args = ("--masterauth", DATA_PASSWORD, "--repl-diskless-sync-delay", "0")
        self.nodes: list[RedisServer] = []
        self.sentinel: SentinelProcess | None = None
        try:
            first = RedisServer(*args).start()
            self.nodes.append(first)
            self.nodes.append(RedisServer("--replicaof", "127.0.0.1", str(first.port), *args).start())
            for node in self.nodes:
                node.client().config_set("requirepass", DATA_PASSWORD)
            wait_until(lambda: self.client(self.nodes[1]).info("replication").get("master_link_status") == "up",
                       what="the replica to sync")
            self.sentinel = SentinelProcess(first.port, tmp)
            wait_until(self._sentinel_knows_the_replica, what="the sentinel to see the master and its replica")
        except BaseException:
            self.close()
            raise

    def _sentinel_knows_the_replica(self) -> bool:
        assert self.sentinel.process.poll() is None, f"the sentinel exited:\n{self.sentinel.log()}"
        try:
            replicas = self.sentinel.client().execute_command("SENTINEL", "REPLICAS", MASTER)
        except redis.RedisError:
            return False
        return any(r["port"] == str(self.nodes[1].port) for r in replicas)

    @staticmethod
    def client(node: RedisServer) -> redis.Redis:
        return node.client(password=DATA_PASSWORD, socket_timeout=2)

    def url(self, *, dead_sentinel_first: bool = False, query: str = "") -> str:
        hosts = f"127.0.0.1:{self.sentinel.port}"
        if dead_sentinel_first:
            hosts = f"127.0.0.1:{free_port()},{hosts}"
        return f"redis+sentinel://:{DATA_PASSWORD}@{hosts}/{MASTER}{query}"

    def master(self) -> RedisServer:
        port = self.sentinel.master_port()
        return next(node for node in self.nodes if node.port == port)

    def replica(self) -> RedisServer:
        port = self.sentinel.master_port()
        return next(node for node in self.nodes if node.port != port)

    def failover(self) -> None:
        """SENTINEL FAILOVER, retried while the sentinel has no good replica yet."""
        def accepted() -> bool:
            try:
                return bool(self.sentinel.client().execute_command("SENTINEL", "FAILOVER", MASTER))
            except redis.ResponseError as exc:  # NOGOODSLAVE / INPROG until the sentinel knows enough
                if "NOGOODSLAVE" in str(exc) or "INPROG" in str(exc):
                    return False
                raise

        wait_until(accepted, interval=0.1, what="the sentinel to accept SENTINEL FAILOVER")

    def close(self) -> None:
        if self.sentinel is not None:
            self.sentinel.close()
        for node in self.nodes:
            node.close()


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory):
    group = SentinelSet(tmp_path_factory.mktemp("sentinel"))
    yield group
    group.close()


def stroute(tmp_path: Path, url: str, *args: str):
    done = run_bin(tmp_path, "--redis-url", url, "-o", "json", *args, timeout=30,
                   STROUTE_REDIS_SOCKET_TIMEOUT="2")
    data = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, data, done.stderr


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        assert DATA_PASSWORD not in text and SENTINEL_PASSWORD not in text, text
        assert "Traceback" not in text, text


# --- URL checks (no server) ---------------------------------------------------------------------------


@pytest.mark.parametrize("url, needle", [
    ("redis+sentinel://127.0.0.1:26379", "the path must name the master"),
    ("redis+sentinel:///mymaster", "at least one HOST:PORT"),
    ("redis+sentinel://h:notaport/mymaster", "'h:notaport'"),
    ("redis+sentinel://h:70000/mymaster", "'h:70000'"),
    ("redis+sentinel://h:1/mymaster/x", "database 'x' is not a number"),
    ("redis+sentinel://h:1/mymaster/0/extra", "the path must name the master"),
    ("redis+sentinel://h:1/mymaster?colour=blue", "unknown option 'colour'"),
])
def test_a_malformed_sentinel_url_is_exit_2_naming_it(url, needle):
    result = cli("--redis-url", url, "link", "get", "alice", "-s", "lobby")
    assert result.exit_code == 2, result.stderr
    assert needle in result.stderr and len(error_lines(result.stderr)) == 1, result.stderr


def test_the_url_password_and_sentinel_password_are_hidden_in_errors():
    url = f"redis+sentinel://:{DATA_PASSWORD}@h:1/mymaster?sentinel_password={SENTINEL_PASSWORD}&colour=1"
    result = cli("--redis-url", url, "link", "get", "alice", "-s", "lobby")
    assert result.exit_code == 2
    assert ":***@h:1" in result.stderr and "sentinel_password=***" in result.stderr
    assert_no_secrets(result.stdout, result.stderr)


# --- a real Sentinel ----------------------------------------------------------------------------------------


@pytest.mark.realserver
def test_wrong_sentinel_password_or_master_is_exit_6(tmp_path, sentinels):
    code, _, stderr = stroute(tmp_path, sentinels.url(query="?sentinel_password=nope"), "link", "get", "a", "-s", "x")
    assert code == 6 and len(error_lines(stderr)) == 1, stderr
    assert_no_secrets(stderr)
    wrong_master = sentinels.url().replace(f"/{MASTER}", "/nosuchmaster")
    code, _, stderr = stroute(tmp_path, wrong_master + f"?sentinel_password={SENTINEL_PASSWORD}",
                              "link", "get", "a", "-s", "x")
    assert code == 6 and "nosuchmaster" in stderr, stderr
    assert_no_secrets(stderr)


@pytest.mark.realserver
def test_commands_and_serve_carry_on_through_a_failover(tmp_path, sentinels):
    # The master's password in the URL, the sentinel's in the environment (redis.sentinel_password);
    # a dead sentinel first in the list is skipped.
    url = sentinels.url(dead_sentinel_first=True)
    env = {"STROUTE_REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD}
    old, new = sentinels.master(), sentinels.replica()
    old_client, new_client = sentinels.client(old), sentinels.client(new)
    old_client.flushall()

    def run(*args: str):
        done = run_bin(tmp_path, "--redis-url", url, "-o", "json", *args, timeout=30, **env)
        assert_no_secrets(done.stdout, done.stderr)
        return done.returncode, (json.loads(done.stdout) if done.stdout.strip() else None), done.stderr

    code, data, stderr = run("link", "set", "alice", "-s", "lobby", "--pod", "1")
    assert (code, data["pod"]) == (0, 1), stderr
    assert old_client.get("sf:{default:lk:alice}lobby") == "1"  # it went to the master

    with Proc(tmp_path, "--redis-url", url, "serve", "-s", "lobby", "--pod", "0", "--load", "5",
              "--period", "0.2", "--expire", "3", "--drain-seconds", "0", **env) as serve:
        wait_until(lambda: read_state(old_client, "lobby", 0), what="serve's first heartbeat on the master")
        assert old_client.wait(1, 5000) == 1  # the replica has everything so far

        started = time.monotonic()
        sentinels.failover()
        wait_until(lambda: sentinels.sentinel.master_port() == new.port, timeout=20, what="the switch")
        switched = time.monotonic() - started
        # The heartbeat field on the new master changes when serve writes there.
        replicated = new_client.hget("sf:{default:state:lobby}", "0")
        wait_until(lambda: new_client.hget("sf:{default:state:lobby}", "0") != replicated, timeout=15,
                   what="serve's heartbeats on the new master")
        carried_on = time.monotonic() - started
        assert new_client.info("replication")["role"] == "master"

        code, data, stderr = run("link", "get", "alice", "-s", "lobby")
        assert (code, [(r["pod"], r["persistent"]) for r in data["links"]]) == (0, [(1, True)]), stderr  # replicated before the failover
        code, data, stderr = run("link", "set", "bob", "-s", "lobby", "--pod", "2")
        assert (code, data["previous"]) == (0, None), stderr
        assert new_client.get("sf:{default:lk:bob}lobby") == "2"
        code, data, stderr = run("pods", "-s", "lobby")
        assert code == 0, stderr
        assert [(p["pod"], p["state"], p["load"]) for p in data["pods"]] == [(0, "READY", 5)]
        code, data, stderr = run("place", "-s", "lobby", "carol")
        assert (code, data["placements"]) == (0, [{"uid": "carol", "pod": 0, "source": "new"}]), stderr

        assert serve.process.poll() is None, serve.stderr
        serve.signal(signal.SIGTERM)
        assert serve.wait(timeout=15) == 0, serve.stderr
    assert read_state(new_client, "lobby", 0).state is RoutingState.DOWN
    assert_no_secrets(serve.stdout, serve.stderr)
    print(f"\nsentinel failover: switched after {switched:.2f} s, serve heartbeats on the new master "
          f"{carried_on:.2f} s after SENTINEL FAILOVER")


@pytest.mark.realserver
def test_the_asyncio_driver_follows_a_failover_under_load(sentinels):
    """50 coroutines place new users through one AsyncClientDriver while
    Sentinel moves the master. Calls in the switch fail as RedisUnavailable
    (never another error, never a hang); within a recheck period of the
    switch, every placement lands on the new master, and placements go on."""
    import asyncio

    from stroute.aio import AsyncClientDriver
    from stroute.autopipeline import MASTER_RECHECK_S
    from stroute.config import Config
    from stroute.errors import RedisUnavailable
    from support import PlacingLoad, put_state

    old, new = sentinels.master(), sentinels.replica()
    old_client, new_client = sentinels.client(old), sentinels.client(new)
    old_client.flushall()
    for pod in range(3):
        put_state(old_client, "game", pod, load=10)
    assert old_client.wait(1, 5000) == 1
    config = Config().with_overrides(**{"redis.url": sentinels.url(), "redis.sentinel_password": SENTINEL_PASSWORD,
                                        "state.expire": 120, "state.refresh": 0.2, "redis.socket_timeout": 2})
    outcomes: list[tuple[float, str, object]] = []  # (when it completed, uid, pod or error)
    switched: list[float] = []

    async def main():
        async with AsyncClientDriver(config) as driver:
            load = PlacingLoad(driver, "game")
            try:
                await load.until(lambda: len(load.outcomes) > 500, "placements before the failover")
                await asyncio.to_thread(sentinels.failover)
                await load.until(lambda: sentinels.sentinel.master_port() == new.port, "the switch")
                switched.append(time.monotonic())
                await load.until(lambda: load.placed_since(switched[0] + MASTER_RECHECK_S + 0.5) > 1000,
                                 "placements on the new master")
            finally:
                await load.stop()
                outcomes.extend(load.outcomes)

    try:
        asyncio.run(asyncio.wait_for(main(), 120))
    finally:
        old_client.close()
    errors = [pod for _, _, pod in outcomes if not isinstance(pod, int)]
    assert all(isinstance(e, RedisUnavailable) for e in errors), {type(e).__name__: str(e) for e in errors}
    settled = switched[0] + MASTER_RECHECK_S + 0.5
    late = [(uid, pod) for when, uid, pod in outcomes if when > settled and isinstance(pod, int)]
    keys = [f"sf:{{default:lk:{uid}}}game" for uid, _ in late]
    stored = new_client.mget(keys)
    assert [int(v) if v is not None else None for v in stored] == [pod for _, pod in late]
    assert new_client.info("replication")["role"] == "master"
    new_client.close()
    print(f"\nasyncio driver through a failover: {len(outcomes)} placements, {len(errors)} failed "
          f"(RedisUnavailable), {len(late)} checked on the new master")
