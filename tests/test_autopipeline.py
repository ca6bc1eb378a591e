"""stroute.autopipeline against a real redis-server: one write per loop
iteration, each caller its own reply or error, and a connection that stays
in step with the server through cancellations and failures."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aredis

from stroute.autopipeline import AutoPipeline, PipelineClosed

pytestmark = [pytest.mark.realserver, pytest.mark.usefixtures("event_loop_kind")]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _pipeline(url: str, **kwargs) -> tuple[aredis.Redis, AutoPipeline]:
    client = aredis.Redis.from_url(url, **kwargs)
    return client, AutoPipeline.for_client(client, max_batch=kwargs.pop("max_batch", 1000))


async def _until(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def test_concurrent_calls_of_one_iteration_go_out_in_one_write(real_url):
    async def main():
        client, pipe = await _pipeline(real_url)
        try:
            replies = await asyncio.gather(*(pipe.call("INCR", "counter") for _ in range(500)))
            assert sorted(replies) == list(range(1, 501))
            assert (pipe.writes, pipe.commands) == (1, 500)
            # Coroutines resumed in the same iteration share a write too.
            async def one(i):
                await asyncio.sleep(0)
                return await pipe.call("SET", f"k{i}", i)
            await asyncio.gather(*(one(i) for i in range(300)))
            assert (pipe.writes, pipe.commands) == (2, 800)
            assert await client.get("k299") == b"299"
        finally:
            await pipe.close()
            await client.aclose()

    run(main())


def test_a_burst_above_the_cap_is_split_in_order(real_url):
    async def main():
        client = aredis.Redis.from_url(real_url)
        pipe = AutoPipeline.for_client(client, max_batch=100)
        try:
            replies = await asyncio.gather(*(pipe.call("RPUSH", "order", i) for i in range(450)))
            assert replies == list(range(1, 451))  # the server saw them in call order
            assert pipe.writes == 5
            assert [int(x) for x in await client.lrange("order", 0, -1)] == list(range(450))
        finally:
            await pipe.close()
            await client.aclose()

    run(main())


def test_an_error_reply_fails_its_own_call_only(real_url):
    async def main():
        client, pipe = await _pipeline(real_url)
        try:
            await client.set("text", "not a number")
            calls = [pipe.call("INCR", "n"), pipe.call("INCR", "text"), pipe.call("EVALSHA", "0" * 40, 0),
                     pipe.call("INCR", "n"), pipe.call("NOSUCHCOMMAND")]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert results[0] == 1 and results[3] == 2
            assert isinstance(results[1], redis.ResponseError) and "not an integer" in str(results[1])
            assert isinstance(results[2], redis.exceptions.NoScriptError)
            assert isinstance(results[4], redis.ResponseError) and "unknown command" in str(results[4]).lower()
            assert pipe.writes == 1
            assert await pipe.call("GET", "n") == b"2"
        finally:
            await pipe.close()
            await client.aclose()

    run(main())


def test_a_cancelled_caller_leaves_the_connection_in_step(real_url):
    async def main():
        client, pipe = await _pipeline(real_url)
        try:
            # The BLPOP holds the server's replies back while callers are cancelled.
            blocked = asyncio.ensure_future(pipe.call("BLPOP", "gate", 10))
            tasks = [asyncio.ensure_future(pipe.call("INCR", "c")) for _ in range(100)]
            await _until(lambda: _awaitable(pipe.in_flight == 101), "the batch to be written")
            for t in tasks[::2]:
                t.cancel()
            await client.rpush("gate", "open")
            assert await blocked == [b"gate", b"open"]
            kept = await asyncio.gather(*tasks[1::2])
            # Every INCR ran (the server got them all), and each kept caller
            # got its own reply, not a neighbour's.
            assert kept == list(range(2, 101, 2))
            assert await pipe.call("GET", "c") == b"100"
            assert all(t.cancelled() for t in tasks[::2])
        finally:
            await pipe.close()
            await client.aclose()

    run(main())


def test_a_broken_connection_fails_what_was_written_and_the_next_call_reconnects(real_url):
    async def main():
        client, pipe = await _pipeline(real_url)
        try:
            own_id = await pipe.call("CLIENT", "ID")
            blocked = asyncio.ensure_future(pipe.call("BLPOP", "gate", 10))
            behind = asyncio.ensure_future(pipe.call("INCR", "c"))
            await _until(lambda: _awaitable(pipe.in_flight == 2), "the calls to be written")
            assert await client.client_kill_filter(_id=own_id) == 1
            for call in (blocked, behind):
                with pytest.raises(redis.ConnectionError):
                    await call
            assert pipe.in_flight == 0
            assert await pipe.call("CLIENT", "ID") != own_id
            assert await pipe.call("INCR", "c") in (1, 2)  # the INCR written before the kill may have run
        finally:
            await pipe.close()
            await client.aclose()

    run(main())


def test_a_restarted_server_is_reached_again(redis_server):
    async def main():
        client, pipe = await _pipeline(redis_server.url, socket_timeout=2)
        try:
            assert await pipe.call("SET", "k", "v") == b"OK"
            redis_server.restart()
            # The first call after the restart meets the dead connection and
            # fails; the transport does not resend it, the caller decides.
            try:
                await pipe.call("PING")
            except redis.ConnectionError:
                pass
            assert await pipe.call("PING") == b"PONG"
        finally:
            await pipe.close()
            await client.aclose()

    run(main())


def test_close_fails_waiting_calls_and_refuses_new_ones(real_url):
    async def main():
        client, pipe = await _pipeline(real_url)
        try:
            blocked = asyncio.ensure_future(pipe.call("BLPOP", "gate", 10))
            await _until(lambda: _awaitable(pipe.in_flight == 1), "the call to be written")
            await pipe.close()
            with pytest.raises(PipelineClosed):
                await blocked
            with pytest.raises(PipelineClosed):
                pipe.call("PING")
            # The closed connection is gone from the server, the BLPOP with it.
            await _until(lambda: _no_blocked_clients(client), "the blocked connection to close")
        finally:
            await client.aclose()

    run(main())


def test_the_connection_is_made_with_the_clients_settings(real_url):
    async def main():
        client, pipe = await _pipeline(real_url, client_name="gateway-7")
        try:
            assert await pipe.call("CLIENT", "GETNAME") == b"gateway-7"
        finally:
            await pipe.close()
            await client.aclose()

    run(main())


def test_calls_from_one_coroutine_keep_their_order(real_url):
    async def main():
        client, pipe = await _pipeline(real_url)
        try:
            first = pipe.call("SET", "k", "1")
            second = pipe.call("GET", "k")
            third = pipe.call("APPEND", "k", "2")
            assert (await first, await second, await third) == (b"OK", b"1", 2)
        finally:
            await pipe.close()
            await client.aclose()

    run(main())


async def _awaitable(value):
    return value


async def _no_blocked_clients(client: aredis.Redis) -> bool:
    return (await client.info("clients"))["blocked_clients"] == 0



class _Tracking:
    """What an invalidation source gives a connection: the listener's id."""

    def __init__(self, client_id):
        self.client_id = client_id
        self.refusals = []

    def broken(self, why):
        self.refusals.append(why)


def test_tracking_is_turned_on_in_the_first_write_of_each_connection(real_url):
    async def main():
        client, pipe = await _pipeline(real_url)
        listener = aredis.Redis.from_url(real_url, single_connection_client=True)
        try:
            listener_id = await listener.client_id()
            pipe.tracking = _Tracking(listener_id)
            await pipe.call("SET", "k", "v")
            info = await pipe.call("CLIENT", "TRACKINGINFO")
            # A map under RESP3 (redis-py 8's default), a flat list under RESP2.
            fields = info if isinstance(info, dict) else dict(zip(info[::2], info[1::2]))
            assert set(fields[b"flags"]) >= {b"on", b"optout", b"noloop"}
            assert fields[b"redirect"] == listener_id
            # One write carried CLIENT TRACKING ON and the SET; the next one the TRACKINGINFO.
            assert pipe.writes == 2
            # An untracked read is answered as any other, and a refused
            # CLIENT CACHING (tracking off) never reaches the caller.
            assert await pipe.call_untracked("GET", "k") == b"v"
            pipe.tracking = None
            assert await pipe.call_untracked("GET", "k") == b"v"
        finally:
            await pipe.close()
            await listener.aclose()
            await client.aclose()

    run(main())


def test_a_refused_tracking_is_reported_and_the_call_still_answered(real_url):
    async def main():
        client, pipe = await _pipeline(real_url)
        try:
            pipe.tracking = tracking = _Tracking(10**9)  # no such client
            assert await pipe.call("SET", "k", "v") == b"OK"
            assert len(tracking.refusals) == 1 and "CLIENT TRACKING refused" in tracking.refusals[0]
            # It is tried again on the next write, not taken as done.
            assert await pipe.call("GET", "k") == b"v"
            assert len(tracking.refusals) == 2
        finally:
            await pipe.close()
            await client.aclose()

    run(main())


# --- Redis Cluster -------------------------------------------------------------------------------

def _cluster_client(redis_cluster) -> "aredis.RedisCluster":
    node = redis_cluster.nodes[0]
    return aredis.RedisCluster(host="127.0.0.1", port=node.port)


def _node_of(redis_cluster, key: str):
    """The cluster fixture's node that owns `key`'s slot, and its id."""
    for node in redis_cluster.nodes:
        client = node.client()
        try:
            slot = client.execute_command("CLUSTER", "KEYSLOT", key)
            if client.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) >= 0:
                owner = _slot_owner(client, slot)
                for candidate in redis_cluster.nodes:
                    if candidate.port == owner:
                        return candidate, slot
        finally:
            client.close()
    raise AssertionError(f"no node owns {key!r}")


def _slot_owner(client, slot: int) -> int:
    for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(primary[1])
    raise AssertionError(f"slot {slot} has no owner")


def _node_id(node) -> str:
    client = node.client()
    try:
        return client.execute_command("CLUSTER", "MYID")
    finally:
        client.close()


@pytest.mark.cluster
def test_cluster_calls_go_out_in_one_write_per_node(cluster_url, redis_cluster):
    from stroute.autopipeline import ClusterAutoPipeline

    async def main():
        client = _cluster_client(redis_cluster)
        pipe = ClusterAutoPipeline(client)
        try:
            keys = [f"{{user{i}}}k" for i in range(300)]
            assert await asyncio.gather(*(pipe.call(k, "SET", k, k) for k in keys)) == [b"OK"] * 300
            assert pipe.writes == len(redis_cluster.nodes)
            await client.set("text", "x")
            got = await asyncio.gather(pipe.call("text", "INCR", "text"), pipe.call(keys[0], "GET", keys[0]),
                                       return_exceptions=True)
            assert isinstance(got[0], redis.ResponseError) and got[1] == keys[0].encode()
        finally:
            await pipe.close()
            await client.aclose()

    run(main())


@pytest.mark.cluster
def test_cluster_moved_reply_reroutes_that_call(cluster_url, redis_cluster):
    from stroute.autopipeline import ClusterAutoPipeline

    async def main():
        client = _cluster_client(redis_cluster)
        pipe = ClusterAutoPipeline(client)
        try:
            owner, slot = _node_of(redis_cluster, "{moved}k")
            wrong = next(n for n in redis_cluster.nodes if n.port != owner.port)
            await pipe.call("{moved}warm", "PING")
            pipe._moved[slot] = ("127.0.0.1", wrong.port)  # a stale slot map, as after a resharding
            other = asyncio.ensure_future(pipe.call("{x}k", "SET", "{x}k", "1"))
            assert await pipe.call("{moved}k", "SET", "{moved}k", "v") == b"OK"
            assert await other == b"OK"
            assert pipe.redirects == 1
            assert owner.client().get("{moved}k") == "v"
        finally:
            await pipe.close()
            await client.aclose()

    run(main())


@pytest.mark.cluster
def test_cluster_ask_reply_sends_asking_and_the_call_to_the_importing_node(cluster_url, redis_cluster):
    from stroute.autopipeline import ClusterAutoPipeline

    key = "{asked}k"
    source, slot = _node_of(redis_cluster, key)
    target = next(n for n in redis_cluster.nodes if n.port != source.port)
    src, dst = source.client(), target.client()
    try:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(source))
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(target))

        async def main():
            client = _cluster_client(redis_cluster)
            pipe = ClusterAutoPipeline(client)
            try:
                # The key is not on the migrating node: it answers ASK.
                assert await pipe.call(key, "SET", key, "v") == b"OK"
                assert pipe.redirects == 1
            finally:
                await pipe.close()
                await client.aclose()

        run(main())
        pipe = dst.pipeline(transaction=False)
        pipe.execute_command("ASKING")
        pipe.get(key)
        pipe.execute_command("ASKING")
        pipe.delete(key)
        assert pipe.execute() == [True, "v", True, 1]
    finally:
        for client in (src, dst):
            client.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
            client.close()
