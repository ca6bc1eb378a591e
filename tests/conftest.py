"""Shared fixtures: one test suite over memory:// and a real redis-server."""

from __future__ import annotations

import uuid

import pytest

from stroute import backends
from stroute.config import Config
from stroute.store import Store

from stroute.testing import RedisServer


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


@pytest.fixture(params=["memory", pytest.param("real", marks=pytest.mark.realserver)])
def url(request):
    """Each test using this runs twice: on memory:// and on a real redis-server."""
    if request.param == "memory":
        name = f"test-{uuid.uuid4().hex}"
        yield f"memory://{name}"
        backends.forget_memory(name)
    else:
        yield request.getfixturevalue("real_url")


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
