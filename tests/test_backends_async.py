"""backends.connect_async: one URL, the same server, from sync and asyncio clients."""

from __future__ import annotations

import asyncio

import pytest

from stroute import backends
from stroute.autopipeline import AutoPipeline, ClusterAutoPipeline
from stroute.errors import ConfigError

pytestmark = pytest.mark.usefixtures("event_loop_kind")  # asyncio's loop and uvloop


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_an_asyncio_client_reaches_the_same_data_as_a_sync_one(url):
    sync = backends.connect(url)
    sync.set("{t}written-by-sync", "1")

    async def main():
        client = backends.connect_async(url)
        cluster = url.startswith("redis+cluster")
        pipe = ClusterAutoPipeline(client) if cluster else AutoPipeline.for_client(client)
        try:
            args = ("{t}written-by-sync",) if cluster else ()
            assert await pipe.call(*args, "GET", "{t}written-by-sync") == "1"  # decoded, as the sync client's
            args = ("{t}written-by-async",) if cluster else ()
            assert await pipe.call(*args, "SET", "{t}written-by-async", "2") == "OK"
            assert await client.get("{t}written-by-async") == "2"
            if not url.startswith("memory"):  # fakeredis keeps no client names
                assert await client.client_getname() == "stroute"
        finally:
            await pipe.close()
            await client.aclose()

    try:
        run(main())
        assert sync.get("{t}written-by-async") == "2"
    finally:
        sync.close()


def test_an_asyncio_client_of_the_embedded_server(tmp_path):
    from stroute.embedded import EmbeddedServer
    from support import wait_until

    data = tmp_path / "links.rdb"
    url = f"embedded://{data}"

    async def main():
        client = backends.connect_async(url)
        try:
            assert await client.set("k", "v") is True
            assert await client.get("k") == "v"
            return client.stroute_embedded
        finally:
            await client.aclose()

    server = run(main())
    try:
        assert isinstance(server, EmbeddedServer) and server.is_running()
        assert backends.connect(url).get("k") == "v"
    finally:
        import redis

        try:
            redis.Redis(unix_socket_path=server.socket_path).shutdown(nosave=True)
        except redis.RedisError:
            pass
        wait_until(lambda: not server.is_running(), what="the embedded server to stop")


@pytest.mark.parametrize("url, needle", [
    ("redis://127.0.0.1:0/0", "port 0"),
    ("redis+sentinel://127.0.0.1:26379", "MASTER"),
    ("gopher://127.0.0.1", "gopher"),
])
def test_a_bad_url_is_refused_as_connect_refuses_it(url, needle):
    with pytest.raises(ConfigError) as sync_error:
        backends.connect(url)
    with pytest.raises(ConfigError) as async_error:
        backends.connect_async(url)
    assert str(async_error.value) == str(sync_error.value)
    assert needle in str(async_error.value)
