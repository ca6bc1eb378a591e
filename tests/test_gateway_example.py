"""The asyncio gateway of docs/examples/gateway.py, under concurrent requests
against a real redis-server with pods published by the server driver."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from stroute.config import Config
from support import CommandCounter, put_state

pytestmark = [pytest.mark.realserver, pytest.mark.usefixtures("event_loop_kind")]

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "gateway.py"


def load_example():
    spec = importlib.util.spec_from_file_location("gateway_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_concurrent_requests_each_reach_one_pod_per_user(real_url, redis_server):
    gateway = load_example()
    raw = redis_server.client()
    for pod in range(4):
        put_state(raw, gateway.SERVICE, pod, load=10)
    put_state(raw, gateway.SERVICE, 9, load=0, age_ms=120_000)  # dead: never chosen
    config = Config().with_overrides(**{"redis.url": real_url, "state.expire": 60})
    counter = CommandCounter(raw)
    users = [f"player-{i}" for i in range(300)]

    async def main():
        runner = web.AppRunner(gateway.make_app(config))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                async def ask(uid):
                    async with http.get(f"/route/{uid}") as response:
                        return response.status, await response.json()

                await ask("warm-up")
                counter.reset()
                first = await asyncio.gather(*(ask(uid) for uid in users))
                second = await asyncio.gather(*(ask(uid) for uid in users * 2))
                async with http.get("/route/" + "x" * 300) as response:  # over 256 characters
                    bad = response.status, await response.text()
                return first, second, bad
        finally:
            await runner.cleanup()

    first, second, bad = asyncio.run(asyncio.wait_for(main(), 60))
    assert all(status == 200 for status, _ in first + second)
    pods = {body["uid"]: body["pod"] for _, body in first}
    assert set(pods.values()) <= {0, 1, 2, 3}
    assert all(pods[body["uid"]] == body["pod"] for _, body in second)  # the same pod every time
    assert all(body["source"] == "new" for _, body in first)
    assert all(body["source"] == "cache" for _, body in second)  # the coherent cache answers
    assert all(raw.get(f"sf:{{default:lk:{uid}}}game") == str(pod) for uid, pod in pods.items())
    evalsha = counter.counts().get("evalsha", 0)
    assert evalsha == len(users)  # one command per new user, none for a cached one
    assert bad[0] == 400 and "uid" in bad[1]
