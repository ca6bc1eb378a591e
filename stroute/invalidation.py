"""Invalidation sources: Redis tells a client driver which cached keys changed.

Redis's server-assisted client-side caching (CLIENT TRACKING, Redis 6+), in
its default mode: Redis remembers the keys each connection read and, when
anyone changes one of them (stroute, the Go or Java drivers, redis-cli, an
expiry), sends the key's name once to the connection the reader redirected
to. Broadcast mode would send every write under a prefix to every gateway;
default mode sends a write only to the gateways that cached the key, so the
cost of a new user's placement does not grow with the number of gateways.

One listener per Redis primary holds a RESP2 connection subscribed to
`__redis__:invalidate`; each of the store's connections turns tracking on with
`CLIENT TRACKING ON REDIRECT <listener id> OPTOUT NOLOOP`, sent in the same
write as its next command (`stroute.direct`); batch reads, whose answers are
not cached, opt out with `CLIENT CACHING NO`. The listener PINGs every `bound / 4`
seconds. A PONG proves that every invalidation Redis sent before it has
arrived, so a cached answer is served only while the last PONG answered a
PING sent less than `bound` seconds ago: a dead, hung or killed channel
stops the cache within `bound`. Each time a channel is (re)made the
source's `generation` changes and the cache is dropped, since Redis forgot
what the old connection tracked.

Sentinel: the listener also asks the sentinels where the master is every
`bound / 2` seconds, and starts over on the new master after a failover (the
tracking table is not replicated). Cluster: a listener per primary; a change
in the set of primaries, or a MOVED reply, starts a new generation.
memory://: fakeredis has no CLIENT TRACKING; drivers sharing one in-process
server hear of every key it writes through an in-process hook instead.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from typing import Any, Callable, Iterator, Protocol

log = logging.getLogger("stroute.invalidation")

CHANNEL = "__redis__:invalidate"
# A lost channel is made again after 50 ms, then 100, 200, ... up to 1 s
# while Redis keeps refusing; once it stands, the next loss starts at 50 ms.
_FIRST_RETRY_S = 0.05
_LAST_RETRY_S = 1.0
DEFAULT_BOUND = 1.0  # seconds; links.coherence_bound


class Sink(Protocol):
    """Where invalidations go (the client driver's coherence glue)."""

    def keys_changed(self, keys: list[str]) -> None: ...

    def flushed(self) -> None: ...


class Tracking:
    """What a store connection needs to turn tracking on: the listener's client id.

    `client_id` is None while the listener has no confirmed connection;
    reads made then are not tracked, and their answers are not cached.
    """

    def __init__(self, source: "Source") -> None:
        self.client_id: int | None = None
        self._source = source

    def broken(self, reason: str) -> None:
        """A store connection could not turn tracking on: trust nothing cached."""
        self._source.distrust(reason)


class Source:
    """Base of every invalidation source: generation, trust and counters."""

    def __init__(self, sink: Sink, *, bound: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.bound = bound
        self.generation = 0
        self.trusted_until = 0.0
        self.reconnects = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._untrusted_since: float | None = clock()
        self._untrusted_total = 0.0
        self._last_problem: str | None = None
        self._ever_trusted = False

    # --- trust, kept in one place -------------------------------------------------

    def untrusted_seconds(self) -> float:
        """Seconds this source has spent without a confirmed channel."""
        now = self._clock()
        with self._lock:
            total = self._untrusted_total
            if self._untrusted_since is not None:
                total += now - self._untrusted_since
            elif now >= self.trusted_until:
                total += now - self.trusted_until
        return total

    def _trust(self, until: float) -> None:
        with self._lock:
            now = self._clock()
            if self._untrusted_since is not None:
                self._untrusted_total += max(0.0, now - self._untrusted_since)
                self._untrusted_since = None
            elif now > self.trusted_until:  # trust had lapsed between two PONGs
                self._untrusted_total += now - self.trusted_until
            self.trusted_until = until
            self._ever_trusted = True

    def distrust(self, reason: str) -> None:
        """Stop serving cached answers and start a new generation."""
        with self._lock:
            self.generation += 1
            self.trusted_until = 0.0
            if self._untrusted_since is None:
                self._untrusted_since = self._clock()
        if self._last_problem is None:  # once per outage
            log.warning("client-side cache suspended: %s", reason)
            self._last_problem = reason

    def _established(self) -> None:
        """A channel was (re)made: what was cached before may have missed a change.
        (Nothing is cached before the first one: the cache keeps no answer read
        while no channel stood.)"""
        with self._lock:
            self.generation += 1
        if self._ever_trusted:
            self.sink.flushed()
        if self._last_problem is not None:
            log.info("client-side cache resumed: invalidation channel re-established")
            self._last_problem = None

    def close(self) -> None:  # pragma: no cover - overridden
        pass


class Listener:
    """One RESP2 connection subscribed to a primary's invalidations, in a thread.

    `make()` returns an unconnected redis-py connection to the primary;
    `check()`, if given, runs every bound/2 seconds and raises when the
    connection no longer leads to the primary (a Sentinel failover).
    """

    def __init__(
        self,
        source: "Source",
        make: Callable[[], Any],
        *,
        name: str,
        check: Callable[[Any], None] | None = None,
        on_trust: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.tracking = Tracking(source)
        self.trusted_until = 0.0
        self.where = name
        self._make = make
        self._check = check
        self._on_trust = on_trust or (lambda: source._trust(self.trusted_until))
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name=f"stroute-invalidation {name}", daemon=True)

    def start(self) -> "Listener":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            _disconnect(conn)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    @property
    def client_id(self) -> int | None:
        return self.tracking.client_id

    def _run(self) -> None:
        self._backoff = _FIRST_RETRY_S
        while not self._stop.is_set():
            try:
                self._session()
            except Exception as exc:  # any failure ends the session; the cache stops at once
                if self._stop.is_set():
                    break
                self.tracking.client_id = None
                self.trusted_until = 0.0
                self.source.distrust(f"invalidation channel to {self.where} lost: {_reason(exc)}")
            finally:
                if self._conn is not None:
                    _disconnect(self._conn)
                    self._conn = None
            if self._stop.wait(self._backoff):
                break
            self._backoff = min(self._backoff * 2, _LAST_RETRY_S)

    def _session(self) -> None:
        bound = self.source.bound
        interval = bound / 4
        clock = self.source._clock
        conn = self._conn = self._make()
        conn.connect()
        started = clock()
        conn.send_command("CLIENT", "ID")
        client_id = int(conn.read_response())
        # Harmless on Redis 6+, an error where there is no CLIENT TRACKING (Redis
        # 5, some Redis-compatible servers): then the channel is never confirmed.
        conn.send_command("CLIENT", "TRACKING", "OFF")
        try:
            conn.read_response()
        except Exception as exc:
            raise ConnectionError(f"the server has no CLIENT TRACKING ({_reason(exc)}); "
                                  "set links.coherent: false to cache without it") from None
        conn.send_command("SUBSCRIBE", CHANNEL)
        conn.read_response()
        if self._check is not None:
            self._check(conn)
        self.tracking.client_id = client_id
        self._backoff = _FIRST_RETRY_S  # a channel stood again: the next loss is retried at once
        self.source.reconnects += 1
        self.source._established()
        self.trusted_until = started + bound
        self._on_trust()
        pending: deque[float] = deque()
        next_ping = clock()
        # Without a check (no Sentinel to ask), never: a deadline in the past
        # would turn the wait below into a busy loop.
        next_check = clock() + bound / 2 if self._check is not None else math.inf
        while not self._stop.is_set():
            now = clock()
            if now >= next_ping:
                conn.send_command("PING")
                pending.append(now)
                next_ping = now + interval
            if self._check is not None and now >= next_check:
                checked = clock()
                self._check(conn)
                next_check = checked + bound / 2
            if pending and now - pending[0] > bound:
                raise TimeoutError(f"no answer to PING within {bound:g} s")
            if not conn.can_read(timeout=max(0.0, min(next_ping, next_check) - clock())):
                continue
            message = conn.read_response()
            kind = message[0] if isinstance(message, list) and message else None
            if kind == "message":
                keys = message[2]
                if keys is None:
                    self.source.sink.flushed()  # FLUSHALL / FLUSHDB
                else:
                    self.source.sink.keys_changed(keys if isinstance(keys, list) else [keys])
            elif kind == "pong":
                self.trusted_until = pending.popleft() + bound
                self._on_trust()


class RedisSource(Source):
    """One Redis server, or the master Sentinel names: one listener."""

    def __init__(self, store: Any, sink: Sink, *, bound: float) -> None:
        super().__init__(sink, bound=bound)
        direct = store._direct
        pool = getattr(direct, "_pool", None)
        check = _sentinel_check(pool) if pool is not None else None
        kwargs = dict(direct._connection_kwargs)
        connection_class = direct._connection_class
        self.listener = Listener(
            self, lambda: connection_class(**_listener_kwargs(kwargs)), name=store.where, check=check
        )
        direct.tracking = self.listener.tracking
        self._direct = direct
        self.listener.start()

    def listeners(self) -> list[Listener]:
        return [self.listener]

    def close(self) -> None:
        self.listener.stop()
        self._direct.tracking = None


class ClusterSource(Source):
    """A Redis Cluster: one listener per primary, re-made when the primaries change."""

    def __init__(self, store: Any, sink: Sink, *, bound: float) -> None:
        super().__init__(sink, bound=bound)
        self._store = store
        self._listeners: dict[str, Listener] = {}
        self._stop = threading.Event()
        self._changed = threading.Event()
        # A read that met MOVED/ASK was answered by redis-py's cluster client
        # on a connection not tracked by any listener: it must not be cached.
        store.on_topology_change = self.topology_changed
        self._sync()
        self._watcher = threading.Thread(target=self._watch, name="stroute-invalidation cluster", daemon=True)
        self._watcher.start()

    def listeners(self) -> list[Listener]:
        return list(self._listeners.values())

    def tracking_for(self, node_name: str) -> Tracking | None:
        listener = self._listeners.get(node_name)
        return None if listener is None else listener.tracking

    def topology_changed(self, reason: str) -> None:
        """A MOVED/ASK reply, or a listener lost: look at the primaries again."""
        self.distrust(reason)
        self._changed.set()

    def _recompute(self) -> None:
        listeners = list(self._listeners.values())
        until = min((l.trusted_until for l in listeners), default=0.0)
        if listeners and all(l.client_id is not None for l in listeners):
            self._trust(until)

    def _sync(self) -> None:
        client = self._store.client
        primaries = {node.name: node for node in client.get_primaries()}
        if set(primaries) == set(self._listeners):
            return
        changed = bool(self._listeners)
        for name in set(self._listeners) - set(primaries):
            self._listeners.pop(name).stop()
        for name, node in primaries.items():
            if name in self._listeners:
                continue
            pool = client.get_redis_connection(node).connection_pool
            kwargs = dict(pool.connection_kwargs)
            listener = Listener(
                self, lambda c=pool.connection_class, k=kwargs: c(**_listener_kwargs(k)), name=name,
                on_trust=self._recompute,
            )
            self._listeners[name] = listener
            self._store.use_tracking(name, listener.tracking)
            listener.start()
        if changed:
            self.distrust("the cluster's primaries changed")

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._changed.wait(timeout=1.0)
            if self._stop.is_set():
                break
            refresh = self._changed.is_set() or any(l.client_id is None for l in self._listeners.values())
            self._changed.clear()
            try:
                if refresh:
                    self._store.client.nodes_manager.initialize()
                self._sync()
            except Exception as exc:  # the cluster is unreachable: the listeners say so too
                self.distrust(f"cannot read the cluster's primaries: {_reason(exc)}")

    def close(self) -> None:
        self._stop.set()
        self._changed.set()
        for listener in self._listeners.values():
            listener.stop()
        self._watcher.join(timeout=2)
        self._store.use_tracking(None, None)
        self._store.on_topology_change = None


class MemorySource(Source):
    """memory://: an in-process hook on the shared fakeredis server (always confirmed)."""

    def __init__(self, store: Any, hub: Any, sink: Sink) -> None:
        super().__init__(sink, bound=float("inf"))
        self._hub = hub
        self.trusted_until = float("inf")
        self._untrusted_since = None
        # As NOLOOP does on Redis: no notices of this driver's own writes.
        # fakeredis runs a command in the calling thread, so a notice that
        # arrives while this thread is inside the store's call is our own.
        self._own = threading.local()
        direct = store._direct
        run = direct._run

        def own_run(*args: Any, **kwargs: Any) -> Any:
            self._own.depth = getattr(self._own, "depth", 0) + 1
            try:
                return run(*args, **kwargs)
            finally:
                self._own.depth -= 1

        direct._run = own_run
        hub.subscribe(self._changed)

    @contextlib.contextmanager
    def own_writes(self) -> Iterator[None]:
        """Notices that arrive inside are this driver's own (an asyncio
        driver's writes, which fakeredis runs as they are sent)."""
        self._own.depth = getattr(self._own, "depth", 0) + 1
        try:
            yield
        finally:
            self._own.depth -= 1

    def _changed(self, key: str) -> None:
        if not getattr(self._own, "depth", 0):
            self.sink.keys_changed([key])

    def listeners(self) -> list[Listener]:
        return []

    def close(self) -> None:
        self._hub.unsubscribe(self._changed)


def open_source(store: Any, sink: Sink, *, bound: float = DEFAULT_BOUND) -> Source:
    """The invalidation source for the store's backend."""
    from stroute import backends

    hub = backends.memory_hub(store.client)
    if hub is not None:
        return MemorySource(store, hub, sink)
    if store.cluster:
        return ClusterSource(store, sink, bound=bound)
    return RedisSource(store, sink, bound=bound)


def _listener_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    out["protocol"] = 2  # invalidations as Pub/Sub messages on a subscribed connection
    out["client_name"] = "stroute-invalidations"
    return out


def _sentinel_check(pool: Any) -> Callable[[Any], None] | None:
    """For a Sentinel pool: raise when the sentinels name another master than the one connected."""
    if not hasattr(pool, "get_master_address"):
        return None

    def check(conn: Any) -> None:
        host, port = pool.get_master_address()
        if (str(host), int(port)) != (str(conn.host), int(conn.port)):
            raise ConnectionError(f"the master moved to {host}:{port}")

    return check


def _disconnect(conn: Any) -> None:
    try:
        conn.disconnect()
    except Exception:  # closing must never raise
        pass


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
