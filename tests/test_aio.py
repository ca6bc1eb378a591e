"""AsyncClientDriver on memory://, a real redis-server and a real Cluster:
the sync driver's decisions, over automatic pipelining."""

from __future__ import annotations

import asyncio
import time

import pytest

from stroute.aio import AsyncClientDriver
from stroute.client import ClientDriver
from stroute.errors import CorruptData, InvalidInput, NoAvailablePod
from stroute.store import Store
from support import CommandCounter, PlacingLoad, put_state, wait_until

pytestmark = pytest.mark.usefixtures("event_loop_kind")  # asyncio's loop and uvloop


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture
def config(config):
    """Pods stay alive through a test that places thousands of users on fakeredis."""
    return config.with_overrides(**{"state.expire": 60, "state.refresh": 1})


@pytest.fixture
def pods(store):
    for pod in range(4):
        put_state(store.client, "game", pod, load=10)
    return store


def test_concurrent_placements_agree_and_are_cached(config, pods):
    async def main():
        async with AsyncClientDriver(config) as driver:
            await driver.wait_coherent()
            uids = [f"u{i % 200}" for i in range(2000)]
            got = await asyncio.gather(*(driver.compute_linked_pod("default", uid, "game") for uid in uids))
            chosen: dict[str, set[int]] = {}
            for uid, pod in zip(uids, got):
                chosen.setdefault(uid, set()).add(pod)
            assert all(len(p) == 1 for p in chosen.values())
            assert {pods.get("default", uid, "game").pod for uid in chosen} <= set(range(4))
            assert all(pods.get("default", uid, "game").pod == p.pop() for uid, p in chosen.items())
            again = await driver.place("u7", "game")
            stats = driver.stats()
            return again, stats

    again, stats = run(main())
    assert again.source == "cache"
    assert stats["new"] == 200 and stats["new"] + stats["existing"] + stats["cache"] == 2001


def test_the_driver_runs_on_the_event_loop_of_each_variant(event_loop_kind, config, pods):
    async def main():
        async with AsyncClientDriver(config) as driver:
            placed = await driver.place("looped", "game")
            return type(asyncio.get_running_loop()).__module__, placed.pod

    module, pod = run(main())
    assert module.split(".")[0] == event_loop_kind  # asyncio.unix_events or uvloop
    assert pods.get("default", "looped", "game").pod == pod


def test_a_link_changed_elsewhere_reaches_the_async_cache(config, pods):
    async def main():
        async with AsyncClientDriver(config) as driver:
            assert await driver.wait_coherent()
            first = await driver.compute_linked_pod("default", "moving", "game")
            assert (await driver.place("moving", "game")).source == "cache"
            other = (first + 1) % 4
            pods.set("default", "moving", "game", other)  # an operator's `link set`

            async def moved():
                return await driver.get_linked_pod("default", "moving", "game") == other

            deadline = asyncio.get_running_loop().time() + 5
            while not await moved():
                assert asyncio.get_running_loop().time() < deadline, "the cache kept the old pod"
                await asyncio.sleep(0.005)
            return driver.stats()["invalidations"]

    assert run(main()) >= 1


def test_one_corrupt_link_fails_its_own_placement_only(config, pods):
    pods.client.hset(pods.keys("default").link("broken", "game"), "x", "1")

    async def main():
        async with AsyncClientDriver(config) as driver:
            return await asyncio.gather(
                driver.place("fine-1", "game"), driver.place("broken", "game"), driver.place("fine-2", "game"),
                return_exceptions=True)

    first, broken, second = run(main())
    assert first.source == second.source == "new"
    assert isinstance(broken, CorruptData) and "broken" in str(broken)


def test_bad_input_and_no_pod_are_the_sync_drivers_errors(config, store):
    async def main():
        async with AsyncClientDriver(config) as driver:
            with pytest.raises(InvalidInput, match="uid"):
                await driver.place("bad{uid", "game")
            with pytest.raises(NoAvailablePod, match="no available pod"):
                await driver.place("u", "nobody-runs-this")
            return driver.stats()

    assert run(main())["no_capacity"] == 1


def test_cancelled_placements_leave_the_driver_working(config, pods):
    async def main():
        async with AsyncClientDriver(config) as driver:
            await driver.snapshot("game")
            tasks = [asyncio.ensure_future(driver.place(f"c{i}", "game")) for i in range(200)]
            await asyncio.sleep(0)  # they start and queue their commands
            for task in tasks[::2]:
                task.cancel()
            kept = await asyncio.gather(*tasks[1::2])
            after = await asyncio.gather(*(driver.place(f"d{i}", "game") for i in range(50)))
            return kept, after

    kept, after = run(main())
    assert all(p.pod in range(4) for p in kept + after)
    assert all(pods.get("default", p.uid, "game").pod == p.pod for p in kept + after)


@pytest.mark.realserver
def test_a_new_user_costs_one_command_when_concurrent(real_url, redis_server):
    from stroute.config import Config

    raw = redis_server.client()
    for pod in range(4):
        put_state(raw, "game", pod, load=10)
    counter = CommandCounter(raw)
    config = Config().with_overrides(**{"redis.url": real_url, "state.expire": 60})

    async def main():
        async with AsyncClientDriver(config) as driver:
            await driver.wait_coherent()
            await driver.place("warm", "game")
            counter.reset()
            await asyncio.gather(*(driver.place(f"n{i}", "game") for i in range(1000)))
            return driver.store.pipeline.writes

    writes = run(main())
    counts = counter.counts()
    # The scripts' own commands (GET, SET, PTTL, TIME, HGETALL, ZADD...) are
    # counted by Redis too; a closing driver leaves the gateways (ZREM).
    inside = {"get", "set", "pttl", "time", "hgetall", "zadd", "zremrangebyscore", "zcard", "hello",
              "client|setname", "client|setinfo", "zrem"}
    sent = sum(v for k, v in counts.items() if k not in inside)
    assert counts["evalsha"] == 1000
    assert sent <= 1000 * 1.05, counts
    assert writes < 20


def test_sync_and_async_drivers_agree(real_url, redis_server):
    """The same operations through both drivers (a deterministic strategy),
    on two databases of one server: the same answers, the same data."""
    import random

    from stroute.config import Config
    from test_differential import data

    base = {"state.refresh": 0, "placement.strategy": "hash", "links.coherent": False}
    sync_cfg = Config().with_overrides(**{"redis.url": real_url, **base})
    async_url = real_url.rsplit("/", 1)[0] + "/1"
    async_cfg = Config().with_overrides(**{"redis.url": async_url, **base})
    stores = [Store.from_url(real_url), Store.from_url(async_url)]
    for s in stores:
        s.client.flushdb()
        for pod in range(3):
            put_state(s.client, "game", pod, load=pod)
        s.set("default", "pinned", "game", 9)  # a persistent link to a pod that is not alive
        s.set_tag("default", "lobby", "game")

    rng = random.Random(7)
    uids = [f"u{i}" for i in range(30)] + ["pinned", "bad{uid"]
    ops = []
    for _ in range(300):
        uid = rng.choice(uids)
        ops.append(rng.choice([
            ("compute_linked_pod", ("default", uid, "game"), {}),
            ("place", (uid, "game"), {"persist": rng.random() < 0.2}),
            ("get_linked_pod", ("default", uid, "game"), {}),
            ("get_linked_pod_not_cache", ("default", uid, "game"), {}),
            ("links_of", ("default", uid), {}),
            ("set_linked_pod_if_absent", ("default", uid, "game", rng.randrange(3)), {}),
            ("batch_get_linked_pod", ("default", rng.sample(uids[:30], 5), "game"), {}),
            ("place_many", (rng.sample(uids, 4), "game"), {}),
            ("get_link_service", ("default", uid), {}),
            ("resolve_tag", ("default", "lobby"), {}),
            ("cache_expired", ("default", uid, "game"), {}),
        ]))

    def shape(value):
        if isinstance(value, Exception):
            return type(value).__name__, str(value).replace(async_url, "<url>").replace(real_url, "<url>")
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if hasattr(value, "ttl_ms"):
            return value.__class__(**{**{f: getattr(value, f) for f in value.__dataclass_fields__}, "ttl_ms": None})
        return value

    sync = ClientDriver(sync_cfg)
    expected = []
    for name, args, kwargs in ops:
        try:
            expected.append(shape(getattr(sync, name)(*args, **kwargs)))
        except Exception as exc:
            expected.append(shape(exc))
    sync.close()

    async def main():
        got = []
        async with AsyncClientDriver(async_cfg) as driver:
            for name, args, kwargs in ops:
                method = getattr(driver, name)
                try:
                    result = method(*args, **kwargs)
                    got.append(shape(await result if asyncio.iscoroutine(result) else result))
                except Exception as exc:
                    got.append(shape(exc))
        return got

    got = run(main())
    for i, (e, g) in enumerate(zip(expected, got)):
        assert g == e, f"op {i} {ops[i]}: sync {e}, async {g}"
    strip = lambda d: {k: v for k, v in d.items() if not k.endswith(":gateways")}  # noqa: E731 (ids differ)
    assert strip(data(stores[1].client)) == strip(data(stores[0].client))
    for s in stores:
        s.close()


@pytest.mark.realserver
def test_placements_go_on_through_a_redis_restart(tmp_path):
    """Under load, a restart fails the calls in flight with RedisUnavailable
    (never a hang, never a wrong answer); once Redis is back, and its pods
    have published again, every placement succeeds."""
    from stroute.config import Config
    from stroute.errors import RedisUnavailable
    from stroute.testing import RedisServer

    server = RedisServer().start()
    raw = server.client()
    config = Config().with_overrides(**{"redis.url": server.url, "state.expire": 60, "state.refresh": 0.2,
                                        "redis.socket_timeout": 2})

    def publish():
        for pod in range(3):
            put_state(raw, "game", pod, load=10)

    publish()
    outcomes: list[object] = []

    async def main():
        async with AsyncClientDriver(config) as driver:
            load = PlacingLoad(driver, "game")
            try:
                await load.until(lambda: len(load.outcomes) > 500, "placements before the restart")
                server.restart()
                publish()
                since = time.monotonic()
                await load.until(lambda: load.placed_since(since) > 500, "placements after the restart")
            finally:
                await load.stop()
                outcomes.extend(pod for _, _, pod in load.outcomes)

    try:
        run(main())
    finally:
        raw.close()
        server.close()
    errors = [o for o in outcomes if not isinstance(o, int)]
    assert all(isinstance(e, (RedisUnavailable, NoAvailablePod)) for e in errors)
    assert all(o in (0, 1, 2) for o in outcomes if isinstance(o, int))


@pytest.mark.realserver
def test_a_due_view_is_reread_once_not_once_per_caller(real_url, redis_server, monkeypatch):
    """With state.refresh at 50 ms, 200 coroutines placing users one after
    another find the pods' view due again and again. One of them re-reads it;
    the others keep the view they have until the answer is in, instead of
    each sending the same read and decoding the same answer."""
    from stroute import clientcore
    from stroute.config import Config

    raw = redis_server.client()
    for pod in range(4):
        put_state(raw, "game", pod, load=10)
    reads = []
    real_snapshot = clientcore.domain.snapshot

    def counted(*args, **kwargs):
        reads.append(1)
        return (yield from real_snapshot(*args, **kwargs))

    monkeypatch.setattr(clientcore.domain, "snapshot", counted)
    config = Config().with_overrides(**{"redis.url": real_url, "state.expire": 60, "state.refresh": 0.05})

    async def main():
        async with AsyncClientDriver(config, coherent=False) as driver:
            await driver.place("warm", "game")

            async def worker(w):
                for j in range(20):
                    await driver.place(f"r{w}-{j}", "game")

            began = time.monotonic()
            await asyncio.gather(*(worker(w) for w in range(200)))
            return time.monotonic() - began

    elapsed = run(main())
    raw.close()
    due = elapsed / 0.05 + 2  # times the view fell due, and the first read
    assert len(reads) <= 2 * due, f"{len(reads)} reads in {elapsed:.2f} s (due {due:.0f} times)"
