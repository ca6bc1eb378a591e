"""The asyncio driver's figures: automatic pipelining against hand-batched
redis.asyncio pipelines, the sync driver, and a bare EVALSHA."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import redis.asyncio as aredis

from benchmarks.harness import SERVICE, Figure, Harness, publish_pods
from stroute.aio import AsyncClientDriver
from stroute.client import ClientDriver
from stroute.store import script_source

CONCURRENCY = 1000


def async_place(h: Harness) -> Figure:
    n = 20_000 if h.quick else 100_000
    single = 2_000 if h.quick else 10_000
    rounds = 3
    publish_pods(h, 10)
    sha = h.raw.script_load(script_source("link_set_if_absent"))
    ks = ClientDriver(h.config(), coherent=False).store.keys("default")
    # CPU seconds per placement, the client process's and Redis's (INFO cpu),
    # of the concurrent driver and the hand-batched pipelines: with both on
    # one shared machine, their sum bounds what any pipelined client reaches.
    cpu: dict[str, list[tuple[float, float]]] = {"ours": [], "bare": []}

    def redis_cpu() -> float:
        info = h.raw.info("cpu")
        return info["used_cpu_user"] + info["used_cpu_sys"]

    def costs(kind: str, began: tuple[float, float]) -> None:
        client, server = began
        cpu[kind].append(((time.process_time() - client) / n, (redis_cpu() - server) / n))

    async def bare_pipelined(tag: str) -> float:
        """redis.asyncio, one pipeline of EVALSHA per 1,000 users, batched by hand."""
        client = aredis.Redis.from_url(h.url)
        spent = time.process_time(), redis_cpu()
        began = time.perf_counter()
        for start in range(0, n, CONCURRENCY):
            pipe = client.pipeline(transaction=False)
            for j in range(start, start + CONCURRENCY):
                uid = f"{tag}{j}"
                pipe.evalsha(sha, 2, ks.link(uid, SERVICE), ks.index(uid), SERVICE, j % 10, 300000)
            await pipe.execute()
        rate = n / (time.perf_counter() - began)
        costs("bare", spent)
        await client.aclose()
        return rate

    async def ours_concurrent(tag: str) -> float:
        """1,000 coroutines on one loop and one connection, each placing new users."""
        driver = AsyncClientDriver(h.config())
        await driver.wait_coherent()
        await driver.snapshot(SERVICE)
        per = n // CONCURRENCY

        async def worker(w: int) -> None:
            for j in range(per):
                await driver.place(f"{tag}{w}-{j}", SERVICE)

        spent = time.process_time(), redis_cpu()
        began = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
        rate = n / (time.perf_counter() - began)
        costs("ours", spent)
        await driver.close()
        return rate

    def sync_driver(tag: str) -> float:
        driver = ClientDriver(h.config())
        driver.wait_coherent()
        driver.snapshot(SERVICE)
        count = n // 10
        began = time.perf_counter()
        for j in range(count):
            driver.place(f"{tag}{j}", SERVICE)
        rate = count / (time.perf_counter() - began)
        driver.close()
        return rate

    async def latencies(tag: str) -> tuple[float, float]:
        """Mean seconds of one placement at a time: the driver, then a bare EVALSHA."""
        driver = AsyncClientDriver(h.config())
        await driver.wait_coherent()
        await driver.snapshot(SERVICE)
        client = aredis.Redis.from_url(h.url)
        await client.evalsha(sha, 2, ks.link("warm", SERVICE), ks.index("warm"), SERVICE, 1, 300000)
        began = time.perf_counter()
        for j in range(single):
            await driver.place(f"{tag}d{j}", SERVICE)
        ours = (time.perf_counter() - began) / single
        began = time.perf_counter()
        for j in range(single):
            uid = f"{tag}b{j}"
            await client.evalsha(sha, 2, ks.link(uid, SERVICE), ks.index(uid), SERVICE, j % 10, 300000)
        bare = (time.perf_counter() - began) / single
        await driver.close()
        await client.aclose()
        return ours, bare

    ours, bare, sync, lat_ours, lat_bare = [], [], [], [], []
    for i in range(rounds):  # taken in turn, so drift on a shared machine hits each alike
        ours.append(asyncio.run(ours_concurrent(f"a{i}-")))
        bare.append(asyncio.run(bare_pipelined(f"p{i}-")))
        sync.append(sync_driver(f"s{i}-"))
        mine, theirs = asyncio.run(latencies(f"l{i}-"))
        lat_ours.append(mine)
        lat_bare.append(theirs)
        h.reset()
        publish_pods(h, 10)
        h.raw.script_load(script_source("link_set_if_absent"))

    async def counted() -> None:
        driver = AsyncClientDriver(h.config())
        await driver.wait_coherent()
        await driver.snapshot(SERVICE)
        await asyncio.gather(*(driver.place(f"m{j}", SERVICE) for j in range(2_000)))
        await driver.close()

    # Setting up and closing the driver (its connections, the listener, the
    # gateway registration) is counted too: it is part of what it costs.
    commands = h.count_commands(lambda: asyncio.run(counted()))

    ours_rate, bare_rate, sync_rate = statistics.median(ours), statistics.median(bare), statistics.median(sync)
    lat_o, lat_b = statistics.median(lat_ours), statistics.median(lat_bare)
    f = Figure()
    f.add("async_place_ratio", round(ours_rate / bare_rate, 3), ">= 0.6",
          f"{ours_rate:,.0f}/s from {CONCURRENCY:,} coroutines vs {bare_rate:,.0f}/s redis.asyncio pipelines "
          f"of {CONCURRENCY:,} EVALSHA")
    f.add("async_vs_sync_place", round(ours_rate / sync_rate, 2), ">= 5",
          f"{ours_rate:,.0f}/s vs {sync_rate:,.0f}/s for the sync driver, one placement at a time")
    # What any asyncio client could gain here: the bare pipelines against the
    # sync driver. Where Redis shares the machine's cores with the client,
    # its own work per EVALSHA caps every pipelined rate.
    f.add("async_vs_sync_ceiling", round(bare_rate / sync_rate, 2), "report",
          "the hand-batched redis.asyncio pipelines over the sync driver, in the same run")
    (ours_client, ours_redis), (bare_client, bare_redis) = (
        tuple(statistics.median(c[i] for c in cpu[kind]) * 1e6 for i in (0, 1)) for kind in ("ours", "bare"))
    goal_rate = 5 * sync_rate
    f.add("async_place_cpu_us", round(ours_client + ours_redis, 1), "report",
          f"CPU us per placement: the driver's process {ours_client:.1f} + Redis {ours_redis:.1f}; the hand-batched "
          f"pipelines' {bare_client:.1f} + {bare_redis:.1f}. Five times the sync driver, {goal_rate:,.0f}/s, "
          f"leaves {1e6 / goal_rate:.1f} us per placement to each side, with both running in parallel throughout "
          f"on {os.cpu_count()} cores")
    f.add("async_single_latency_ratio", round(lat_o / lat_b, 3), "<= 1.3",
          f"{lat_o * 1e6:,.0f} us vs {lat_b * 1e6:,.0f} us for a bare redis.asyncio EVALSHA")
    f.add("async_commands_per_new_user", round(commands / 2_000, 3), "<= 1.05",
          f"{commands:,} commands for 2,000 concurrent new users (MONITOR), the driver's setup included")
    return f
