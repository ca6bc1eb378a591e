"""One function per figure of the performance issue; each returns its values and table rows."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from typing import Callable

from benchmarks import aio, coherence, drain, gateways
from benchmarks.harness import SERVICE, Figure, Harness, count_round_trips, paired, rate
from benchmarks.harness import publish_pods as _publish_pods
from stroute.client import ClientDriver
from stroute.server import ServerDriver
from stroute.store import script_source

def compute_cold(h: Harness) -> Figure:
    n = 2000 if h.quick else 10000
    rounds = 5
    _publish_pods(h, 10)
    client = ClientDriver(h.config())
    client.snapshot(SERVICE)  # warm
    # The barest redis-py call of the script: evalsha on the client, no script object.
    sha = h.raw.script_load(script_source("link_set_if_absent"))
    ks = client.store.keys("default")

    def ours(i: int) -> float:
        def run():
            for j in range(n):
                client.place(f"c{i}-{j}", SERVICE)
        return rate(n, run)

    def baseline(i: int) -> float:
        def run():
            for j in range(n):
                uid = f"b{i}-{j}"
                h.raw.evalsha(sha, 2, ks.link(uid, SERVICE), ks.index(uid), SERVICE, j % 10, 300000)
        return rate(n, run)

    ours_rate, bare_rate = paired(ours, baseline, rounds)
    commands = h.count_commands(lambda: [client.place(f"cmd-{j}", SERVICE) for j in range(100)])

    def warm_run():
        for _ in range(n * 5):
            client.place("c0-0", SERVICE)
    warm = rate(n * 5, warm_run)
    client.close()
    f = Figure()
    f.add("compute_cold_ratio", round(ours_rate / bare_rate, 3), ">= 0.8",
          f"{ours_rate:,.0f}/s driver vs {bare_rate:,.0f}/s bare EVALSHA loop; {commands / 100:.2f} commands per new user")
    f.add("compute_warm_per_s", round(warm), "report", "cache hits, no Redis")
    return f


def batch_get(h: Harness) -> Figure:
    n = 20000 if h.quick else 100000
    store = h.store()
    ks = store.keys("default")
    uids = [f"u{i}" for i in range(n)]
    pipe = h.raw.pipeline(transaction=False)
    for i, uid in enumerate(uids):
        if i % 10:  # every tenth uid has no link
            pipe.set(ks.link(uid, SERVICE), i % 10)
    pipe.execute()
    client = ClientDriver(h.config(), store=store)
    keys = [ks.link(uid, SERVICE) for uid in uids]

    def ours(_: int) -> float:
        return rate(n, lambda: client.batch_get_linked_pod("default", uids, SERVICE))

    def baseline(_: int) -> float:
        def run():
            p = h.raw.pipeline(transaction=False)
            for start in range(0, n, 10000):
                p.mget(keys[start:start + 10000])
            p.execute()
        return rate(n, run)

    ours_rate, bare_rate = paired(ours, baseline, 3)
    commands = h.count_commands(lambda: client.batch_get_linked_pod("default", uids, SERVICE))
    trips = count_round_trips(store, lambda: client.batch_get_linked_pod("default", uids, SERVICE))
    store.close()
    f = Figure()
    f.add("batch_get_ratio", round(ours_rate / bare_rate, 3), ">= 0.5",
          f"{ours_rate:,.0f} uids/s vs {bare_rate:,.0f}/s bare pipelined MGET; "
          f"{n:,} uids in {trips} round trip{'s' if trips != 1 else ''}, {commands} MGET commands")
    f.values["batch_get_round_trips"] = trips
    f.values["batch_get_commands"] = commands
    return f


def _stroute() -> str:
    found = shutil.which("stroute", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if not found:
        raise RuntimeError("the stroute command is not installed in this environment")
    return found


def batch_place(h: Harness) -> Figure:
    n = 10000
    _publish_pods(h, 10)
    env = {**os.environ, "STROUTE_REDIS_URL": h.url}
    command = [_stroute(), "-o", "json", "place", "-s", SERVICE, "-"]

    def place(prefix: str) -> None:
        batch = "\n".join(f"{prefix}{i}" for i in range(n)) + "\n"
        subprocess.run(command, input=batch, text=True, env=env, check=True, stdout=subprocess.DEVNULL)

    start = time.perf_counter()
    place("p")
    ours_s = time.perf_counter() - start
    commands = h.count_commands(lambda: place("c"))

    sha = h.raw.script_load(script_source("link_set_if_absent"))
    store = h.store()
    ks = store.keys("default")
    store.close()

    def run():
        pipe = h.raw.pipeline(transaction=False)
        for i in range(n):
            uid = f"q{i}"
            pipe.evalsha(sha, 2, ks.link(uid, SERVICE), ks.index(uid), SERVICE, i % 10, 300000)
        pipe.execute()
    bare_rate = rate(n, run)
    f = Figure()
    f.add("batch_place_commands_per_uid", round(commands / n, 4), "<= 1.05",
          f"{commands} commands for {n:,} new uids via `stroute place -`; "
          f"{n / ours_s:,.0f} uids/s (whole process) vs {bare_rate:,.0f}/s bare pipelined EVALSHA")
    f.values["batch_place_per_s"] = round(n / ours_s)
    f.values["batch_place_bare_per_s"] = round(bare_rate)
    return f


def cli_startup(h: Harness) -> Figure:
    rounds = 9 if h.quick else 21
    store = h.store()
    store.set("default", "42", SERVICE, 3)
    key = store.keys("default").link("42", SERVICE)
    store.close()
    env = {**os.environ, "STROUTE_REDIS_URL": h.url}
    ours = [_stroute(), "link", "get", "42", "-s", SERVICE, "-o", "json"]
    bare = [sys.executable, "-c", f"import redis; redis.Redis.from_url({h.url!r}).get({key!r})"]

    def timed(cmd: list[str]) -> Callable[[int], float]:
        def run(_: int) -> float:
            start = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return time.perf_counter() - start
        return run

    # Run in turn, and the ratio taken pair by pair: a pair shares the
    # machine's speed of the moment, which drifts by more than the gap.
    ours_runs, bare_runs = [], []
    for i in range(rounds):
        ours_runs.append(timed(ours)(i))
        bare_runs.append(timed(bare)(i))
    ratio = statistics.median(o / b for o, b in zip(ours_runs, bare_runs))
    ours_s, bare_s = statistics.median(ours_runs), statistics.median(bare_runs)
    f = Figure()
    f.add("cli_startup_ratio", round(ratio, 3), "<= 1.3",
          f"median {ours_s * 1000:.0f} ms `stroute link get -o json` vs {bare_s * 1000:.0f} ms bare redis-py GET; "
          f"median of {rounds} pairwise ratios")
    return f


def burst(h: Harness) -> Figure:
    n = 10000
    f = Figure()
    for label, loads in (("burst_balance", [100] * 10), ("burst_balance_skewed", [200] + [100] * 9)):
        result = {}
        for strategy in ("p2c", "least-loaded", "round-robin", "hash"):
            h.reset()
            _publish_pods(h, 10, loads)
            client = ClientDriver(h.config(**{"placement.strategy": strategy}))
            counts: Counter[int] = Counter()
            placed = client.place_many([f"{strategy}-{i}" for i in range(n)], SERVICE)
            for p in placed.values():
                counts[p.pod] += 1
            client.close()
            mean = n / 10
            result[strategy] = round(max(counts.values()) / mean, 3)
        f.values[label] = result
        shown = " ".join(f"{k}={v}" for k, v in result.items())
        f.rows.append((label, f"p2c {result['p2c']}", "<= 1.10" if label == "burst_balance" else "report",
                       f"max/mean of {n:,} new users on 10 pods: {shown}"))
    return f


def _plant_links(h: Harness, n: int) -> None:
    """n links of SERVICE: half persistent, half temporary (an hour left)."""
    ks = h.store().keys("default")
    pipe = h.raw.pipeline(transaction=False)
    for i in range(n):
        if i % 2:
            pipe.set(ks.link(f"l{i}", SERVICE), i % 10, px=3600000)
        else:
            pipe.set(ks.link(f"l{i}", SERVICE), i % 10)
        if len(pipe) >= 10000:
            pipe.execute()
    pipe.execute()


def link_list(h: Harness) -> Figure:
    n = 100000 if h.quick else 1000000
    count = 1000  # SCAN COUNT of every loop here: the listing's default
    store = h.store()
    ks = store.keys("default")
    _plant_links(h, n)
    pattern = ks.link_pattern()
    # Redis's own CPU time per link of each kind of run: how much of a
    # listing's cost is Redis serving its commands, which no client can cut.
    server_cpu: dict[str, list[float]] = {"ours": [], "bare": [], "floor": []}

    def redis_cpu() -> float:
        info = h.raw.info("cpu")
        return info["used_cpu_user"] + info["used_cpu_sys"]

    def measured(kind: str, run: Callable[[], object]) -> float:
        before = redis_cpu()
        per_s = rate(n, run)
        server_cpu[kind].append((redis_cpu() - before) / n)
        return per_s

    def ours(_: int) -> float:
        return measured("ours", lambda: sum(1 for _ in store.scan_links("default", count=count)))

    def baseline(_: int) -> float:
        def run():
            cursor = 0
            while True:
                cursor, _keys = h.raw.scan(cursor, match=pattern, count=count)
                if cursor == 0:
                    break
        return measured("bare", run)

    def same_commands(_: int) -> float:
        # The commands stroute sends for a listing, sent by bare redis-py:
        # SCAN, and per page one pipeline of MGET and a PTTL per key.
        def run():
            cursor = 0
            while True:
                cursor, keys = h.raw.scan(cursor, match=pattern, count=count)
                if keys:
                    pipe = h.raw.pipeline(transaction=False)
                    pipe.mget(keys)
                    for key in keys:
                        pipe.pttl(key)
                    pipe.execute()
                if cursor == 0:
                    break
        return rate(n, run)

    def floor(_: int) -> float:
        return measured("floor", lambda: _listing_commands_only(h, pattern, count))

    rounds = 3
    runs: dict[str, list[float]] = {"ours": [], "bare": [], "floor": [], "same": []}
    for i in range(rounds):  # in turn, so drift hits every kind of run alike
        for kind, run in (("ours", ours), ("bare", baseline), ("floor", floor), ("same", same_commands)):
            runs[kind].append(run(i))
    ours_rate, bare_rate, floor_rate, same_rate = (statistics.median(runs[k]) for k in ("ours", "bare", "floor", "same"))
    store.close()
    _compile_stroute()
    _first_row_ms(h)  # once unmeasured: the files it reads are in the page cache, as on a machine that ran it before
    _libraries_ms()
    first_runs, library_runs = [], []
    for _ in range(5):  # in turn, as above
        first_runs.append(_first_row_ms(h))
        library_runs.append(_libraries_ms())
    first_ms, libraries_ms = statistics.median(first_runs), statistics.median(library_runs)
    ours_cpu, bare_cpu, floor_cpu = (statistics.median(server_cpu[k]) * 1e6 for k in ("ours", "bare", "floor"))
    f = Figure()
    f.add("link_list_ratio", round(ours_rate / bare_rate, 3), ">= 0.5",
          f"{ours_rate:,.0f} links/s with pod and TTL vs {bare_rate:,.0f} keys/s bare SCAN, {n:,} links, "
          f"COUNT {count} in both, medians of {rounds} runs taken in turn; "
          f"the same commands from bare redis-py: {same_rate:,.0f}/s (ratio {same_rate / bare_rate:.3f})")
    f.values["link_list_same_commands_ratio"] = round(same_rate / bare_rate, 3)
    f.add("link_list_floor_ratio", round(floor_rate / bare_rate, 3), "report",
          f"the listing's commands (SCAN, MGET and a PTTL per key) from a client that only counts the replies: "
          f"{floor_rate:,.0f}/s, what any client reaches with one PTTL per link")
    bare_us = 1e6 / bare_rate
    f.add("link_list_redis_bound_ratio", round(bare_us / ours_cpu, 3), "report",
          f"a bare SCAN's {bare_us:.2f} us per key over Redis's CPU per link listed, {ours_cpu:.2f} us (INFO cpu; "
          f"{bare_cpu:.2f} us per key serving the bare SCAN, {floor_cpu:.2f} us the reply-counting client): "
          "the ratio of a listing whose client cost nothing and hid every round trip")
    f.add("link_list_first_row_ms", round(first_ms), "<= 300",
          f"`stroute link list | head -1` over {n:,} links: ms from the start of the process to its first row "
          "(median of 5, stroute's bytecode compiled as an install has it)")
    f.add("link_list_first_row_libraries_ms", round(libraries_ms), "report",
          "a Python process that imports redis and typer, the libraries the command line stands on, and exits "
          "(median of 5, taken in turn with the first row's runs): the part of the first row stroute cannot cut")
    return f


def _listing_commands_only(h: Harness, pattern: str, count: int) -> None:
    """The commands of a listing, written as stroute writes them (the next
    page's SCAN, then a page's MGET and PTTLs, in one write sent as soon as
    the last write's SCAN is answered), on a plain socket whose replies are
    only counted and dropped: no key parsed, no link built."""
    import hiredis

    pack = hiredis.pack_command
    conn = h.raw.connection_pool.make_connection()
    conn.connect()  # handshake (credentials, TLS) by redis-py; then the socket is used bare
    sock, reader = conn._sock, hiredis.Reader()

    def reply():
        while True:
            answer = reader.gets()
            if answer is not False:
                return answer
            reader.feed(sock.recv(1 << 20))

    try:
        sock.sendall(pack(("SCAN", 0, "MATCH", pattern, "COUNT", count)))
        rest = 0  # replies of the last write after its SCAN's
        while True:
            cursor, keys = reply()
            more = int(cursor) != 0
            write = pack(("SCAN", cursor, "MATCH", pattern, "COUNT", count)) if more else b""
            if keys:
                write += pack(("MGET", *keys)) + b"".join([pack(("PTTL", key)) for key in keys])
            if write:
                sock.sendall(write)
            for _ in range(rest):
                reply()
            rest = 1 + len(keys) if keys else 0
            if not more:
                for _ in range(rest):
                    reply()
                return
    finally:
        conn.disconnect()


def _compile_stroute() -> None:
    """Bytecode for stroute's modules, as an installed package has it (pip
    compiles at install, and Python writes it at the first import). Where
    PYTHONDONTWRITEBYTECODE is set, an editable install would otherwise
    compile every module at every start, about 65 ms of a first row here."""
    import compileall

    import stroute

    compileall.compile_dir(os.path.dirname(stroute.__file__), quiet=1)


def _libraries_ms() -> float:
    """ms for a Python process to start, import redis and typer, and exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import redis, typer"], check=True)
    return (time.perf_counter() - start) * 1000


def _first_row_ms(h: Harness) -> float:
    """ms from starting `stroute link list` to reading its first row in a pipe; the
    pipe is then closed, as `head -1` does."""
    env = {**os.environ, "STROUTE_REDIS_URL": h.url}
    start = time.perf_counter()
    proc = subprocess.Popen([_stroute(), "--no-headers", "link", "list"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    line = proc.stdout.readline()
    elapsed = (time.perf_counter() - start) * 1000
    proc.stdout.close()
    proc.wait(timeout=600)
    if not line:
        raise RuntimeError("stroute link list printed no row")
    return elapsed


def link_list_output(h: Harness) -> Figure:
    n = 200000
    _plant_links(h, n)
    env = {**os.environ, "STROUTE_REDIS_URL": h.url}

    def timed(args: list[str]) -> Callable[[int], float]:
        def run(_: int) -> float:
            start = time.perf_counter()
            subprocess.run([_stroute(), *args, "link", "list"], env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            return time.perf_counter() - start
        return run

    rounds = 3
    table_runs, json_runs = [], []
    for i in range(rounds):  # in turn, the ratio pair by pair (see cli_startup)
        table_runs.append(timed([])(i))
        json_runs.append(timed(["-o", "json"])(i))
    ratio = statistics.median(t / j for t, j in zip(table_runs, json_runs))
    f = Figure()
    f.add("table_vs_json_ratio", round(ratio, 3), "<= 1.5",
          f"`stroute link list` of {n:,} links to a pipe (columns): median {statistics.median(table_runs):.2f} s "
          f"vs {statistics.median(json_runs):.2f} s with -o json; median of {rounds} pairwise ratios")
    return f


def memory(h: Harness) -> Figure:
    store = h.store()
    ks = store.keys("default")
    store.set("default", "user-000042", SERVICE, 3, 300000)
    temp = h.raw.memory_usage(ks.link("user-000042", SERVICE), samples=0)
    store.set("default", "user-000043", SERVICE, 3)
    persistent = h.raw.memory_usage(ks.link("user-000043", SERVICE), samples=0) + h.raw.memory_usage(
        ks.index("user-000043"), samples=0
    )
    store.close()
    f = Figure()
    f.values["bytes_per_link"] = {"temporary": temp, "persistent": persistent}
    f.rows.append(("bytes_per_link", f"{temp} / {persistent}", "report",
                   "MEMORY USAGE of a temporary link / a persistent link with its index hash (11-char uid)"))
    return f


def heartbeat(h: Harness) -> Figure:
    n = 200
    config = h.config()
    store = h.store()
    server = ServerDriver(SERVICE, 1, config, store=store)
    server.set_load_state(10)
    server.publish()
    other = h.count_commands(lambda: [server.publish() for _ in range(n)]) / n
    pod0 = ServerDriver(SERVICE, 0, config, store=store)
    pod0.set_load_state(10)
    pod0.publish()
    zero = h.count_commands(lambda: [pod0.publish() for _ in range(n)]) / n
    store.close()
    f = Figure()
    f.add("serve_commands_per_heartbeat", round(max(other, zero), 3), "<= 3",
          f"{other:.2f} per heartbeat for pod 1, {zero:.2f} for pod 0 (which also publishes the workload summary)")
    return f


ALL: dict[str, Callable[[Harness], Figure]] = {
    "compute": compute_cold,
    "batch_get": batch_get,
    "batch_place": batch_place,
    "cli_startup": cli_startup,
    "burst": burst,
    "burst_gateways": gateways.burst_balance,
    "commands_gateways": gateways.commands_per_new_user,
    "slow_start": gateways.slow_start_share,
    "link_list": link_list,
    "link_list_output": link_list_output,
    "memory": memory,
    "heartbeat": heartbeat,
    "invalidation": coherence.invalidation,
    "compute_warm": coherence.compute_warm,
    "batch_get_coherent": coherence.batch_get_coherent,
    "invalidations_per_write": coherence.invalidations_per_write,
    "shared_users": coherence.shared_users,
    "tracking_reconnect": coherence.tracking_reconnect,
    "drain": drain.drain,
    "async_place": aio.async_place,
}
