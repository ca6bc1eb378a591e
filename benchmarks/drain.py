"""Drain: how fast `pod drain --migrate` moves links, against the bare script."""

from __future__ import annotations

import time

from benchmarks.harness import SERVICE, Figure, Harness, paired
from benchmarks.harness import publish_pods as _publish_pods
from stroute.operations import BATCH, Drain
from stroute.store import script_source

_FROM = 1  # the pod drained; 0 and 2 take its links


def _populate(h: Harness, n: int) -> None:
    h.reset()
    _publish_pods(h, 3)
    store = h.store()
    ks = store.keys("default")
    pipe = h.raw.pipeline(transaction=False)
    for i in range(n):
        pipe.set(ks.link(f"d{i}", SERVICE), _FROM, px=3_600_000)
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    store.close()


def drain(h: Harness) -> Figure:
    n = 20_000 if h.quick else 100_000
    rounds = 1 if h.quick else 3
    # Clients see a cordon within state.refresh: 0 keeps the drain's settle wait at 0.5 s.
    config = h.config(**{"state.refresh": 0})
    sha = h.raw.script_load(script_source("link_move"))
    whole: list[float] = []

    def ours(_: int) -> float:
        _populate(h, n)
        store = config.open_store()
        marks: dict[str, float] = {}

        def progress(p) -> None:
            if p.phase == "migrate":
                marks.setdefault("first", time.perf_counter())  # after the scan, before the first move
                if p.moved >= n:
                    marks.setdefault("last", time.perf_counter())

        started = time.perf_counter()
        report = Drain(store, config, SERVICE, _FROM, migrate=True, on_progress=progress).run()
        whole.append(time.perf_counter() - started)
        store.close()
        if report.moved != n or "last" not in marks:
            raise RuntimeError(f"the drain moved {report.moved} of {n} links")
        return n / (marks["last"] - marks["first"])

    def baseline(_: int) -> float:
        # The barest pipelined EVALSHA: commands built beforehand, sent and read
        # on the same hiredis-packed connection the store uses (faster than a
        # redis-py pipeline), nothing parsed.
        _populate(h, n)
        store = config.open_store()
        ks = store.keys("default")
        commands = [("EVALSHA", sha, 2, ks.link(f"d{i}", SERVICE), ks.index(f"d{i}"), SERVICE, _FROM, 2 - 2 * (i % 2))
                    for i in range(n)]
        start = time.perf_counter()
        for first in range(0, n, BATCH):
            store._direct.pipeline(commands[first:first + BATCH])
        elapsed = time.perf_counter() - start
        store.close()
        return n / elapsed

    ours_rate, bare_rate = paired(ours, baseline, rounds)
    f = Figure()
    f.add("drain_moves_per_s", round(ours_rate), "report",
          f"{n:,} temporary links, no --rate, over the migrate pass (the whole drain, with its scans "
          f"and 0.5 s settle wait, took {min(whole):.1f} s)")
    f.add("drain_moves_ratio", round(ours_rate / bare_rate, 3), ">= 0.3",
          f"{ours_rate:,.0f}/s drain vs {bare_rate:,.0f}/s bare pipelined EVALSHA of link_move "
          f"({BATCH} per pipeline, on the store's own connection)")
    return f
