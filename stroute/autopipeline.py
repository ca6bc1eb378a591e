"""Automatic pipelining for asyncio: the commands of one loop iteration, one write.

A gateway serving many requests at once has many coroutines waiting on
Redis at the same moment. Sent one at a time, each pays a round trip and a
pass through redis-py's per-command machinery; sent together, a thousand
cost about what one does. `AutoPipeline.call` queues its command and
returns a future; the first call of a loop iteration schedules one flush,
which runs after every coroutine resumed in that iteration has queued its
commands, and writes them all in one write (from that callback itself when
the connection is up: no task per write). One reader task
takes the replies off the connection in order and hands each caller its
own reply, or its own exception: an error reply fails that call alone.
This is ioredis's `enableAutoPipelining` and Lettuce's command coalescing.

Rules kept from the sync path (`stroute.direct`):
- connections come from the client's own pool class and settings (TLS,
  credentials, timeouts, client name), one per pipeline;
- a connection in doubt (a read timeout, a broken socket, anything but a
  complete reply) is closed and never reused: the calls written on it fail
  with the error, calls not yet written go out on a fresh connection. The
  transport retries nothing itself, because only the caller knows whether
  its command may run twice (a placement may: set-if-absent is idempotent);
- a caller that is cancelled leaves its reply to be read and dropped, so the
  connection stays in step with the server.

A batch holds at most `max_batch` commands; a burst larger than that goes
out in several writes, in order, without waiting for replies in between.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import redis.exceptions

from stroute.direct import _pack

# How often a pipeline on a Sentinel-managed master asks where the master is
# (the sync path's Sentinel pool asks as often: backends._SENTINEL_RECHECK_S).
MASTER_RECHECK_S = 1.0

# Written from the flush callback while the socket's send buffer holds less
# than this; past it, the writing task waits for the buffer to drain.
WRITE_BUFFER_LIMIT = 1 << 20

# A thousand EVALSHAs of a placement are about 200 KB: one write of that
# size keeps the socket buffer busy without holding replies back for long.
MAX_BATCH = 1000

_CACHING_NO = ("CLIENT", "CACHING", "NO")

# One queued call: the commands it sends (a command, or CLIENT CACHING NO and
# a command), and the future that gets the reply of the last one.
_Entry = tuple[tuple[tuple[Any, ...], ...], asyncio.Future]


class PipelineClosed(redis.exceptions.ConnectionError):
    """The pipeline was closed while the call waited."""


class AutoPipeline:
    """Coalesces the commands of concurrent coroutines onto one connection.

    Bound to the event loop it is first used on. `call` and `close` must be
    used from that loop.

    `tracking` (set by an invalidation source, as on `stroute.direct`): the
    connection turns CLIENT TRACKING on, redirected to the source's listener,
    in the first write after it connects or the listener changes.
    """

    def __init__(self, connection_class: Any, connection_kwargs: dict[str, Any], *,
                 max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch {max_batch!r} must be at least 1")
        self._connection_class = connection_class
        self._connection_kwargs = dict(connection_kwargs)
        self.max_batch = max_batch
        self.tracking: Any = None
        # Or, when set, where to find it at each write: a store whose
        # invalidation source sets and clears its tracking (see follow()).
        self.tracking_from: Any = None
        # memory:// only: a context the writes run in, so the in-process
        # invalidation source knows this driver's own writes (fakeredis runs
        # each command as it is sent).
        self.own_writes: Any = None
        self._connection: Any = None
        self._pending: list[_Entry] = []
        self._flush_scheduled = False
        self._writing = False
        # Batches written and not yet answered, oldest first, with the
        # connection each went out on. The reader takes replies in this order.
        self._inflight: deque[tuple[Any, list[_Entry]]] = deque()
        self._inflight_ready: asyncio.Event | None = None
        self._reader: asyncio.Task | None = None
        self._closed = False
        # A Sentinel pool's master lookup (see follow_master) and when it last ran.
        self._master_address: Any = None
        self._master_checked = 0.0
        # Observability and tests: how many writes carried how many calls.
        self.writes = 0
        self.commands = 0

    @classmethod
    def for_client(cls, client: Any, *, max_batch: int = MAX_BATCH) -> "AutoPipeline":
        """A pipeline on a connection made the way `client` (a redis.asyncio.Redis) makes them."""
        pool = client.connection_pool
        pipeline = cls(pool.connection_class, pool.connection_kwargs, max_batch=max_batch)
        if hasattr(pool, "get_master_address"):  # redis+sentinel://
            pipeline.follow_master(pool.get_master_address)
        return pipeline

    def follow_master(self, master_address: Any) -> None:
        """Ask `master_address()` (a Sentinel pool's lookup, a coroutine giving
        (host, port)) where the master is, at most every MASTER_RECHECK_S, as
        the sync path's Sentinel pool does. A healthy connection to a master
        that Sentinel has replaced would otherwise keep writing to it until it
        is made a replica, and what it took in the meantime is lost. When the
        answer changes, or a reply says the server is now a read-only replica
        (that call fails as a lost connection does), the connection is
        retired: the next write goes out on a new one (to the master Sentinel
        names), and the old one is closed once every call written on it has
        its reply."""
        self._master_address = master_address

    # -- the caller's side ---------------------------------------------------

    def call(self, *args: Any) -> "asyncio.Future[Any]":
        """Queue one command. The future gets its reply as Redis sent it (no
        redis-py response callbacks: bytes, ints, lists), or raises redis-py's
        exception for an error reply or a broken connection."""
        return self._queue((args,))

    def call_untracked(self, *args: Any) -> "asyncio.Future[Any]":
        """`call`, asking Redis not to track the keys it reads (CLIENT CACHING
        NO, sent in the same write) when tracking is on: for reads whose
        answers are not cached."""
        if self._tracking() is None:
            return self._queue((args,))
        return self._queue((_CACHING_NO, args))

    def _queue(self, commands: tuple[tuple[Any, ...], ...]) -> "asyncio.Future[Any]":
        if self._closed:
            raise PipelineClosed("the pipeline is closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((commands, future))
        if not self._flush_scheduled and not self._writing:
            self._flush_scheduled = True
            # call_soon runs after every callback already queued for this
            # iteration: every coroutine resumed now queues its command first.
            loop.call_soon(self._start_flush)
        return future

    async def close(self) -> None:
        """Fail what is queued or in flight, stop the reader, close the connection."""
        if self._closed:
            return
        self._closed = True
        error = PipelineClosed("the pipeline was closed")
        self._fail(self._pending, error)
        self._pending = []
        while self._inflight:
            self._fail(self._inflight.popleft()[1], error)
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
            self._reader = None
        await self._drop_connection()

    @property
    def in_flight(self) -> int:
        """Calls written and not yet answered."""
        return sum(len(batch) for _, batch in self._inflight)

    # -- writing -------------------------------------------------------------

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending or self._writing or self._closed:
            return
        if self._write_now():
            return
        self._writing = True
        asyncio.ensure_future(self._write_pending())

    def _write_now(self) -> bool:
        """Write what is pending in this callback, with no task and no await,
        when nothing needs one: the connection is up, its send buffer is
        below WRITE_BUFFER_LIMIT (else the task waits for it to drain), no
        master check is due and the connection is a socket. redis-py's
        send_packed_command would start a task for its write timeout; the
        timeout that matters is the reply's, which the reader keeps. True
        when everything pending went out."""
        connection = self._connection
        if connection is None or self.own_writes is not None or not connection.is_connected:
            return False
        if getattr(connection, "_stroute_replies", None) is None:
            return False  # not a socket this pipeline reads itself (fakeredis's transport)
        if self._master_address is not None and time.monotonic() - self._master_checked >= MASTER_RECHECK_S:
            return False
        writer = connection._writer
        while self._pending:
            if writer.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                return False
            batch = self._take_batch()
            if not batch:
                continue
            try:
                batch = self._with_tracking(connection, batch)
                writer.writelines(self._in_flight(connection, batch))
            except BaseException as exc:
                self._fail(batch, exc)
                asyncio.ensure_future(self._broken(connection, exc))
                continue
            self.writes += 1
            self.commands += len(batch)
        return True

    def _in_flight(self, connection: Any, batch: list[_Entry]) -> list[bytes]:
        """The batch packed, and queued for the reader on `connection`. In
        flight before it is written: the reader must find the batch queued
        when its first reply arrives."""
        packed = _pack([c for commands, _ in batch for c in commands])
        self._inflight.append((connection, batch))
        self._wake_reader()
        return packed

    def _take_batch(self) -> list[_Entry]:
        batch = [entry for entry in self._pending[: self.max_batch] if not entry[1].cancelled()]
        del self._pending[: self.max_batch]
        return batch

    async def _write_pending(self) -> None:
        try:
            while self._pending and not self._closed:
                batch = self._take_batch()
                if not batch:
                    continue
                connection = None
                try:
                    connection = await self._connect()
                    batch = self._with_tracking(connection, batch)
                    packed = self._in_flight(connection, batch)
                    if self.own_writes is None:
                        await connection.send_packed_command(packed, check_health=False)
                    else:
                        # fakeredis runs the commands inside write(): mark
                        # just that, never across an await, where other
                        # coroutines' writes would be taken for ours.
                        with self.own_writes():
                            connection._writer.writelines(packed)
                        await connection._writer.drain()
                except BaseException as exc:
                    self._fail(batch, exc)
                    await self._broken(connection, exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                self.writes += 1
                self.commands += len(batch)
        finally:
            self._writing = False

    async def _connect(self) -> Any:
        if self._connection is not None and self._master_address is not None:
            await self._check_master()
        if self._connection is None:
            connection = self._connection_class(**self._connection_kwargs)
            await connection.connect()
            connection._stroute_replies = _BulkReplies.of(connection)
            self._connection = connection
        return self._connection

    async def _check_master(self) -> None:
        now = time.monotonic()
        if now - self._master_checked < MASTER_RECHECK_S:
            return
        self._master_checked = now
        try:
            address = await self._master_address()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return  # no sentinel answers: keep the connection we have
        connection = self._connection
        if connection is not None and (connection.host, connection.port) != tuple(address):
            self._retire(connection)

    def _retire(self, connection: Any) -> None:
        """No new call goes out on `connection`; it is closed when the last
        call written on it is answered (see _read_replies)."""
        if connection is self._connection:
            self._connection = None
            if not self._awaits_replies(connection):
                asyncio.ensure_future(_disconnect(connection))

    def _awaits_replies(self, connection: Any) -> bool:
        """Whether a batch written on `connection` still waits for replies."""
        return any(entry[0] is connection for entry in self._inflight)

    def _tracking(self) -> Any:
        return self.tracking if self.tracking_from is None else self.tracking_from()

    def _with_tracking(self, connection: Any, batch: list[_Entry]) -> list[_Entry]:
        """The batch, led by CLIENT TRACKING ON when this connection is not yet
        redirected to the listener's current id."""
        tracking = self._tracking()
        redirect = None if tracking is None else tracking.client_id
        if redirect is None or getattr(connection, "_stroute_redirect", None) == redirect:
            return batch
        connection._stroute_redirect = redirect
        answer = asyncio.get_running_loop().create_future()

        def checked(done: asyncio.Future) -> None:
            if done.cancelled():
                return
            error = done.exception()
            if error is None:
                return
            connection._stroute_redirect = None
            if isinstance(error, redis.exceptions.ResponseError):
                tracking.broken(f"CLIENT TRACKING refused: {str(error).strip().splitlines()[0]}")

        answer.add_done_callback(checked)
        on = ("CLIENT", "TRACKING", "ON", "REDIRECT", redirect, "OPTOUT", "NOLOOP")
        return [((on,), answer), *batch]

    # -- reading -------------------------------------------------------------

    def _wake_reader(self) -> None:
        if self._inflight_ready is None:
            self._inflight_ready = asyncio.Event()
        self._inflight_ready.set()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read_replies())

    async def _read_replies(self) -> None:
        assert self._inflight_ready is not None
        while not self._closed:
            if not self._inflight:
                self._inflight_ready.clear()
                await self._inflight_ready.wait()
                continue
            entry = self._inflight[0]
            connection, batch = entry
            replies = connection._stroute_replies
            try:
                for commands, future in batch:
                    for _ in commands:
                        # The last reply is the call's; a CLIENT CACHING NO
                        # before it is answered OK, or refused when tracking
                        # is off, and either way dropped.
                        if replies is not None:
                            reply = replies.next_now()
                            if reply is _NOT_YET:
                                reply = await replies.next()
                        else:
                            try:
                                reply = await connection.read_response()
                            except redis.exceptions.ResponseError as exc:
                                reply = exc
                    if isinstance(reply, redis.exceptions.ReadOnlyError) and self._master_address is not None:
                        # A replica now: Sentinel moved the master. As redis-py's
                        # Sentinel connections do, the call fails as a broken
                        # connection (retry it), not as a refusal.
                        self._retire(connection)
                        reply = redis.exceptions.ConnectionError(
                            f"the master at {connection.host}:{connection.port} is now a read-only replica "
                            "(a Sentinel failover)")
                    if future.done():  # the caller was cancelled; its reply is dropped
                        continue
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
            except BaseException as exc:
                # Every call written on this connection fails; replies
                # already handed out stay (a done future is left alone).
                await self._broken(connection, exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            if self._inflight and self._inflight[0] is entry:
                self._inflight.popleft()
                if connection is not self._connection and not self._awaits_replies(connection):
                    await _disconnect(connection)  # retired, and now answered in full

    # -- failure -------------------------------------------------------------

    async def _broken(self, connection: Any, exc: BaseException) -> None:
        """`connection` is in doubt: fail every call written on it and close
        it. Calls still pending go out on a new connection."""
        error = _as_error(exc)
        for entry in [e for e in self._inflight if e[0] is connection]:
            self._inflight.remove(entry)
            self._fail(entry[1], error)
        if connection is not None and connection is self._connection:
            await self._drop_connection()
        elif connection is not None:
            await _disconnect(connection)

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await _disconnect(connection)

    @staticmethod
    def _fail(batch: list[_Entry], exc: BaseException) -> None:
        error = _as_error(exc)
        for _, future in batch:
            if not future.done():
                future.set_exception(error)


_NOT_YET = object()


class _BulkReplies:
    """Replies read off a connection a socket read at a time, many per read.

    redis-py reads one reply per call, each under its own timeout context,
    which costs more than the command's share of the round trip once a
    thousand replies arrive together. This feeds hiredis's reader with
    whatever the socket has and hands out the replies it parsed, error
    replies as redis-py's exceptions (its own parser's mapping: NOSCRIPT is
    NoScriptError, MOVED is MovedError...). Used after redis-py's connect()
    made the connection (TLS, AUTH, HELLO, SELECT), when hiredis is there.
    """

    __slots__ = ("_reader", "_stream", "_timeout")

    def __init__(self, reader: Any, stream: Any, timeout: float | None) -> None:
        self._reader = reader
        self._stream = stream
        self._timeout = timeout

    @classmethod
    def of(cls, connection: Any) -> "_BulkReplies | None":
        try:
            import hiredis
        except ImportError:
            return None
        parser = getattr(connection, "_parser", None)
        stream = getattr(connection, "_reader", None)
        if parser is None or not isinstance(stream, asyncio.StreamReader) or not hasattr(parser, "parse_error"):
            return None  # not a socket (fakeredis's connections hand over objects, not bytes)
        kwargs: dict[str, Any] = {"protocolError": redis.exceptions.InvalidResponse,
                                  "replyError": parser.parse_error, "notEnoughData": _NOT_YET}
        encoder = getattr(connection, "encoder", None)
        if encoder is not None and encoder.decode_responses:
            kwargs["encoding"] = encoder.encoding
            kwargs["errors"] = encoder.encoding_errors
        try:
            reader = hiredis.Reader(**kwargs)
        except TypeError:  # a hiredis without notEnoughData: redis-py reads instead
            return None
        return cls(reader, stream, getattr(connection, "socket_timeout", None))

    def next_now(self) -> Any:
        """The next reply if it has arrived, else _NOT_YET."""
        return self._reader.gets()

    async def next(self) -> Any:
        reader, stream = self._reader, self._stream
        while True:
            if self._timeout is None:
                data = await stream.read(65536)
            else:
                async with asyncio.timeout(self._timeout):
                    data = await stream.read(65536)
            if not data:
                raise redis.exceptions.ConnectionError("Connection closed by server.")
            reader.feed(data)
            reply = reader.gets()
            if reply is not _NOT_YET:
                return reply


def _as_error(exc: BaseException) -> Exception:
    if isinstance(exc, Exception):
        return exc
    return redis.exceptions.ConnectionError(f"the connection was interrupted ({type(exc).__name__})")


async def _disconnect(connection: Any) -> None:
    try:
        await connection.disconnect()
    except Exception:  # closing a broken socket may fail too; it is gone either way
        pass


# A command redirected more often than this in a row is failed: the slot
# map is changing faster than it can be followed.
MAX_REDIRECTS = 5


class ClusterAutoPipeline:
    """One AutoPipeline per node of a Redis Cluster; each call routed by its key.

    The calls of one loop iteration go out in one write per node. A MOVED
    reply sends that call alone to the node it names and remembers the
    slot's new owner until the slot map, refreshed in the background,
    agrees; an ASK reply sends ASKING and the call, adjacent on one
    connection, to the importing node. Neighbours of a redirected call are
    not affected: each call has its own reply.
    """

    def __init__(self, client: Any, *, max_batch: int = MAX_BATCH) -> None:
        self._client = client  # a redis.asyncio.RedisCluster
        self.max_batch = max_batch
        self._pipelines: dict[str, AutoPipeline] = {}
        self._moved: dict[int, tuple[str, int]] = {}  # slot -> (host, port) until the map agrees
        self._refresh: asyncio.Task | None = None
        self._initialized = False
        self._initializing: asyncio.Future | None = None
        self._closed = False
        self.redirects = 0
        # Set by the asyncio driver's invalidation source: the Tracking of a
        # node by its name ("host:port"), and who hears of a MOVED or ASK.
        self.tracking_of: Any = None
        self.on_redirect: Any = None

    async def call(self, key: str, *args: Any) -> Any:
        """Run one command whose keys share `key`'s slot; its reply, or
        redis-py's exception for its error reply."""
        if not self._initialized:
            # One shared read of the slot map: the calls that waited for it
            # resume together, in one iteration, and still share writes.
            if self._initializing is None:
                self._initializing = asyncio.ensure_future(self._client.initialize())
            try:
                await asyncio.shield(self._initializing)
            except BaseException:
                if self._initializing.done():
                    self._initializing = None  # a failed read is tried again by the next call
                raise
            self._initialized = True
        slot = self._client.keyslot(key)
        address = self._moved.get(slot) or _address(self._client.get_node_from_key(key))
        asking = False
        for _ in range(MAX_REDIRECTS + 1):
            pipeline = self._pipeline(address)
            if asking:
                pipeline.call("ASKING")
            try:
                return await pipeline.call(*args)
            except redis.exceptions.AskError as exc:
                address, asking = (exc.host, int(exc.port)), True
                redirected = exc
            except redis.exceptions.MovedError as exc:
                address, asking = (exc.host, int(exc.port)), False
                self._moved[exc.slot_id] = address
                self._refresh_slots()
                redirected = exc
            self.redirects += 1
            if self.on_redirect is not None:
                # A read answered by another node than the one tracked for
                # its slot must not be trusted by a cache.
                self.on_redirect(f"Redis Cluster redirected a command ({redirected})")
        raise redis.exceptions.ClusterError(
            f"slot {slot} was redirected more than {MAX_REDIRECTS} times in a row")

    async def close(self) -> None:
        self._closed = True
        if self._refresh is not None:
            self._refresh.cancel()
            try:
                await self._refresh
            except (asyncio.CancelledError, Exception):
                pass
        for pipeline in list(self._pipelines.values()):
            await pipeline.close()
        self._pipelines.clear()

    @property
    def writes(self) -> int:
        return sum(p.writes for p in self._pipelines.values())

    def _pipeline(self, address: tuple[str, int]) -> AutoPipeline:
        name = f"{address[0]}:{address[1]}"
        pipeline = self._pipelines.get(name)
        if pipeline is None:
            if self._closed:
                raise PipelineClosed("the pipeline is closed")
            # Every node is reached with the client's settings (TLS,
            # credentials, timeouts); only the address differs.
            node = self._client.get_default_node() or self._client.get_nodes()[0]
            kwargs = {**node.connection_kwargs, "host": address[0], "port": address[1]}
            pipeline = AutoPipeline(node.connection_class, kwargs, max_batch=self.max_batch)
            pipeline.tracking_from = lambda: None if self.tracking_of is None else self.tracking_of(name)
            self._pipelines[name] = pipeline
        return pipeline

    def _refresh_slots(self) -> None:
        """Re-read the slot map once, in the background, for however many MOVED replies."""
        if self._refresh is not None and not self._refresh.done():
            return

        async def refresh() -> None:
            try:
                await self._client.nodes_manager.initialize()
            except redis.exceptions.RedisError:
                return  # the remembered redirections keep routing meanwhile
            self._moved.clear()

        self._refresh = asyncio.ensure_future(refresh())


def _address(node: Any) -> tuple[str, int]:
    return node.host, int(node.port)
