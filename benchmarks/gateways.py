"""Many gateways placing one burst: G real processes, each with its own
ClientDriver, against one Redis, between two heartbeats.

`python -m benchmarks.gateways` is one gateway. It reads its configuration
from the environment (STROUTE_REDIS_URL, STROUTE_STATE_REFRESH, ...) like
any embedding application, and answers on stdout, one JSON line each:

    (start)               -> {"ready": true, "gateways": N}   registered: it read the service's states once
    go SVC PREFIX COUNT   -> {"pods": {"3": placed, ...}, "gateways": N}
                             re-reads the states (so it counts every gateway
                             registered by then) and places COUNT new users
                             PREFIX0, PREFIX1, ... one by one, as a gateway does
    quit                  -> exits 0 (so does end of input)

`burst()` runs G of them: it waits until every one is registered, then
starts them together, so the burst is split evenly over the gateways.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    from stroute import config as config_module
    from stroute.client import ClientDriver

    service = os.environ.get("STROUTE_BENCH_SERVICE", "bench")
    with ClientDriver(config_module.load()) as driver:
        snap = driver.snapshot(service)
        print(json.dumps({"ready": True, "gateways": snap.gateways}), flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] == "quit":
                break
            if words[0] == "go" and len(words) == 4:
                svc, prefix, count = words[1], words[2], int(words[3])
                snap = driver.snapshot(svc, refresh=True)
                counts: Counter[int] = Counter()
                for i in range(count):
                    counts[driver.place(f"{prefix}{i}", svc).pod] += 1
                print(json.dumps({"pods": {str(p): n for p, n in sorted(counts.items())},
                                  "gateways": snap.gateways}), flush=True)
            else:
                print(json.dumps({"error": f"unknown request {line.strip()!r}"}), flush=True)
    return 0


class Gateways:
    """G gateway processes; stopped (and waited for) on exit."""

    def __init__(self, url: str, count: int, *, service: str = "bench", env: dict[str, str] | None = None) -> None:
        self.env = {**os.environ, "STROUTE_REDIS_URL": url, "STROUTE_STATE_REFRESH": "3600",
                    "STROUTE_STATE_EXPIRE": "3600", "STROUTE_BENCH_SERVICE": service,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                    **(env or {})}
        self.count = count
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "Gateways":
        for _ in range(self.count):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "benchmarks.gateways"], cwd=ROOT, env=self.env, text=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        for proc in self.procs:
            self.read(proc, "ready")
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.stdin.write("quit\n")
                    proc.stdin.close()
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()

    @staticmethod
    def read(proc: subprocess.Popen, want: str) -> dict:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a gateway process ended early (exit {proc.wait()})")
        answer = json.loads(line)
        if want not in answer:
            raise RuntimeError(f"a gateway process answered {answer}")
        return answer

    def burst(self, service: str, users: int, prefix: str) -> tuple[Counter, list[int]]:
        """`users` new users split evenly over the gateways, all started together:
        users placed per pod, and the gateway count each one saw."""
        share, rest = divmod(users, self.count)
        for i, proc in enumerate(self.procs):
            proc.stdin.write(f"go {service} {prefix}g{i}- {share + (i < rest)}\n")
            proc.stdin.flush()
        total: Counter[int] = Counter()
        seen = []
        for proc in self.procs:
            answer = self.read(proc, "pods")
            total.update({int(p): n for p, n in answer["pods"].items()})
            seen.append(answer["gateways"])
        return total, seen


def balance(loads: list[int], placed: Counter) -> float:
    """max/mean of reported load + users placed, over the pods."""
    totals = [load + placed.get(pod, 0) for pod, load in enumerate(loads)]
    return max(totals) / (sum(totals) / len(totals))


if __name__ == "__main__":
    sys.exit(main())
