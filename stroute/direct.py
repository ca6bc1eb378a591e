"""Single round trips on reused connections, without redis-py's per-command machinery.

For each command redis-py's client takes a connection from its pool, polls
the socket to be sure no stray reply waits on it, wraps the call in a retry
closure, records observability counters, runs response callbacks and hands
the connection back. On a small machine that costs about as much as the
round trip itself, and a placement is one round trip: the hot path (one
EVALSHA per new user, one per heartbeat) goes through here instead.

The rules stay redis-py's: connections are made by the client's own pool
class and settings (TLS, credentials, timeouts, client name); a broken
connection is closed and the command sent once more on a fresh one (the one
retry stroute configures); a connection in doubt (timeout, interrupt,
anything but a complete reply) is closed, never reused, which is what makes
the stray-reply poll unnecessary; after a fork the child opens its own.
"""

from __future__ import annotations

import os
import threading
from itertools import repeat as _repeat
from typing import Any, Callable, Iterator, NamedTuple

# Bumped in a forked child: connections made before the fork belong to the parent.
_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis-py's own packer then
    _hiredis_pack = None

_NUMBERS = frozenset((int, float))


def _pack_command(command: tuple[Any, ...]) -> bytes:
    """hiredis's pack_command, given numbers as text.

    hiredis turns an int or a float into text with PyObject_Repr and does not
    check the result. That repr fails when a signal is pending (the Ctrl-C
    that stops a drain), and the process then dies of a segmentation fault
    instead of exiting 130. A number is made text here first, as hiredis
    would make it (repr), so only strings and bytes reach it.
    """
    return _hiredis_pack(_numbers_as_text(command))


def _numbers_as_text(args: tuple[Any, ...]) -> tuple[Any, ...]:
    if _NUMBERS.isdisjoint(map(type, args)):
        return args
    return tuple([repr(arg) if type(arg) in _NUMBERS else arg for arg in args])


def safe_command_packer() -> Any:
    """A command packer for redis-py's connections (its `command_packer`
    argument) that gives hiredis numbers as text, as _pack_command does; None
    without hiredis, where redis-py packs in Python and nothing crashes."""
    if _hiredis_pack is None:
        return None
    from redis.connection import HiredisRespSerializer

    class SafeHiredisPacker(HiredisRespSerializer):
        def pack(self, *args: Any) -> list[bytes]:
            return super().pack(*_numbers_as_text(args))

    return SafeHiredisPacker()


# What the bulk reply reader (_read_bulk) needs of redis-py and hiredis,
# looked up on first use (importing redis here would slow every command's
# start): it reads a connection's hiredis reader itself, where the
# connection class reads replies redis-py's plain way.
_bulk_found: Any = None


class _BulkNeeds(NamedTuple):
    parser: Any  # redis-py's hiredis parser class
    read_response: Any  # the plain Connection.read_response
    not_enough_data: Any  # what the reader returns when a reply is incomplete
    push: Any  # hiredis's RESP3 push type, or None
    special: tuple[type, ...]  # what the reader looks at twice: error replies and pushes


def _bulk_needs() -> _BulkNeeds | None:
    global _bulk_found
    if _bulk_found is None:
        try:
            import hiredis
            from redis._parsers.hiredis import NOT_ENOUGH_DATA, _HiredisParser
            from redis.connection import AbstractConnection

            push = getattr(hiredis, "PushNotification", None)
            _bulk_found = _BulkNeeds(_HiredisParser, AbstractConnection.read_response, NOT_ENOUGH_DATA, push,
                               (Exception,) if push is None else (Exception, push))
        except ImportError:  # no hiredis, or a redis-py laid out otherwise: replies one by one
            _bulk_found = False
    return _bulk_found or None


_CACHING_NO = ("CLIENT", "CACHING", "NO")

# Idle connections kept for reuse; a burst from more threads than this opens
# (and then closes) extra ones.
MAX_IDLE = 32


def for_client(client: Any) -> "DirectCommands | None":
    """The way to send `client`'s single commands directly; None for a cluster client,
    which routes each command by key and must keep its own path."""
    import redis

    if not isinstance(client, redis.Redis):
        return None
    if type(client.connection_pool) is redis.ConnectionPool:
        return DirectCommands(client.connection_pool)
    # A Sentinel pool asks where the master is when it hands out a
    # connection, so a failover is followed: its connections are borrowed.
    return PooledCommands(client.connection_pool)


class DirectCommands:
    """Runs one command at a time per connection, on connections it keeps.

    Thread-safe: each call holds its connection alone; the idle stack is
    pushed and popped under a lock (uncontended, it costs next to nothing).
    """

    def __init__(self, pool: Any) -> None:
        self._connection_class = pool.connection_class
        self._connection_kwargs = pool.connection_kwargs
        self._idle: list[Any] = []
        self._generation = _generation
        self._closed = False
        self._lock = threading.Lock()
        # Set by an invalidation source (stroute.invalidation): every connection
        # then turns CLIENT TRACKING on, redirected to the source's listener.
        self.tracking: Any = None

    def call(self, *args: Any) -> Any:
        """One command and its reply; an error reply raises redis-py's exception for it."""
        return self._run(_pack([args]), 1)[0]

    def pipeline(self, commands: list[tuple[Any, ...]], *, untracked: bool = False) -> list[Any]:
        """Commands sent in one write, replies in order; an error reply is
        returned in its place as redis-py's exception for it, not raised.

        `untracked`: with tracking on, Redis is asked not to remember the keys
        these commands read (CLIENT CACHING NO before each, as OPTOUT mode
        allows): a batch read whose answers are not cached would fill Redis's
        tracking table and bring invalidations nobody needs. Where tracking
        is not on, Redis refuses CLIENT CACHING, and the refusal is dropped.
        """
        if not untracked or self.tracking is None:
            return self._run(_pack(commands), len(commands), keep_errors=True)
        mixed = [part for command in commands for part in (_CACHING_NO, command)]
        return self._run(_pack(mixed), len(mixed), keep_errors=True)[1::2]

    def chain(self, commands: list[Any], follow: Callable[[Any], list[Any] | None]) -> Iterator[list[Any]]:
        """Pipelines of reads on one connection, each one's replies yielded in
        turn; `follow(first)` gives the next pipeline from the first reply of
        the last one (None: the chain ends). A pipeline is a list of command
        tuples and Packed commands.

        The next pipeline is written as soon as that first reply is in, while
        Redis still works on the rest of the last one, and before its replies
        are yielded: Redis always has the next page of a SCAN walk to work
        on while this process reads and builds the last one. An error reply
        raises (redis-py's exception) once its pipeline is read. Closing the
        iterator early, or any exception, with a pipeline unanswered, closes
        the connection: its late replies must not answer another command. A
        broken connection is replaced and the unanswered pipelines sent once
        more, as `_run` does.
        """
        import redis

        conn = self._acquire()
        # Pipelines written and not yet answered in full, oldest first:
        # [packed, count, whether follow() has had its first reply].
        flight: list[list[Any]] = []
        try:
            try:
                conn.connect()  # a refused connection raises here (redis-py 5.0 would write on nothing)
                self._ready(conn)
            except redis.ConnectionError:
                conn.disconnect()
                conn.connect()
                self._ready(conn)
            _write(conn, flight, commands)
            retried = False
            while flight:
                oldest = flight[0]
                try:
                    replies = _read_replies(conn, 1, True)
                    if not oldest[2]:
                        oldest[2] = True
                        following = None if isinstance(replies[0], Exception) else follow(replies[0])
                        if following is not None:
                            _write(conn, flight, following)
                    replies += _read_replies(conn, oldest[1] - 1, True)
                except redis.ConnectionError:
                    if retried:
                        raise
                    retried = True
                    conn.disconnect()
                    conn.connect()  # through connect(), so a Sentinel connection asks where the master is now
                    self._ready(conn)
                    conn.send_packed_command([part for packed, _, _ in flight for part in packed])
                    continue
                retried = False
                flight.pop(0)
                for reply in replies:
                    if isinstance(reply, Exception):
                        raise reply
                yield replies
        finally:
            if flight:
                conn.disconnect()
            self._release(conn)

    def _ready(self, conn: Any) -> None:
        """With tracking, a connection not yet redirected to the listener's
        current id turns it on (see _send) before a chain writes on it."""
        tracking = self.tracking
        redirect = None if tracking is None else tracking.client_id
        if redirect is not None and getattr(conn, "_stroute_redirect", None) != redirect:
            self._send(conn, _pack([("PING",)]), 1, False)

    def _run(self, packed: Any, count: int, *, keep_errors: bool = False) -> list[Any]:
        """Send packed commands and read their `count` replies.

        A connection that breaks (Redis restarted, or closed an idle
        connection) is replaced and the commands sent once more, as redis-py's
        retry does; like it, this can run a command twice when the connection
        broke after Redis ran it, which stroute's scripts tolerate (setting a
        link that is already set reports the link it finds). A timeout is not
        retried: a hung server costs one socket timeout.
        """
        import redis

        conn = self._acquire()
        try:
            try:
                replies = self._send(conn, packed, count, keep_errors)
            except redis.ConnectionError:
                conn.disconnect()
                conn.connect()  # through connect(), so a Sentinel connection asks where the master is now
                replies = self._send(conn, packed, count, keep_errors)
        except redis.exceptions.ResponseError:
            self._release(conn)  # a complete error reply: the connection is in step
            raise
        except BaseException:
            conn.disconnect()
            self._release(conn)  # closed: it reconnects when next used
            raise
        self._release(conn)
        return replies

    def _send(self, conn: Any, packed: Any, count: int, keep_errors: bool) -> list[Any]:
        """Write the commands and read their replies; with tracking, a connection
        not yet redirected to the listener's current id turns it on first, in
        the same write."""
        tracking = self.tracking
        redirect = None if tracking is None else tracking.client_id
        if redirect is None or getattr(conn, "_stroute_redirect", None) == redirect:
            conn.send_packed_command(packed)
            return _read_replies(conn, count, keep_errors)
        if not hasattr(conn, "_stroute_redirect"):
            # Public from redis-py 5.0.2 on (5.0.1 named it with an underscore).
            register = getattr(conn, "register_connect_callback", None) or conn._register_connect_callback
            register(self._forget_redirect)
        conn._stroute_redirect = None
        on = _pack([("CLIENT", "TRACKING", "ON", "REDIRECT", redirect, "OPTOUT", "NOLOOP")])
        conn.send_packed_command(on + packed)
        answer = _read_replies(conn, 1, True)[0]
        replies = _read_replies(conn, count, keep_errors)
        if isinstance(answer, Exception):
            tracking.broken(f"CLIENT TRACKING refused: {str(answer).strip().splitlines()[0]}")
        else:
            conn._stroute_redirect = redirect
        return replies

    def _forget_redirect(self, conn: Any) -> None:
        conn._stroute_redirect = None  # a new socket: Redis knows nothing of the old one's tracking

    def close(self) -> None:
        # Not a plain `with self._lock`: a KeyboardInterrupt that landed just
        # after another call took the lock can leave it held, and close() runs
        # as the process ends; closing must never hang.
        locked = self._lock.acquire(timeout=1)
        try:
            self._closed = True
            idle, self._idle = self._idle, []
        finally:
            if locked:
                self._lock.release()
        for conn in idle:
            _disconnect(conn)

    def _acquire(self) -> Any:
        if self._generation != _generation:
            # A forked child: the parent's sockets are forgotten, not closed,
            # and the lock is new (another thread may have held it at the fork).
            self._lock = threading.Lock()
            self._idle = []
            self._generation = _generation
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connection_class(**self._connection_kwargs)

    def _release(self, conn: Any) -> None:
        should_reconnect = getattr(conn, "should_reconnect", None)  # redis-py 6+: the server asked to move
        if should_reconnect is not None and should_reconnect():
            _disconnect(conn)
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        _disconnect(conn)


class PooledCommands(DirectCommands):
    """DirectCommands on connections borrowed from the client's pool for each call."""

    def __init__(self, pool: Any) -> None:
        super().__init__(pool)
        self._pool = pool

    def close(self) -> None:
        self._closed = True  # the pool's owner closes its connections

    def _acquire(self) -> Any:
        return self._pool.get_connection()

    def _release(self, conn: Any) -> None:
        self._pool.release(conn)


class Packed(NamedTuple):
    """Commands already in Redis's protocol (see pack_per_key), and how many
    they are; chain() takes them among its command tuples."""

    data: bytes
    count: int


def pack_per_key(keys: list[str], *, together: tuple[str, ...] = (), each: tuple[str, ...] = ()) -> Packed:
    """Commands over many keys, packed in one pass over the keys: each
    command of `together` once with every key (MGET k1 k2 ...), then each
    command of `each` once per key (PTTL k1, PTTL k2, ...). A listing sends
    a PTTL per link; packing each through the general packer costs more than
    the round trip's share."""
    import redis

    try:
        args = [b"$%d\r\n%s\r\n" % (len(key), key) for key in map(str.encode, keys)]
    except UnicodeEncodeError as exc:
        raise redis.DataError(f"cannot send {type(exc).__name__}: {exc}") from None
    if not args:
        return Packed(b"", 0)
    parts = []
    for command in together:
        parts.append(b"*%d\r\n" % (len(args) + 1) + _bulk_string(command))
        parts.extend(args)
    for command in each:
        lead = b"*2\r\n" + _bulk_string(command)
        parts.append(lead)
        parts.append(lead.join(args))
    return Packed(b"".join(parts), len(together) + len(each) * len(args))


def _bulk_string(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _write(conn: Any, flight: list[list[Any]], commands: list[Any]) -> None:
    """Write a chain's pipeline and count it in flight; a write that breaks
    the connection is left for the read that follows to find and retry."""
    import redis

    packed = _pack(commands)
    flight.append([packed, _count(commands), False])
    try:
        conn.send_packed_command(packed)
    except redis.ConnectionError:
        pass


def _count(commands: list[Any]) -> int:
    return sum(part.count if type(part) is Packed else 1 for part in commands)


def _pack(commands: list[Any]) -> list[bytes]:
    """The commands in Redis's protocol, packed before a connection is taken:
    by hiredis in one pass (redis-py's packer walks every argument in Python
    first), else by redis-py's own packer. A Packed part is taken as it is."""
    import redis

    if any(type(part) is Packed for part in commands):
        return [b"".join(part.data if type(part) is Packed else _pack([part])[0] for part in commands)]
    try:
        if _hiredis_pack is not None:
            return [b"".join(map(_pack_command, commands))]
        from redis.connection import PythonRespSerializer

        serializer = PythonRespSerializer(6000, redis.connection.Encoder("utf-8", "strict", False).encode)
        return [b"".join(part for command in commands for part in serializer.pack(*command))]
    except (TypeError, UnicodeEncodeError) as exc:
        raise redis.DataError(f"cannot send {type(exc).__name__}: {exc}") from None


def _read_replies(conn: Any, count: int, keep_errors: bool) -> list[Any]:
    """The next `count` replies on conn. An error reply is returned in its place
    with `keep_errors`, else the first one raises once all `count` are read (so
    the connection stays in step)."""
    parser = getattr(conn, "_parser", None)
    needs = _bulk_needs()
    if needs is not None and type(parser) is needs.parser and type(conn).read_response is needs.read_response:
        replies = _read_bulk(conn, parser, count, needs)
    else:
        replies = _read_one_by_one(conn, count)
    if not keep_errors:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return replies


def _read_one_by_one(conn: Any, count: int) -> list[Any]:
    from redis.exceptions import ResponseError

    replies: list[Any] = []
    read = conn.read_response
    for _ in range(count):
        try:
            replies.append(read())
        except ResponseError as exc:
            replies.append(exc)
    return replies


def _read_bulk(conn: Any, parser: Any, count: int, needs: _BulkNeeds) -> list[Any]:
    """`count` replies straight from the connection's hiredis reader: each recv
    is drained of every reply it completed, in a loop that does nothing else.

    Going through conn.read_response costs a few microseconds of Python per
    reply; a listing reads a PTTL reply per link. What read_response does per
    reply is done here per batch: an error reply stays in place (a
    ResponseError, as hiredis's reader builds it for redis-py), a connection
    error among the replies is raised, a RESP3 push is handed to the parser's
    handler and not counted, and a socket error is raised as redis-py's
    ConnectionError or TimeoutError. The caller closes the connection on any
    exception but a ResponseError, as it does for read_response's.
    """
    import redis

    reader = getattr(parser, "_reader", None)  # set once connected, None once closed
    if reader is None:
        raise redis.ConnectionError("Connection closed by server.")
    gets, more, not_enough_data, special = reader.gets, parser.read_from_socket, needs.not_enough_data, needs.special
    replies: list[Any] = []
    append = replies.append
    try:
        while True:
            for _ in range(count - len(replies)):
                reply = gets()
                if reply is not_enough_data:
                    more()
                    break
                append(reply)
            else:
                if not any(map(isinstance, replies, _repeat(special))):
                    return replies
                replies = _special_replies(parser, replies, needs.push)
                if len(replies) == count:
                    return replies
                append = replies.append
    except OSError as exc:  # what read_response turns a socket error into
        if isinstance(exc, TimeoutError):
            raise redis.TimeoutError(f"Timeout reading from {conn._host_error()}") from None
        raise redis.ConnectionError(f"Error while reading from {conn._host_error()} : {exc.args}") from None


def _special_replies(parser: Any, replies: list[Any], push: Any) -> list[Any]:
    """replies without RESP3 pushes (handed to the parser's handler); a
    connection error raises, as read_response does."""
    import redis

    kept = []
    for reply in replies:
        if push is not None and isinstance(reply, push):
            parser.handle_push_response(reply)
            continue
        if isinstance(reply, redis.ConnectionError):
            raise reply
        kept.append(reply)
    return kept


def _disconnect(conn: Any) -> None:
    try:
        conn.disconnect()
    except Exception:  # closing must never raise
        pass
