"""Figures of the coherent cache (issue 10).

How soon a move made by another process reaches a gateway's cache and
whether a stale answer outlives the coherence bound; what coherence costs a
cache hit; how many invalidation messages a link write sends a gateway, and
what they do to users shared by several gateways; how long a gateway serves
without its cache after its invalidation connection is killed. Times taken in two processes are compared on time.monotonic, which
on Linux is one clock for the whole machine (CLOCK_MONOTONIC).
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import redis

from benchmarks.harness import SERVICE, Figure, Harness, publish_pods
from stroute.client import ClientDriver
from stroute.config import Config
from stroute.invalidation import CHANNEL

ROOT = Path(__file__).resolve().parent.parent  # where the mover process finds this package
NS = "default"
PODS = 3
MOVE_TTL_MS = 300_000


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


@contextmanager
def _quiet() -> Iterator[None]:
    """The benchmark suspends channels on purpose: keep their warnings out of the table."""
    logger = logging.getLogger("stroute.invalidation")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _gateway(config: Config, **kwargs: Any) -> ClientDriver:
    driver = ClientDriver(config, **kwargs)
    if driver.source is not None and not driver.wait_coherent(10):
        driver.close()
        raise RuntimeError("the gateway's invalidation channel was not confirmed within 10 s")
    return driver


def _heard_since(drivers: list[ClientDriver], since: float, timeout: float = 5.0) -> None:
    """Wait until every driver's listener had a PING sent after `since` answered:
    every invalidation Redis sent before that PING has then been handled."""
    deadline = time.monotonic() + timeout
    for driver in drivers:
        for listener in driver.source.listeners():
            while listener.trusted_until - driver.source.bound <= since:
                if time.monotonic() > deadline:
                    raise RuntimeError("an invalidation listener did not answer a PING in time")
                time.sleep(0.005)


# --- invalidation latency and stale answers -----------------------------------------


def move_links(url: str, namespace: str, service: str, ttl_ms: int) -> None:
    """The other process: for each line "uid pod" on stdin, move the link as
    `stroute link set` does, and print "sent completed": time.monotonic when
    the write was sent and when its reply came."""
    store = Config().with_overrides(**{"redis.url": url}).open_store()
    try:
        store.ping()
        print("ready", flush=True)
        for line in sys.stdin:
            uid, pod = line.split()
            sent = time.monotonic()
            store.set(namespace, uid, service, int(pod), ttl_ms)
            print(f"{sent!r} {time.monotonic()!r}", flush=True)
    finally:
        store.close()


class _Arrivals:
    """Between a listener and its driver: when the first invalidation of each link arrived."""

    def __init__(self, driver: ClientDriver) -> None:
        self.sink = driver.source.sink
        self.first: dict[str, float] = {}
        self._keys = driver.store.keys(NS)
        driver.source.sink = self

    def keys_changed(self, keys: list[str]) -> None:
        now = time.monotonic()
        for key in keys:
            link = self._keys.parse_link(key)
            if link is not None:
                self.first.setdefault(link[0], now)
        self.sink.keys_changed(keys)

    def flushed(self) -> None:
        self.sink.flushed()


class _Follow:
    """The gateway's side of the invalidation figure: asks for each user the
    mover process moves until the answer names the new pod, and keeps asking
    for every user moved before, which must never name its old pod again."""

    def __init__(self, gateway: ClientDriver, mover: subprocess.Popen, bound: float) -> None:
        self.gateway = gateway
        self.mover = mover
        self.bound = bound
        self.within = 0  # answers naming the old pod, asked after the move completed but within the bound
        self.stale = 0  # ... asked later than the move's completion plus the bound
        self.after_bound = 0  # answers about a moved user asked later than its move's completion plus the bound
        self.unexpected = 0  # answers naming neither pod
        self.lost = 0  # moves the gateway had not seen within 5 s
        self.moved: dict[str, tuple[int, int, float]] = {}  # uid -> (old, new, completed)
        self._order: list[str] = []
        self._cursor = 0

    def move(self, uid: str, pause: float) -> tuple[float, float]:
        """Have the mover move uid; ms from the write's reply, and from its
        sending, to the first answer naming the new pod (when none did within
        5 s: to the last answer, a lower bound). `pause`: seconds between two
        answers (0: a tight loop)."""
        gateway = self.gateway
        # The measurement starts from a cached link (a suspended channel would make every read go to Redis).
        deadline = time.monotonic() + 5
        while gateway.place(uid, SERVICE).source != "cache":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{uid} was not served from the cache within 5 s")
            gateway.wait_coherent(5)
        old = gateway.compute_linked_pod(NS, uid, SERVICE)
        new = (old + 1) % PODS
        self.mover.stdin.write(f"{uid} {new}\n")
        self.mover.stdin.flush()
        asked_old: list[float] = []
        seen = False
        give_up = time.monotonic() + 5
        while True:
            asked = time.monotonic()
            pod = gateway.compute_linked_pod(NS, uid, SERVICE)
            answered = time.monotonic()
            if pod == new:
                seen = True
                break
            if pod == old:
                asked_old.append(asked)
            else:
                self.unexpected += 1
            if answered > give_up:
                break
            if self._order:
                self.check_one()
            if pause:
                time.sleep(pause)
        reply = self.mover.stdout.readline()
        if not reply:
            raise RuntimeError(f"the mover process exited (status {self.mover.wait()})")
        sent, completed = map(float, reply.split())
        for asked in asked_old:
            if asked >= completed + self.bound:
                self.stale += 1
            elif asked >= completed:
                self.within += 1
        self.moved[uid] = (old, new, completed)
        self._order.append(uid)
        if not seen:
            self.lost += 1
        return (answered - completed) * 1000, (answered - sent) * 1000

    def check_one(self) -> None:
        """Ask for one user moved earlier, in turn."""
        uid = self._order[self._cursor % len(self._order)]
        self._cursor += 1
        old, new, completed = self.moved[uid]
        asked = time.monotonic()
        pod = self.gateway.compute_linked_pod(NS, uid, SERVICE)
        late = asked >= completed + self.bound
        self.after_bound += late
        if pod == old:
            if late:
                self.stale += 1
            else:
                self.within += 1
        elif pod != new:
            self.unexpected += 1


def invalidation(h: Harness) -> Figure:
    moves = 300 if h.quick else 1000
    publish_pods(h, PODS)
    config = h.config()
    bound = config.links.coherence_bound
    gateway = _gateway(config)
    tight_users = [f"m{i}" for i in range(moves)]
    paused_users = [f"q{i}" for i in range(moves)]
    for uid in tight_users + paused_users:
        gateway.place(uid, SERVICE)
    code = f"from benchmarks.coherence import move_links; move_links({h.url!r}, {NS!r}, {SERVICE!r}, {MOVE_TTL_MS})"
    mover = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, bufsize=1)
    follow = _Follow(gateway, mover, bound)
    arrivals = _Arrivals(gateway)
    try:
        if mover.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the mover process did not start (status {mover.wait()})")
        tight = [follow.move(uid, 0) for uid in tight_users]
        # A gateway thread that waits on I/O between requests (as a server
        # does) leaves the listener thread the interpreter at once; a tight
        # loop makes it wait for Python's switch interval.
        paused = [follow.move(uid, 0.0005) for uid in paused_users]
        # Go on asking for every moved user until the last move is older than the bound.
        tail_end = time.monotonic() + bound + 0.25
        while time.monotonic() < tail_end:
            follow.check_one()
    finally:
        try:
            mover.stdin.close()  # the mover's end of input: it exits
        except OSError:  # it is gone already; its error is on stderr
            pass
        try:
            mover.wait(10)
        except subprocess.TimeoutExpired:
            mover.kill()
            mover.wait()
        mover.stdout.close()
        gateway.close()

    f = Figure()
    completed = {uid: follow.moved[uid][2] for uid in tight_users}
    handled = [(arrivals.first[uid] - completed[uid]) * 1000 for uid in tight_users if uid in arrivals.first]
    latencies = [done for done, _ in tight]
    p50, p99 = statistics.median(latencies), _percentile(latencies, 99)
    sent_p99 = _percentile([sent for _, sent in tight], 99)
    paused_ms = [done for done, _ in paused]
    lost = f"; {follow.lost} moves not seen within 5 s (counted as 5 s)" if follow.lost else ""
    f.add("invalidation_p99_ms", round(p99, 2), "<= 50",
          f"p50 {p50:.2f} ms, max {max(latencies):.2f} ms over {len(latencies)} moves by another process, from the "
          f"write's reply to the gateway's first answer naming the new pod (from the write's sending: p99 "
          f"{sent_p99:.2f} ms); the gateway asks in a tight loop, cache hits until the invalidation lands "
          f"(its listener thread had it at p50 {statistics.median(handled):.2f}, p99 {_percentile(handled, 99):.2f} ms); "
          f"pausing 0.5 ms between answers: p50 {statistics.median(paused_ms):.2f}, p99 "
          f"{_percentile(paused_ms, 99):.2f} ms over {len(paused_ms)} more moves{lost}")
    f.values["invalidation_p50_ms"] = round(p50, 2)
    f.values["invalidation_paused_p50_ms"] = round(statistics.median(paused_ms), 2)
    f.values["invalidation_paused_p99_ms"] = round(_percentile(paused_ms, 99), 2)
    f.values["invalidation_moves_not_seen"] = follow.lost
    unexpected = f"; {follow.unexpected} named neither pod" if follow.unexpected else ""
    f.add("stale_answers", follow.stale, "0",
          f"answers naming the old pod asked later than the move plus the {bound:g} s bound, of "
          f"{follow.after_bound:,} answers about moved users asked that late; {follow.within:,} named it within "
          f"the bound (asked after the write's reply, before the invalidation landed: "
          f"{follow.within / (2 * moves):.1f} a move){unexpected}")
    f.values["stale_answers_within_bound"] = follow.within
    f.values["stale_answers_checked_after_bound"] = follow.after_bound
    return f


# --- what coherence costs a cache hit -------------------------------------------------------


def compute_warm(h: Harness) -> Figure:
    n = 2000
    repeat = 10
    rounds = 6 if h.quick else 12
    publish_pods(h, PODS)
    config = h.config()
    coherent = _gateway(config)
    local = _gateway(config, coherent=False)
    users = [f"w{i}" for i in range(n)]
    for uid in users:
        # The local driver first: a placement of an existing temporary link
        # refreshes its TTL, a write the coherent driver would be told of.
        local.place(uid, SERVICE)
        coherent.place(uid, SERVICE)
    misses = 0

    def hits_per_s(driver: ClientDriver) -> float:
        nonlocal misses
        before = driver.stats()["cache"]
        start = time.perf_counter()
        for _ in range(repeat):
            for uid in users:
                driver.compute_linked_pod(NS, uid, SERVICE)
        elapsed = time.perf_counter() - start
        misses += n * repeat - (driver.stats()["cache"] - before)
        return n * repeat / elapsed

    on, off = [], []
    try:
        for i in range(rounds):
            # Each goes first in every other pair, so whatever favours the first (or the second) of a pair cancels.
            if i % 2:
                off.append(hits_per_s(local))
                on.append(hits_per_s(coherent))
            else:
                on.append(hits_per_s(coherent))
                off.append(hits_per_s(local))
    finally:
        coherent.close()
        local.close()
    ratio = statistics.median(a / b for a, b in zip(on, off))
    f = Figure()
    f.add("compute_warm_ratio", round(ratio, 3), ">= 0.9",
          f"{statistics.median(on):,.0f}/s coherent vs {statistics.median(off):,.0f}/s with links.coherent off; "
          f"cache-hit compute_linked_pod of {n:,} users, median of {rounds} pairwise ratios of alternating rounds"
          f"{f'; {misses} lookups missed the cache' if misses else ''}")
    f.values["compute_warm_coherent_per_s"] = round(statistics.median(on))
    f.values["compute_warm_local_per_s"] = round(statistics.median(off))
    return f


def batch_get_coherent(h: Harness) -> Figure:
    """batch_get_linked_pod with coherence on and off: its reads are made on
    tracked connections, so Redis remembers every key it read for the gateway."""
    n = 20000 if h.quick else 100000
    rounds = 5 if h.quick else 7
    store = h.store()
    ks = store.keys(NS)
    uids = [f"u{i}" for i in range(n)]
    pipe = h.raw.pipeline(transaction=False)
    for i, uid in enumerate(uids):
        pipe.set(ks.link(uid, SERVICE), i % PODS)
    pipe.execute()
    store.close()
    config = h.config()
    coherent = _gateway(config)
    local = _gateway(config, coherent=False)

    def uids_per_s(driver: ClientDriver) -> float:
        start = time.perf_counter()
        driver.batch_get_linked_pod(NS, uids, SERVICE)
        return n / (time.perf_counter() - start)

    on, off = [], []
    try:
        for _ in range(rounds):
            on.append(uids_per_s(coherent))
            off.append(uids_per_s(local))
        tracked = h.raw.info("stats")["tracking_total_keys"]
    finally:
        coherent.close()
        local.close()
    ratio = statistics.median(a / b for a, b in zip(on, off))
    f = Figure()
    f.add("batch_get_coherent_ratio", round(ratio, 3), "report",
          f"{statistics.median(on):,.0f} uids/s coherent vs {statistics.median(off):,.0f}/s with links.coherent "
          f"off, batch_get_linked_pod of {n:,} uids, median of {rounds} pairwise ratios; Redis then tracked "
          f"{tracked:,} keys for the coherent gateway, which caches none of them")
    f.values["batch_get_tracked_keys"] = tracked
    return f


# --- invalidation messages per write ----------------------------------------------------


class _CountingSink:
    """Between a listener and its driver: counts each invalidation message Redis
    sent the gateway (one Pub/Sub message on `__redis__:invalidate`)."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.messages = 0
        self.flushes = 0  # channel re-made, or FLUSHDB: none are expected here

    def keys_changed(self, keys: list[str]) -> None:
        self.messages += 1
        self.sink.keys_changed(keys)

    def flushed(self) -> None:
        self.flushes += 1
        self.sink.flushed()


class _Broadcast:
    """A client in broadcast mode (CLIENT TRACKING ... BCAST PREFIX), as a gateway
    would be if it tracked the namespace's link prefix: counts what Redis sends it."""

    def __init__(self, url: str, prefix: str) -> None:
        pool = redis.ConnectionPool.from_url(url)
        self._pool = pool
        self.sub = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
        self.sub.connect()
        self.sub.send_command("CLIENT", "ID")
        sub_id = int(self.sub.read_response())
        self.sub.send_command("SUBSCRIBE", CHANNEL)
        self.sub.read_response()
        self.tracker = pool.connection_class(**pool.connection_kwargs)
        self.tracker.connect()
        self.tracker.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", sub_id, "BCAST", "PREFIX", prefix)
        self.tracker.read_response()
        self.messages = 0

    def drain(self) -> None:
        """Count every message Redis sent before now (a PING's answer comes after them)."""
        self.sub.send_command("PING")
        while True:
            message = self.sub.read_response()
            kind = message[0].decode() if isinstance(message[0], bytes) else message[0]
            if kind == "pong":
                return
            if kind == "message":
                self.messages += 1

    def close(self) -> None:
        self.sub.disconnect()
        self.tracker.disconnect()
        self._pool.disconnect()


def invalidations_per_write(h: Harness) -> Figure:
    n = 200 if h.quick else 1000
    gateways_n = 4
    publish_pods(h, PODS)
    config = h.config()
    writer = h.store()  # the other writer: the CLI, another service, redis-cli
    ks = writer.keys(NS)
    gateways = [_gateway(config) for _ in range(gateways_n)]
    sinks = []
    for gateway in gateways:
        sink = _CountingSink(gateway.source.sink)
        gateway.source.sink = sink
        sinks.append(sink)
    prefix = ks.link("", "")[: -len("}")]  # every link key of the namespace starts with it
    broadcast = [_Broadcast(h.url, prefix) for _ in range(gateways_n)]

    all_read = [f"a{i}" for i in range(n)]  # every gateway has them cached
    one_read = [f"o{i}" for i in range(n)]  # gateway 0 alone has them cached
    none_read = [f"x{i}" for i in range(n)]  # no gateway has read them
    batch_read = [f"b{i}" for i in range(n)]  # gateway 0 read them in a batch, which it does not cache
    for uid in all_read + one_read + none_read + batch_read:
        writer.set(NS, uid, SERVICE, 0, MOVE_TTL_MS)
    # Reads that write nothing: a placement of an existing temporary link
    # refreshes its TTL, a write the other gateways would be told of.
    for gateway in gateways:
        for uid in all_read:
            gateway.get_linked_pod(NS, uid, SERVICE)
    for uid in one_read:
        gateways[0].get_linked_pod(NS, uid, SERVICE)
    gateways[0].batch_get_linked_pod(NS, batch_read, SERVICE)

    def phase(write) -> tuple[list[int], int]:
        """Messages each gateway received, and all broadcast clients together, for the writes `write` makes."""
        _heard_since(gateways, time.monotonic())
        for client in broadcast:
            client.drain()
        before = [sink.messages for sink in sinks]
        broadcast_before = sum(client.messages for client in broadcast)
        write()
        _heard_since(gateways, time.monotonic())
        for client in broadcast:
            client.drain()
        received = [sink.messages - count for sink, count in zip(sinks, before)]
        return received, sum(client.messages for client in broadcast) - broadcast_before

    def move(uids: list[str], pod: int):
        return lambda: [writer.set(NS, uid, SERVICE, pod, MOVE_TTL_MS) for uid in uids]

    def placements():
        for uid in all_read:
            gateways[0].cache_expired(NS, uid, SERVICE)  # as if its entry had aged out
            gateways[0].compute_linked_pod(NS, uid, SERVICE)

    results = {}
    try:
        results["cached_by_all"] = phase(move(all_read, 1))
        results["cached_by_all_again"] = phase(move(all_read, 2))  # no gateway read them since
        results["cached_by_one"] = phase(move(one_read, 1))
        results["not_cached"] = phase(move(none_read, 1))
        results["batch_read"] = phase(move(batch_read, 1))
        # A placement that misses the cache slides an existing temporary link's
        # TTL only once less than half is left: here (a fresh link) it writes
        # nothing, so the other gateways that cached it are told nothing.
        for gateway in gateways:
            for uid in all_read:
                gateway.get_linked_pod(NS, uid, SERVICE)
        results["placement_on_gateway_0"] = phase(placements)
        flushes = sum(sink.flushes for sink in sinks)
    finally:
        for gateway in gateways:
            gateway.close()
        for b in broadcast:
            b.close()
        writer.close()

    # Messages per write: to each gateway, and to all 4 broadcast clients together.
    per = {key: ([m / n for m in got], sent / n) for key, (got, sent) in results.items()}
    value = {
        "cached": round(statistics.mean(per["cached_by_all"][0]), 3),
        "not_cached": round(statistics.mean(per["not_cached"][0]), 3),
        "all_gateways_cached_by_all": round(sum(per["cached_by_all"][0]), 3),
        "all_gateways_cached_by_one": round(sum(per["cached_by_one"][0]), 3),
        "all_gateways_not_cached": round(sum(per["not_cached"][0]), 3),
        "all_gateways_batch_read_by_gateway_0": round(sum(per["batch_read"][0]), 3),
        "all_gateways_written_again_unread": round(sum(per["cached_by_all_again"][0]), 3),
        "all_gateways_placement_on_gateway_0": round(sum(per["placement_on_gateway_0"][0]), 3),
        "broadcast_cached": round(per["cached_by_all"][1], 3),
        "broadcast_not_cached": round(per["not_cached"][1], 3),
    }

    def shown(key: str) -> str:
        return "/".join(f"{x:.2f}" for x in per[key][0])

    f = Figure()
    f.values["invalidations_per_write"] = value
    f.rows.append((
        "invalidations_per_write", f"{value['cached']:.2f} / {value['not_cached']:.2f}", "report",
        f"messages a gateway receives per link write made elsewhere, to a user it cached / did not cache; "
        f"4 gateways, {n:,} writes a kind; per gateway 0/1/2/3: cached by all {shown('cached_by_all')}, "
        f"by gateway 0 only {shown('cached_by_one')}, by none {shown('not_cached')}, read (not cached) by "
        f"gateway 0's batch_get_linked_pod {shown('batch_read')}, written again before "
        f"any gateway read it back {shown('cached_by_all_again')}, a placement on gateway 0 that missed its "
        f"cache (no TTL slide: more than half is left) {shown('placement_on_gateway_0')}; broadcast mode on the link "
        f"prefix, 4 clients: {value['broadcast_cached']:.2f} / {value['broadcast_not_cached']:.2f} per write "
        f"in all{f'; {flushes} cache flushes during the run' if flushes else ''}",
    ))
    return f


def shared_users(h: Harness) -> Figure:
    """The same temporary users asked of 4 gateways in turn (a load balancer
    without affinity): the share of answers served from the cache."""
    n = 300 if h.quick else 1000
    rounds = 3 if h.quick else 5
    publish_pods(h, PODS)
    config = h.config()
    shares = {}
    for coherent in (True, False):
        gateways = [_gateway(config, coherent=coherent) for _ in range(4)]
        try:
            users = [f"{'c' if coherent else 'l'}{i}" for i in range(n)]
            for _ in range(rounds):
                for uid in users:
                    for gateway in gateways:
                        gateway.compute_linked_pod(NS, uid, SERVICE)
            hits = sum(g.stats()["cache"] for g in gateways)
        finally:
            for gateway in gateways:
                gateway.close()
        shares[coherent] = hits / (n * rounds * len(gateways))
    f = Figure()
    f.add("shared_users_cache_hits", round(shares[True], 3), "report",
          f"share of cache hits when {n} temporary users are asked of 4 coherent gateways in turn, {rounds} rounds, "
          f"vs {shares[False]:.3f} with links.coherent off (a lookup that misses the cache slides the link's TTL, "
          f"a write the other gateways are told of, only once less than half the TTL is left)")
    f.values["shared_users_cache_hits_local"] = round(shares[False], 3)
    return f


# --- reconnection after CLIENT KILL ----------------------------------------------------------


def _kill_and_wait(raw: redis.Redis, driver: ClientDriver, timeout: float = 10.0) -> tuple[float, float]:
    """Kill the driver's invalidation connection; ms until the driver stopped
    trusting its cache, and ms until it trusts it again on a new connection."""
    listener = driver.source.listeners()[0]
    killed_id = listener.client_id
    start = time.monotonic()
    raw.execute_command("CLIENT", "KILL", "ID", killed_id)
    suspended = None
    deadline = start + timeout
    while True:
        state = driver.cache_state()
        now = time.monotonic()
        if suspended is None and state != "coherent":
            suspended = now
        if state == "coherent" and listener.client_id not in (None, killed_id):
            return ((suspended or now) - start) * 1000, (now - start) * 1000
        if now > deadline:
            raise RuntimeError(f"the invalidation channel was not re-established within {timeout:g} s")
        time.sleep(0.0005)  # a poll that leaves the listener thread the interpreter


def tracking_reconnect(h: Harness) -> Figure:
    kills = 10 if h.quick else 20
    fresh = 5 if h.quick else 10
    publish_pods(h, PODS)
    config = h.config()
    same: list[tuple[float, float]] = []
    first: list[float] = []
    with _quiet():
        driver = _gateway(config)
        try:
            driver.place("r0", SERVICE)
            for _ in range(kills):
                same.append(_kill_and_wait(h.raw, driver))
            # The cache is used again: a placement is read once, then served from the cache.
            driver.place("r0", SERVICE)
            reused = driver.place("r0", SERVICE).source == "cache"
        finally:
            driver.close()
        for _ in range(fresh):
            with _gateway(config) as other:
                first.append(_kill_and_wait(h.raw, other)[1])
    trusted = [t for _, t in same]
    detected = [d for d, _ in same]
    p50 = statistics.median(trusted)
    f = Figure()
    f.add("tracking_reconnect_ms", round(p50, 1), "report",
          f"p50 of {kills} CLIENT KILLs of one gateway's invalidation connection, until its cache is trusted "
          f"again on a new one (in turn: {' '.join(f'{t:.0f}' for t in trusted)} ms); the first kill of "
          f"{fresh} new gateways: p50 {statistics.median(first):.0f} ms; suspended after p50 "
          f"{statistics.median(detected):.1f} ms; cached answers served again afterwards: {'yes' if reused else 'NO'}")
    f.values["tracking_reconnect_first_kill_ms"] = round(statistics.median(first), 1)
    f.values["tracking_suspended_ms"] = round(statistics.median(detected), 2)
    return f
