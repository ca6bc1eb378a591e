"""AsyncServerDriver: the sync server driver's lifecycle as a task, on
memory://, a real redis-server and a real Cluster."""

from __future__ import annotations

import asyncio
import time

import pytest

from stroute.aio import AsyncServerDriver
from stroute.errors import PodClaimed
from stroute.podstate import RoutingState

pytestmark = pytest.mark.usefixtures("event_loop_kind")  # asyncio's loop and uvloop

NS = "default"
READY, DRAINING, DOWN = RoutingState.READY, RoutingState.DRAINING, RoutingState.DOWN


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def view(store, pod=0, service="lobby"):
    return store.snapshot(NS, service, expire_ms=60_000).pods.get(pod)


async def until(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_a_task_publishes_ready_and_a_cancel_drains_then_goes_down(config, store):
    async def main():
        server = AsyncServerDriver("lobby", 0, config)
        server.set_load_state(7)
        task = asyncio.ensure_future(server.run(drain_seconds=0.5))
        first = await until(lambda: view(store), "the first heartbeat")
        assert (first.state, first.load, first.epoch) == (READY, 7, server.epoch)
        await until(lambda: view(store).heartbeat_ms > first.heartbeat_ms, "a second heartbeat")
        began = time.monotonic()
        task.cancel()
        await until(lambda: view(store).state is DRAINING, "DRAINING")
        with pytest.raises(asyncio.CancelledError):
            await task
        took = time.monotonic() - began
        await server.close()
        return took

    took = run(main())
    assert view(store).state is DOWN
    assert 0.4 <= took < 0.5 + 2.0 + 1.0  # the drain window, and DOWN within the stop budget


def test_a_second_cancel_cuts_the_drain_short(config, store):
    async def main():
        server = AsyncServerDriver("lobby", 0, config)
        server.set_load_state(7)
        task = asyncio.ensure_future(server.run(drain_seconds=30))
        await until(lambda: view(store), "the first heartbeat")
        task.cancel()
        await until(lambda: view(store).state is DRAINING, "DRAINING")
        began = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.close()
        return time.monotonic() - began

    assert run(main()) < 2.0
    assert view(store).state is DOWN


def test_a_second_instance_is_refused_and_takeover_stops_the_first(config, store):
    async def main():
        first = AsyncServerDriver("lobby", 0, config)
        first.set_load_state(1)
        first_task = asyncio.ensure_future(first.run(drain_seconds=0))
        await until(lambda: view(store), "the first instance's heartbeat")
        second = AsyncServerDriver("lobby", 0, config)
        second.set_load_state(2)
        with pytest.raises(PodClaimed, match="alive under another epoch"):
            await second.run(drain_seconds=0)
        third = AsyncServerDriver("lobby", 0, config)
        third.set_load_state(3)
        third_task = asyncio.ensure_future(third.run(drain_seconds=0, takeover=True))
        with pytest.raises(PodClaimed, match="taken over"):
            await first_task
        assert view(store).epoch == third.epoch and view(store).load == 3
        third_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await third_task
        for driver in (first, second, third):
            await driver.close()

    run(main())
    assert view(store).state is DOWN


@pytest.mark.parametrize("kind", ["coroutine", "blocking"])
def test_load_sources_sync_and_async(config, store, kind):
    readings = iter(range(100, 200))

    async def from_a_coroutine():
        await asyncio.sleep(0)
        return next(readings)

    def blocking():
        time.sleep(0.01)  # a source that blocks runs in a worker thread, not on the loop
        return next(readings)

    async def main():
        source = from_a_coroutine if kind == "coroutine" else blocking
        server = AsyncServerDriver("lobby", 0, config, load_source=source)
        task = asyncio.ensure_future(server.run(drain_seconds=0))
        seen = await until(lambda: (v := view(store)) and v.state is READY and v, "a load from the source")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.close()
        return seen

    assert run(main()).load >= 100


def test_a_failing_load_source_publishes_draining_with_its_reason(config, store):
    def broken():
        raise RuntimeError("metrics endpoint refused the connection")

    async def main():
        server = AsyncServerDriver("lobby", 0, config, load_source=broken)
        task = asyncio.ensure_future(server.run(drain_seconds=0))
        seen = await until(lambda: view(store), "the first heartbeat")
        reason = server.load_problem
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.close()
        return seen, reason

    seen, reason = run(main())
    assert seen.state is DRAINING and "metrics endpoint refused" in reason


def test_link_operations_of_the_pod(config, store):
    async def main():
        server = AsyncServerDriver("lobby", 3, config)
        assert await server.set_linked_pod(NS, "u1", "lobby") is None
        assert await server.try_set_linked_pod(NS, "u1", "lobby", 5) == (False, 3)
        assert await server.remove_linked_pod_with_id(NS, "u1", "lobby", 4) is False
        assert await server.remove_linked_pod_with_id(NS, "u1", "lobby") is True
        assert await server.set_linked_pod(NS, "u2", "lobby", 1, ttl=60) is None
        assert await server.remove_linked_pod(NS, "u2", "lobby") is True
        counts = server.links_set, server.links_removed
        await server.close()
        return counts

    assert run(main()) == (2, 2)
    assert store.get(NS, "u1", "lobby") is None and store.get(NS, "u2", "lobby") is None


def test_routing_state_change_is_published_at_once(config, store):
    async def main():
        slow = config.with_overrides(**{"state.period": 30, "state.expire": 90})
        server = AsyncServerDriver("lobby", 0, slow)
        server.set_load_state(1)
        await server.start()
        await until(lambda: view(store), "the first heartbeat")
        server.set_routing_state("DRAINING", "maintenance")
        seen = await until(lambda: (v := view(store)) and v.state is DRAINING and v, "DRAINING at once", timeout=5)
        await server.stop(0)
        await server.close()
        return seen

    assert run(main()).state is DRAINING
    assert view(store).state is DOWN
