"""The Redis a benchmark runs against, and counters read from Redis itself."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import redis

from stroute.config import Config
from stroute.server import ServerDriver
from stroute.store import Store

SERVICE = "bench"


@dataclass
class Figure:
    """A figure's JSON values and its rows of the printed table."""

    values: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)

    def add(self, key: str, value, goal: str, detail: str, shown: str | None = None) -> None:
        self.values[key] = value
        self.rows.append((key, shown if shown is not None else _fmt(value), goal, detail))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 100 else f"{value:,.0f}"
    return str(value)


class Harness:
    """Uses STROUTE_BENCH_REDIS_URL, or starts its own redis-server on loopback."""

    def __init__(self, url: str | None, *, quick: bool) -> None:
        self.quick = quick
        self._server = None
        if url is None:
            from stroute.testing import RedisServer

            self._server = RedisServer().start()
            url = self._server.url
        self.url = url
        self.where = url if self._server is None else f"{url} (started for this run)"
        self.raw = redis.Redis.from_url(url, decode_responses=True)
        self.redis_version = self.raw.info("server")["redis_version"]

    def __enter__(self) -> "Harness":
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()
        if self._server is not None:
            self._server.close()

    def reset(self) -> None:
        # ASYNC: freeing the listing figures' million keys in the foreground
        # can outlast the socket timeout on a busy machine.
        self.raw.flushdb(asynchronous=True)

    def config(self, **overrides) -> Config:
        base = {"redis.url": self.url, "state.refresh": 3600, "state.expire": 3600, "state.period": 60}
        base.update(overrides)
        return Config().with_overrides(**base)

    def store(self) -> Store:
        return self.config().open_store()

    def count_commands(self, fn: Callable[[], object], by_name: Counter | None = None) -> int:
        """Commands clients sent Redis while fn ran, as Redis's MONITOR saw them
        (and, into `by_name`, how many of each command name).

        Redis's INFO counters also count the commands a script runs inside
        itself; MONITOR marks those ('lua'), so they are left out here.
        """
        import threading

        sent = 0
        ready = threading.Event()
        done = threading.Event()
        marker = "stroute-bench-count-end"

        def watch() -> None:
            nonlocal sent
            # redis-py's default read timeout would end a MONITOR that sees
            # nothing for a few seconds (processes starting on a busy machine).
            monitor_client = redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=600)
            with monitor_client.monitor() as monitor:
                ready.set()
                for entry in monitor.listen():
                    if marker in entry["command"]:
                        break
                    if entry.get("client_type") != "lua":
                        sent += 1
                        if by_name is not None:
                            by_name[entry["command"].split(" ", 1)[0].upper()] += 1
            monitor_client.close()
            done.set()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        if not ready.wait(10):
            raise RuntimeError("MONITOR did not start")
        fn()
        self.raw.echo(marker)
        if not done.wait(600):
            raise RuntimeError("MONITOR did not see the end marker")
        return sent


def publish_pods(h: Harness, count: int, loads: list[int] | None = None) -> None:
    """Pods 0..count-1 of SERVICE, ready, each with one heartbeat."""
    store = h.store()
    config = h.config()
    for pod in range(count):
        server = ServerDriver(SERVICE, pod, config, store=store)
        server.set_load_state(loads[pod] if loads else 100)
        server.publish()
    store.close()


def count_round_trips(store: Store, fn: Callable[[], object]) -> int:
    """Round trips the store made while fn ran: each single command and each
    pipeline it sent on its own connections, a chain's too (not on a cluster)."""
    commands = store._direct
    if commands is None:
        raise RuntimeError("round trips are counted on a single Redis only")
    trips = 0

    def counted(method):
        def run(*args, **kwargs):
            nonlocal trips
            trips += 1
            return method(*args, **kwargs)
        return run

    def counted_chain(method):
        def run(*args, **kwargs):
            nonlocal trips
            for replies in method(*args, **kwargs):
                trips += 1  # each pipeline of a chain
                yield replies
        return run

    commands.call, commands.pipeline = counted(commands.call), counted(commands.pipeline)
    commands.chain = counted_chain(commands.chain)
    try:
        fn()
    finally:
        del commands.call, commands.pipeline, commands.chain  # back to the class's methods
    return trips


def rate(count: int, fn: Callable[[], object]) -> float:
    """count / seconds fn took."""
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def paired(fn_a: Callable[[int], float], fn_b: Callable[[int], float], rounds: int) -> tuple[float, float]:
    """Median of alternating runs of two measurements (so drift hits both)."""
    a, b = [], []
    for i in range(rounds):
        a.append(fn_a(i))
        b.append(fn_b(i))
    return statistics.median(a), statistics.median(b)
