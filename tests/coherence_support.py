"""Helpers of the process-level coherence tests: gateway processes, and a watch
that tells whether a gateway's answers followed a move within the bound.

Every time here is time.monotonic(), which on Linux is CLOCK_MONOTONIC, one
clock for every process: a gateway stamps each answer with the time its
lookup began (tests/gateway_proc.py), and the test compares that with the
time it knows a write was done. A write is "done" at the earliest time the
test can prove it was: the end of the command that made it, or the reply of
a raw GET that already showed it, whichever came first. An answer that began
later than done + the bound and names the old value is a stale answer.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cli.ops_support import bin_env

BOUND = 1.0  # links.coherence_bound's default: a stale answer must never outlive it
NS = "default"
GATEWAY = str(Path(__file__).with_name("gateway_proc.py"))
MOVER = str(Path(__file__).with_name("mover_proc.py"))
# The gateways re-read a service's pod states only when Redis says they changed.
GATEWAY_ENV = {"STROUTE_STATE_EXPIRE": "600", "STROUTE_STATE_REFRESH": "600", "STROUTE_LINKS_CACHE_SECONDS": "200"}


def link_key(uid: str, service: str, namespace: str = NS) -> str:
    return f"sf:{{{namespace}:lk:{uid}}}{service}"


class LineProcess:
    """A Python child process spoken to in lines: requests on stdin, one JSON
    reply per line on stdout (read by a thread, so a hung child fails the
    test by a timeout instead of hanging it), stderr to a file."""

    def __init__(self, tmp_path: Path, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.stderr_path = tmp_path / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, cwd=tmp_path, env=bin_env(tmp_path, **env),
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    @property
    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def send(self, *words: Any) -> None:
        self.process.stdin.write(" ".join(map(str, words)) + "\n")
        self.process.stdin.flush()

    def receive(self, timeout: float = 20.0) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name}: no reply within {timeout} s\n{self.stderr}") from None
        if line is None:
            raise AssertionError(f"{self.name} exited ({self.process.poll()}):\n{self.stderr}")
        return json.loads(line)

    def close(self) -> None:
        """Ask it to stop (end of input), then kill it if it does not."""
        try:
            if self.process.poll() is None:
                try:
                    self.process.stdin.close()
                except OSError:
                    pass
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Gateway(LineProcess):
    """tests/gateway_proc.py: a long-lived ClientDriver in its own process."""

    def __init__(self, tmp_path: Path, url: str, name: str = "gateway", **env: str) -> None:
        super().__init__(tmp_path, name, [GATEWAY], {"STROUTE_REDIS_URL": url, **GATEWAY_ENV, **env})
        self.ready: dict | None = None

    def wait_ready(self, timeout: float = 30.0) -> dict:
        before = time.monotonic()
        self.ready = self.receive(timeout)
        assert self.ready.get("ready"), self.ready
        # One clock for both processes: the gateway's "now" lies between two of ours.
        assert before - timeout <= self.ready["t"] <= time.monotonic(), (before, self.ready)
        assert self.ready["coherent"] and self.ready["state"] == "coherent", (self.ready, self.stderr)
        return self.ready

    def ask(self, *words: Any, timeout: float = 20.0) -> dict:
        self.send(*words)
        return self.receive(timeout)

    def answers(self, op: str, service: str, uids: list[str]) -> list[dict]:
        return self.ask(op, service, *uids)["answers"]

    def stats(self) -> dict:
        return self.ask("stats")

    def warm(self, service: str, uids: list[str]) -> dict[str, int]:
        """Place each user until the answer comes from the cache; {uid: pod}."""
        first = self.answers("place", service, uids)
        assert all("error" not in a for a in first), first
        deadline = time.monotonic() + 10
        while True:
            again = self.answers("place", service, uids)
            if all(a.get("source") == "cache" for a in again):
                break
            assert time.monotonic() < deadline, f"the cache did not warm: {again}"
            time.sleep(0.02)
        return {a["uid"]: a["pod"] for a in again}


@dataclass
class Mover:
    """A write (a CLI process, redis-cli, ...) run in a thread while the test watches."""

    run: Callable[[], Any]
    result: Any = None
    error: BaseException | None = None
    ended: float | None = None  # monotonic time when it returned: every write it made is done
    _thread: threading.Thread | None = None

    def start(self) -> "Mover":
        def body() -> None:
            try:
                self.result = self.run()
            except BaseException as exc:  # re-raised by the test
                self.error = exc
            finally:
                self.ended = time.monotonic()

        self._thread = threading.Thread(target=body, daemon=True)
        self._thread.start()
        return self

    def finished(self) -> bool:
        return self.ended is not None

    def join(self, timeout: float = 60.0) -> Any:
        self._thread.join(timeout)
        assert self.ended is not None, "the mover did not finish"
        if self.error is not None:
            raise self.error
        return self.result


@dataclass
class Watch:
    """What a gateway answered about users while their links moved."""

    old: dict[str, int | None]  # uid -> value before the move
    done: dict[str, float] = field(default_factory=dict)  # uid -> when its write was done (see the module)
    final: dict[str, int | None] = field(default_factory=dict)  # uid -> value in Redis after the move
    answers: list[dict] = field(default_factory=list)  # every answer, with its "t"
    result: Any = None  # what the mover returned

    def stale(self, bound: float = BOUND) -> list[dict]:
        """Answers that named the old value although they began more than `bound` after the write."""
        return [a for a in self.answers if self.is_stale(a, bound)]

    def is_stale(self, a: dict, bound: float = BOUND) -> bool:
        uid = a["uid"]
        return uid in self.done and a.get("pod", "-") == self.old[uid] and a["t"] > self.done[uid] + bound

    def flip_backs(self) -> list[dict]:
        """Answers that named the old value again after a new one was given (never right)."""
        out = []
        for uid in self.old:
            seen_new = False
            for a in sorted((a for a in self.answers if a["uid"] == uid and "error" not in a), key=lambda a: a["t"]):
                if a["pod"] == self.final[uid]:
                    seen_new = True
                elif seen_new and a["pod"] == self.old[uid]:
                    out.append(a)
        return out

    def lag(self) -> dict[str, float]:
        """Per user: how long after the write the last answer naming the old value began (0: none did)."""
        out = {}
        for uid, done in self.done.items():
            olds = [a["t"] for a in self.answers if a["uid"] == uid and a.get("pod", "-") == self.old[uid]]
            out[uid] = max(0.0, max(olds, default=done) - done)
        return out

    def errors(self) -> list[dict]:
        return [a for a in self.answers if "error" in a]


def watch_move(gateway: Gateway, raw: Any, service: str, old: dict[str, int | None], op: str, mover: Mover,
               *, timeout: float = 60.0, interval: float = 0.003) -> Watch:
    """Start `mover`, and until it has ended and the gateway gives Redis's final
    value for every user, ask the gateway about the users (`op`: place, get or
    both) and read Redis, recording every answer and when each write was done."""
    watch = Watch(dict(old))
    keys = [link_key(uid, service) for uid in old]
    uids = list(old)
    mover.start()
    deadline = time.monotonic() + timeout
    while True:
        values = raw.mget(keys)
        read = time.monotonic()
        for uid, value in zip(uids, values):
            value = None if value is None else int(value)
            if value != old[uid] and uid not in watch.done:
                watch.done[uid] = read
        new = gateway.answers(op, service, uids)
        watch.answers.extend(new)
        if any(watch.is_stale(a) for a in new):
            return watch  # the test fails on it; waiting longer would only hide when it happened
        if mover.finished():
            if not watch.final:
                watch.result = mover.join()
                # The command's end is a bound on every write it made, perhaps earlier than our GETs.
                watch.final = {uid: (None if v is None else int(v)) for uid, v in zip(uids, raw.mget(keys))}
                for uid in uids:
                    if watch.final[uid] != old[uid]:
                        watch.done[uid] = min(watch.done.get(uid, mover.ended), mover.ended)
            latest = {}
            for a in watch.answers:
                latest.setdefault(a["uid"], []).append(a)
            if all(all(a.get("pod", "-") == watch.final[uid] for a in latest[uid][-2:]) for uid in uids):
                return watch
        assert time.monotonic() < deadline, (
            f"the gateway did not follow within {timeout} s: last answers {watch.answers[-len(uids) * 2:]}, "
            f"Redis {watch.final or values}\n{gateway.stderr}")
        time.sleep(interval)
