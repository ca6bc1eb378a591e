"""Shared fixtures: one test suite over memory:// and a real redis-server."""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest

from stroute import backends
from stroute.config import Config

from stroute.testing import RedisClusterProcesses, RedisServer

# A shell starts a background job (`cmd &`, as a CI runner may) with SIGINT
# and SIGQUIT ignored, and an ignored signal stays ignored in every child:
# the `stroute` processes the tests signal would then never hear Ctrl-C or
# SIGQUIT. The tests expect what a terminal gives, so give it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server for the whole session (flushed per test by `url`)."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def real_url(redis_server):
    """URL of the session's real server, flushed before the test."""
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster():
    """A real 3-primary Redis Cluster for the whole session (flushed per test)."""
    cluster = RedisClusterProcesses().start()
    yield cluster
    cluster.close()


@pytest.fixture
def cluster_url(redis_cluster):
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_kind(request):
    """Each test using this runs twice: on asyncio's own event loop and on
    uvloop's, which asyncio servers such as uvicorn run by default. The
    policy makes every loop the test starts (asyncio.run, new_event_loop)."""
    if request.param == "asyncio":
        yield request.param
        return
    import uvloop  # in the test extra: a missing uvloop fails these tests, never skips them

    before = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield request.param
    finally:
        asyncio.set_event_loop_policy(before)


@pytest.fixture(
    params=[
        "memory",
        pytest.param("real", marks=pytest.mark.realserver),
        pytest.param("cluster", marks=[pytest.mark.realserver, pytest.mark.cluster]),
    ]
)
def url(request):
    """Each test using this runs three times: on memory://, on a real
    redis-server, and on a real 3-primary Redis Cluster."""
    if request.param == "memory":
        name = f"test-{uuid.uuid4().hex}"
        yield f"memory://{name}"
        backends.forget_memory(name)
    elif request.param == "real":
        yield request.getfixturevalue("real_url")
    else:
        yield request.getfixturevalue("cluster_url")


@pytest.fixture
def config(url) -> Config:
    """Defaults with the test's URL and short, test-friendly periods."""
    return Config().with_overrides(
        **{"redis.url": url, "redis.socket_timeout": 2, "state.period": 0.2, "state.expire": 1.0, "state.refresh": 0}
    )


@pytest.fixture
def store(config):
    s = config.open_store()
    yield s
    s.close()
