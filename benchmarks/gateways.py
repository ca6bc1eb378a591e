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
        if os.environ.get("STROUTE_BENCH_LOCAL_ONLY") == "1":
            driver.gateway_id = ""  # the baseline: registers nowhere, counts only its own placements
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

    def __init__(self, url: str, count: int, *, service: str = "bench", env: dict[str, str] | None = None,
                 local_only: bool = False) -> None:
        self.env = {**os.environ, "STROUTE_REDIS_URL": url, "STROUTE_STATE_REFRESH": "3600",
                    "STROUTE_STATE_EXPIRE": "3600", "STROUTE_BENCH_SERVICE": service,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                    "STROUTE_BENCH_LOCAL_ONLY": "1" if local_only else "0", **(env or {})}
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


# --- the figures ----------------------------------------------------------------------

SKEWED = [0] + [100] * 9  # pod 0 just joined (or restarted); pods 1-9 hold 100 users each
EQUAL = [100] * 10


def _users(h) -> int:
    return 2000 if h.quick else 10_000


def burst_balance(h) -> "Figure":
    from benchmarks.harness import SERVICE, Figure, publish_pods

    n = _users(h)
    f = Figure()
    for key, loads, goal in (("burst_balance_gateways", SKEWED, 1.10), ("burst_balance_gateways_equal", EQUAL, 1.05)):
        result, worst = {}, []
        for g in (1, 4, 8):
            h.reset()
            publish_pods(h, 10, loads)
            with Gateways(h.url, g) as gateways:
                placed, seen = gateways.burst(SERVICE, n, "u")
            result[str(g)] = round(balance(loads, placed), 3)
            worst.append(f"G={g}: pod 0 {loads[0]}+{placed[0]}, others {min(loads[1:])}+"
                         f"{min(placed[p] for p in range(1, 10))}..{max(placed[p] for p in range(1, 10))}"
                         f" (gateways seen {min(seen)}..{max(seen)})")
        f.values[key] = result
        f.rows.append((key, " ".join(f"{g}:{v}" for g, v in result.items()), f"<= {goal:.2f}",
                       f"max/mean of load + placed, {n:,} new users over G processes on 10 pods; " + "; ".join(worst)))
    # The baseline: the same skewed burst with each gateway counting only its own placements.
    baseline = {}
    for g in (4, 8):
        h.reset()
        publish_pods(h, 10, SKEWED)
        with Gateways(h.url, g, local_only=True) as gateways:
            placed, _ = gateways.burst(SERVICE, n, "b")
        baseline[str(g)] = round(balance(SKEWED, placed), 3)
    f.values["burst_balance_gateways_local_only"] = baseline
    f.rows.append(("burst_balance_gateways_local_only", " ".join(f"{g}:{v}" for g, v in baseline.items()), "report",
                   "the skewed burst with each gateway counting only its own placements (before the gateway count)"))
    return f


def commands_per_new_user(h) -> "Figure":
    from benchmarks.harness import SERVICE, Figure, publish_pods

    n, g = _users(h), 8
    publish_pods(h, 10, SKEWED)
    burst: list[int] = []
    names: Counter[str] = Counter()

    def run() -> None:
        with Gateways(h.url, g) as gateways:
            burst.append(h.count_commands(lambda: gateways.burst(SERVICE, n, "c")))

    # The gateways' whole lives (connecting, the invalidation channel, the
    # first read, leaving), and the burst alone within them.
    total = h.count_commands(run, names)
    f = Figure()
    shown = ", ".join(f"{name} {count:,}" for name, count in names.most_common())
    f.add("commands_per_new_user_gateways", round(total / n, 3), "<= 1.2",
          f"MONITOR, {g} gateway processes placing {n:,} new users: {total:,} commands from start to exit "
          f"({shown}), {burst[0]:,} during the burst")
    return f


def slow_start_share(h) -> "Figure":
    """The new pod's share of new users in each tenth of its slow-start window.

    Time is the driver's injectable clock, so each tenth gets the same number
    of new users whatever the machine's speed: the window is 60 s of that clock.
    """
    from benchmarks.harness import SERVICE, Figure, publish_pods
    from stroute.client import ClientDriver
    from stroute.podstate import RoutingState

    n = 2000 if h.quick else 10_000  # per tenth
    window = 60.0
    publish_pods(h, 10, [100] * 10)  # pods 1-9: warm (no epoch: an original driver, or long up)
    store = h.store()
    store.publish_state("default", SERVICE, 0, load=0, state=RoutingState.READY, epoch=1,
                        expire_ms=3_600_000, claim="force")
    store.close()
    now = [0.0]
    client = ClientDriver(h.config(**{"placement.slow_start": window}), clock=lambda: now[0], coherent=False)
    shares = []
    # Batches of 50 (one round trip each) with the clock moved between them:
    # the share is a proportion, so it takes many users per tenth to show.
    per_tenth, batch = n, 50
    for tenth in range(10):
        new = 0
        for start in range(0, per_tenth, batch):
            now[0] = (tenth + start / per_tenth) * window / 10
            placed = client.place_many([f"s{tenth}-{i}" for i in range(start, start + batch)], SERVICE)
            new += sum(1 for p in placed.values() if p.pod == 0)
        shares.append(round(new / per_tenth, 4))
    client.close()
    f = Figure()
    f.values["slow_start_share"] = shares
    ramps = all(a <= b for a, b in zip(shares, shares[1:]))
    f.rows.append(("slow_start_share", "ramps" if ramps else "NOT monotonic", "ramps",
                   f"new pod (load 0) among 10 at 100, {per_tenth:,} new users per tenth of a {window:g} s window: "
                   + " ".join(f"{s:.3f}" for s in shares)))
    return f
