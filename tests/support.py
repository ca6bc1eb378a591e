"""Helpers shared by the driver-core tests: invariant checks, polling, counters."""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

from stroute.podstate import PodState, RoutingState


def wait_until(predicate: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.02, what: str = "") -> Any:
    """Poll until predicate() is truthy and return it; fail after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def check_invariant(client: Any, prefix: str = "sf") -> None:
    """SPEC's index invariant, read with raw Redis commands:

    field svc in P:{ns:lk:uid} iff P:{ns:lk:uid}svc exists with no TTL and the same value.
    """
    link_keys: list[str] = []
    index_keys: list[str] = []
    for key in client.scan_iter(match=f"{prefix}:{{*:lk:*}}*", count=1000):
        (index_keys if key.endswith("}") else link_keys).append(key)
    for key in link_keys:
        head, _, service = key.rpartition("}")
        index = head + "}"
        value, pttl = client.get(key), client.pttl(key)
        in_index = client.hget(index, service)
        if value is not None and pttl == -1:
            assert in_index == value, f"persistent link {key}={value!r} but index field {service!r} is {in_index!r}"
        elif value is not None:
            assert in_index is None, f"temporary link {key} (pttl {pttl}) is in the index as {in_index!r}"
    for index in index_keys:
        assert client.type(index) == "hash", f"{index} is a {client.type(index)}, not a hash"
        for service, value in client.hgetall(index).items():
            link = index + service
            assert client.get(link) == value, f"index {index} has {service}={value!r}, link key holds {client.get(link)!r}"
            assert client.pttl(link) == -1, f"index {index} has {service} but {link} has a TTL"


class Checked:
    """Wraps a Store: runs check_invariant after every method call, raising or not."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = attr(*args, **kwargs)
                if hasattr(result, "__next__"):  # scan_links: drain it, then check
                    result = list(result)
                return result
            finally:
                check_invariant(self._store.client, self._store.prefix)

        return call


def redis_millis(client: Any) -> int:
    secs, micros = client.time()
    return int(secs) * 1000 + int(micros) // 1000


def put_state(client: Any, service: str, pod: int, *, load: int = 0, state: RoutingState = RoutingState.READY,
              age_ms: int = 0, epoch: int | None = None, namespace: str = "default", prefix: str = "sf") -> None:
    """Write one pod's state field with a raw HSET, heartbeat `age_ms` before Redis's now."""
    value = PodState(load, redis_millis(client) - age_ms, state, epoch).encode()
    client.hset(f"{prefix}:{{{namespace}:state:{service}}}", str(pod), value)


def all_keys(client: Any) -> dict[str, tuple[str, Any, int]]:
    """Every key with its type, value and PTTL: a fingerprint of the whole database."""
    out: dict[str, tuple[str, Any, int]] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        value: Any = {
            "string": client.get,
            "hash": client.hgetall,
            "set": lambda k: sorted(client.smembers(k)),
        }.get(kind, lambda k: None)(key)
        out[key] = (kind, value, -1 if client.pttl(key) == -1 else 1)
    return out


class CommandCounter:
    """Counts commands a REAL redis-server ran, from its own INFO commandstats.

    reset() runs CONFIG RESETSTAT; counts() leaves out the CONFIG and INFO
    calls this counter makes itself.
    """

    _OWN = ("cmdstat_config", "cmdstat_info")

    def __init__(self, client: Any) -> None:
        self.client = client

    def reset(self) -> None:
        self.client.config_resetstat()

    def counts(self) -> dict[str, int]:
        stats = self.client.info("commandstats")
        counts = {
            name.removeprefix("cmdstat_"): int(row["calls"])
            for name, row in stats.items()
            if not name.startswith(self._OWN)
        }
        # Redis 6 counts subcommands under their command: stroute sends no
        # SCRIPT but LOAD, so name it as Redis 7 does; CLIENT's (SETNAME, and a
        # coherent driver's TRACKING and CACHING) all land in client|setname.
        for command, sub in (("script", "script|load"), ("client", "client|setname")):
            if command in counts:
                counts[sub] = counts.get(sub, 0) + counts.pop(command)
        return counts

    def total(self) -> int:
        return sum(self.counts().values())


def stroute_bin() -> str:
    """The installed `stroute` entry point of the interpreter running the tests."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).parent / "stroute"
    if beside.exists():
        return str(beside)
    found = shutil.which("stroute")
    assert found, "the stroute entry point is not installed"
    return found


def run_in_lockstep(args: list[list[str]], payload: str, *, timeout: float = 60) -> tuple[list[Any], float]:
    """Start one process per argv, send each `payload` (a line), wait until every
    one prints 'ready', then send 'go' to all at once; return each process's
    JSON reply and the monotonic time of 'go'."""
    import json
    import subprocess
    import time

    procs = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for argv in args]
    try:
        for proc in procs:
            proc.stdin.write(payload + "\n")
            proc.stdin.flush()
        for proc in procs:  # every process is connected and has read its states
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read()
        go = time.monotonic()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        replies = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err
            replies.append(json.loads(out))
        return replies, go
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class PlacingLoad:
    """`workers` coroutines placing new users through an async driver until
    stop() is awaited; each outcome is recorded as (when it completed, uid,
    pod or the RedisUnavailable / NoAvailablePod it raised). A failed call
    waits 10 ms before the next, as a client backing off would."""

    def __init__(self, driver: Any, service: str, *, workers: int = 50) -> None:
        import asyncio

        from stroute.errors import NoAvailablePod, RedisUnavailable

        self.outcomes: list[tuple[float, str, Any]] = []
        self._stop = asyncio.Event()

        async def worker(w: int) -> None:
            i = 0
            while not self._stop.is_set():
                i += 1
                uid = f"w{w}-{i}"
                try:
                    placed = await driver.place(uid, service)
                    self.outcomes.append((time.monotonic(), uid, placed.pod))
                except (RedisUnavailable, NoAvailablePod) as exc:
                    self.outcomes.append((time.monotonic(), uid, exc))
                    await asyncio.sleep(0.01)

        self._tasks = [asyncio.ensure_future(worker(w)) for w in range(workers)]

    def placed_since(self, since: float) -> int:
        return sum(1 for when, _, pod in self.outcomes if when > since and isinstance(pod, int))

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
        """Poll predicate() with a deadline, letting the workers run."""
        import asyncio

        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"{what}: {self.outcomes[-3:]}"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        import asyncio

        self._stop.set()
        await asyncio.gather(*self._tasks)
