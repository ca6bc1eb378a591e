"""Measure what a `stroute serve --http` sidecar uses: RSS and CPU over a minute.

Starts a redis-server on a free loopback port, then `stroute serve --http
--load-file` against it (the sidecar of statefulset.yaml), polls /readyz and
/healthz as a kubelet would (every 2 s), scrapes /metrics (every --scrape
seconds), and samples the sidecar's RSS and CPU time from /proc (Linux)
once a second. Prints one JSON line: peak and mean RSS, the CPU time it
took to become ready, and its CPU use once ready (user + system time over
wall time). The resources in statefulset.yaml come from this.

    python deploy/kubernetes/measure_sidecar.py --seconds 60 --period 30 --scrape 15
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from stroute.testing import free_port


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmRSS:"))
    return int(kib) * 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--period", type=float, default=30, help="state.period of the sidecar")
    parser.add_argument("--scrape", type=float, default=15, help="seconds between two /metrics scrapes")
    parser.add_argument("--redis-server", default=os.environ.get("STROUTE_TEST_REDIS_SERVER")
                        or shutil.which("redis-server"))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="stroute-measure-")
    redis_port, http_port = free_port(), free_port()
    redis = subprocess.Popen([args.redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
    env = {**os.environ, "STROUTE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "POD_NAME": "game-0",
           "HOME": workdir, "XDG_CONFIG_HOME": workdir}  # no config file of the user's
    env.pop("STROUTE_CONFIG", None)
    sidecar = None
    try:
        time.sleep(0.3)
        load_file = os.path.join(workdir, "load")  # as in statefulset.yaml: the game writes it
        with open(load_file, "w") as out:
            out.write("10\n")
        stroute = os.path.join(os.path.dirname(sys.executable), "stroute")
        # A short drain window: the stop is not what is measured.
        sidecar = subprocess.Popen([stroute, "serve", "-s", "game", "--period", str(args.period),
                                    "--drain-seconds", "1", "--load-file", load_file, "--http", f"127.0.0.1:{http_port}"],
                                   env=env, cwd=workdir, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if urllib.request.urlopen(base + "/readyz", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or sidecar.poll() is not None:
                raise SystemExit("the sidecar did not become ready")
            time.sleep(0.1)
        pid = sidecar.pid
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        rss, scrapes, probes, next_scrape = [], 0, 0, t0
        while (now := time.monotonic()) - t0 < args.seconds:
            rss.append(rss_bytes(pid))
            if now >= next_scrape:
                urllib.request.urlopen(base + "/metrics", timeout=5).read()
                scrapes, next_scrape = scrapes + 1, next_scrape + args.scrape
            if int(now - t0) % 2 == 0:
                urllib.request.urlopen(base + "/readyz", timeout=5).read()
                urllib.request.urlopen(base + "/healthz", timeout=5).read()
                probes += 2
            time.sleep(1)
        cpu = cpu_seconds(pid) - cpu0
        took = time.monotonic() - t0
        print(json.dumps({
            "server": subprocess.run([args.redis_server, "--version"], capture_output=True, text=True).stdout.split()[2],
            "seconds": round(took, 1), "period": args.period, "scrapes": scrapes, "probes": probes,
            "threads": threads(pid),
            "rss_mib_max": round(max(rss) / 2**20, 1), "rss_mib_mean": round(sum(rss) / len(rss) / 2**20, 1),
            "startup_cpu_seconds": round(cpu0, 3), "cpu_seconds": round(cpu, 3), "cpu_millicores": round(1000 * cpu / took, 1),
        }))
        return 0
    finally:
        for p in (sidecar, redis):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
