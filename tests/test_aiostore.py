"""AsyncStore: the sync Store's operations over automatic pipelining.

The differential test runs the same random operations through the sync
Store (database 0) and the AsyncStore (database 1) of one real server:
every reply and every key left behind must be the same.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stroute.store.aio import AsyncStore
from stroute.errors import CorruptData, InvalidInput
from stroute.store import Store
from test_differential import EXPIRE_MS, NS, data, operations, outcome

pytestmark = [pytest.mark.realserver, pytest.mark.usefixtures("event_loop_kind")]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


class Driven:
    """An AsyncStore driven to completion on its own loop, so the sync
    differential helpers can call it; operations it does not have (the
    command line's: cordons, scans) go to a sync Store on the same database."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.aio = AsyncStore.from_url(url)
        self.sync = Store.from_url(url)
        self.client = self.sync.client
        self.where = self.aio.where

    def keys(self, namespace):
        return self.sync.keys(namespace)

    def __getattr__(self, name):
        method = getattr(self.aio, name, None)
        if method is None or not asyncio.iscoroutinefunction(method):
            return getattr(self.sync, name)
        return lambda *a, **k: self.loop.run_until_complete(method(*a, **k))

    def close(self):
        self.loop.run_until_complete(self.aio.close())
        self.loop.close()
        self.sync.close()


@pytest.fixture
def both(redis_server):
    sync = Store.from_url(redis_server.url)
    aio = Driven(redis_server.url.rsplit("/", 1)[0] + "/1")
    yield sync, aio
    sync.close()
    aio.close()


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, min_size=1, max_size=30))
def test_sync_and_async_stores_agree(both, ops):
    sync, aio = both
    sync.client.flushall()
    for step, op in enumerate(ops):
        expected, got = outcome(sync, op), outcome(aio, op)
        assert got == expected, f"step {step} {op}: sync {expected}, async {got}"
    assert data(aio.client) == data(sync.client), f"the data differs after {ops}"


def test_concurrent_placements_of_the_same_uids_agree_on_one_pod(url):
    async def main():
        store = AsyncStore.from_url(url)
        try:
            calls = [store.set_if_absent(NS, f"u{i % 100}", "game", i % 7, 60_000) for i in range(1000)]
            results = await asyncio.gather(*calls)
            pods: dict[str, set[int]] = {}
            for i, result in enumerate(results):
                pods.setdefault(f"u{i % 100}", set()).add(result.pod)
            assert all(len(found) == 1 for found in pods.values()), pods
            assert sum(r.created for r in results) == 100
            assert await store.batch_get(NS, ["u0", "u1", "nobody"], "game") == {
                "u0": results[0].pod, "u1": results[1].pod, "nobody": None}
            if not store.cluster:
                # The thousand calls shared one write; on a server that did
                # not know the script yet, one SCRIPT LOAD and one more write.
                assert store.pipeline.writes <= 4
                assert store.pipeline.commands <= 1000 + 1 + 1000 + 1
        finally:
            await store.close()

    run(main())


def test_one_bad_key_fails_its_own_call_only(url):
    async def main():
        store = AsyncStore.from_url(url)
        sync = Store.from_url(url)
        try:
            sync.client.hset(store.keys(NS).link("bad", "game"), "x", "1")
            results = await asyncio.gather(
                store.set_if_absent(NS, "good", "game", 1),
                store.set_if_absent(NS, "bad", "game", 1),
                store.get(NS, "good", "game"),
                return_exceptions=True)
            assert results[0].pod == 1 and results[0].created
            assert isinstance(results[1], CorruptData) and "bad" in str(results[1])
            assert results[2].pod == 1
            many = await store.set_if_absent_many(NS, "game", [("bad", 2), ("other", 2)])
            assert isinstance(many[0], CorruptData) and many[1].pod == 2
        finally:
            await store.close()
            sync.close()

    run(main())


def test_a_lost_script_is_loaded_again(real_url, redis_server):
    async def main():
        store = AsyncStore.from_url(real_url)
        try:
            assert (await store.set_if_absent(NS, "a", "game", 1)).created
            redis_server.client().script_flush()
            got = await asyncio.gather(*(store.set_if_absent(NS, f"b{i}", "game", 2) for i in range(10)))
            assert all(r.created for r in got)
        finally:
            await store.close()

    run(main())


def test_bad_input_is_refused_before_anything_is_sent(real_url):
    async def main():
        store = AsyncStore.from_url(real_url)
        try:
            with pytest.raises(InvalidInput, match="uid"):
                await store.set_if_absent(NS, "bad{uid", "game", 1)
            with pytest.raises(InvalidInput, match="pod"):
                await store.set_if_absent(NS, "u", "game", -1)
            assert store.pipeline.commands == 0
        finally:
            await store.close()

    run(main())


def test_heartbeats_publish_and_read_back(url):
    from stroute.podstate import RoutingState

    async def main():
        store = AsyncStore.from_url(url)
        try:
            published = await store.publish_state(NS, "game", 0, load=5, state=RoutingState.READY, epoch=7,
                                                  expire_ms=EXPIRE_MS, summarize=True, claim="start")
            assert published.written and published.snapshot.pods[0].load == 5
            snap = await store.snapshot(NS, "game", expire_ms=EXPIRE_MS)
            assert snap.pods[0].routable and snap.pods[0].epoch == 7
            assert await store.remove_state(NS, "game", 0) is True
            assert (await store.snapshot(NS, "game", expire_ms=EXPIRE_MS)).pods == {}
        finally:
            await store.close()

    run(main())
