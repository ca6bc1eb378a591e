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
from typing import Any

# Bumped in a forked child: connections made before the fork belong to the parent.
_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)

try:
    from hiredis import pack_command as _pack_command
except ImportError:  # redis-py's own packer then
    _pack_command = None

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

    Thread-safe: each call holds its connection alone, and the idle stack is
    only pushed and popped (atomic list operations).
    """

    def __init__(self, pool: Any) -> None:
        self._connection_class = pool.connection_class
        self._connection_kwargs = pool.connection_kwargs
        self._idle: list[Any] = []
        self._generation = _generation
        self._closed = False
        self._lock = threading.Lock()  # only for close() against late releases

    def call(self, *args: Any) -> Any:
        """One command and its reply; an error reply raises redis-py's exception for it."""
        import redis

        conn = self._acquire()
        try:
            packed = _pack(conn, [args])
            try:
                conn.send_packed_command(packed)
                reply = conn.read_response()
            except redis.ConnectionError:
                # A connection that died while idle (Redis restarted, or closed
                # it): once more on a fresh connection, as redis-py's retry does.
                conn.disconnect()
                conn.send_packed_command(packed)
                reply = conn.read_response()
        except redis.exceptions.ResponseError:
            self._release(conn)  # an error reply: the connection is in step
            raise
        except BaseException:
            conn.disconnect()
            self._release(conn)  # closed: the stack or pool opens a new socket next time
            raise
        self._release(conn)
        return reply

    def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Commands sent in one write, replies in order; an error reply is
        returned in its place as redis-py's exception for it, not raised."""
        import redis

        conn = self._acquire()
        try:
            packed = _pack(conn, commands)
            try:
                conn.send_packed_command(packed)
                replies = _read_replies(conn, len(commands))
            except redis.ConnectionError:
                conn.disconnect()  # as in call(): once more on a fresh connection
                conn.send_packed_command(packed)
                replies = _read_replies(conn, len(commands))
        except BaseException:
            conn.disconnect()
            self._release(conn)
            raise
        self._release(conn)
        return replies

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            _disconnect(conn)

    def _acquire(self) -> Any:
        if self._generation != _generation:
            self._idle = []  # the parent's sockets: forget them, do not close them
            self._generation = _generation
        try:
            return self._idle.pop()
        except IndexError:
            return self._connection_class(**self._connection_kwargs)

    def _release(self, conn: Any) -> None:
        if self._closed or len(self._idle) >= MAX_IDLE:
            _disconnect(conn)
            return
        self._idle.append(conn)
        if self._closed:  # close() ran meanwhile and may have missed it
            with self._lock:
                idle, self._idle = self._idle, []
            for other in idle:
                _disconnect(other)


def _pack(conn: Any, commands: list[tuple[Any, ...]]) -> Any:
    """The commands in Redis's protocol: by hiredis in one pass when it is
    installed (redis-py's packer walks every argument in Python first)."""
    if _pack_command is None:
        return conn.pack_commands(commands)
    return [b"".join(map(_pack_command, commands))]


def _read_replies(conn: Any, count: int) -> list[Any]:
    from redis.exceptions import ResponseError

    replies: list[Any] = []
    read = conn.read_response
    for _ in range(count):
        try:
            replies.append(read())
        except ResponseError as exc:
            replies.append(exc)
    return replies


def _disconnect(conn: Any) -> None:
    try:
        conn.disconnect()
    except Exception:  # closing must never raise
        pass


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
