"""The store for asyncio: the drivers' operations (`stroute.store.domain`) over
automatic pipelining (`stroute.autopipeline`).

Every command that concurrent coroutines send in one loop iteration goes out
in one write, on one connection per Redis node; each caller gets its own
reply or error. The operations, their validation, errors and replies are
the sync Store's: only the transport differs.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable

from stroute import names
from stroute.store import domain
from stroute.autopipeline import MAX_BATCH, AutoPipeline, ClusterAutoPipeline
from stroute.errors import CorruptData, StoreError
from stroute.keys import DEFAULT_LAYOUT, KeySpace, keyspace, layout_class
from stroute.store.domain import Link, Published, SetIfAbsent, script_source


class AsyncStore:
    """The drivers' Redis operations, as coroutines.

    `client` is a redis.asyncio client (or fakeredis's) made with
    decode_responses=True, as `backends.connect_async` makes them; `where`
    is the redacted URL, used in error messages.
    """

    def __init__(self, client: Any, *, prefix: str | None = None, where: str = "redis",
                 layout: str = DEFAULT_LAYOUT, max_batch: int = MAX_BATCH) -> None:
        from redis.asyncio.cluster import RedisCluster

        from stroute.errors import ConfigError

        self.client = client
        self.layout = layout
        self.prefix = names.prefix(prefix or layout_class(layout).default_prefix)
        self.where = where
        self.cluster = isinstance(client, RedisCluster)
        if self.cluster and not layout_class(layout).one_slot:
            raise ConfigError(
                f"layout {layout} does not run on Redis Cluster ({where}): it keeps a user's link and "
                "link index under different hash tags, so no script can change both at once there; "
                "use a single Redis or Sentinel, or layout homo-go")
        if self.cluster:
            self._pipe: Any = ClusterAutoPipeline(client, max_batch=max_batch)
        else:
            self._pipe = AutoPipeline.for_client(client, max_batch=max_batch)
        self._keyspaces: dict[str, KeySpace] = {}
        self._loading: dict[str, asyncio.Future] = {}  # script name -> its SCRIPT LOAD in flight
        self._shared: dict[tuple, asyncio.Future] = {}  # a shared command's args -> its reply in flight

    @classmethod
    def from_url(cls, url: str, *, prefix: str | None = None, options: Any = None,
                 layout: str = DEFAULT_LAYOUT) -> "AsyncStore":
        from stroute.backends import connect_async, redact

        layout_class(layout)  # a bad layout is refused before connecting
        return cls(connect_async(url, options), prefix=prefix, where=redact(url), layout=layout)

    @property
    def pipeline(self) -> Any:
        """The AutoPipeline (ClusterAutoPipeline on a cluster) every command goes through."""
        return self._pipe

    async def close(self) -> None:
        await self._pipe.close()
        try:
            await self.client.aclose()
        except Exception:  # closing must never raise
            pass

    async def __aenter__(self) -> "AsyncStore":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def keys(self, namespace: str) -> KeySpace:
        ks = self._keyspaces.get(namespace)
        if ks is None:
            ks = self._keyspaces[namespace] = keyspace(self.layout, self.prefix, namespace)
        return ks

    def follow_tracking(self, store: Any) -> None:
        """Track this store's reads for the invalidation source of `store`, a
        sync Store on the same deployment (its listener threads hear Redis's
        invalidations): each connection turns CLIENT TRACKING on, redirected
        to that source's listener, and a cluster redirect is reported to it."""
        if self.cluster:
            self._pipe.tracking_of = store._node_tracking.get

            def redirected(reason: str) -> None:
                if store.on_topology_change is not None:
                    store.on_topology_change(reason)

            self._pipe.on_redirect = redirected
        elif store._direct is not None:
            direct = store._direct
            self._pipe.tracking_from = lambda: direct.tracking

    # --- the transport -----------------------------------------------------

    async def run(self, op: domain.Op) -> Any:
        """Run one of `stroute.store.domain`'s operations."""
        # domain.run's loop, awaiting each step. The common step (one
        # command, not shared) is sent inline: a placement is a few of these,
        # and each coroutine layer costs about as much as the command's share
        # of a write.
        import redis

        command_type, send, where = domain.Command, self._send, self.where
        try:
            step = op.send(None)
            while True:
                try:
                    if type(step) is command_type and not step.shared:
                        try:
                            try:
                                reply = await send(step)
                            except redis.exceptions.NoScriptError:
                                await self._load(step)  # Redis lost it: load it, send once more
                                reply = await send(step)
                        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
                            raise domain.translate(exc, where) from None
                    else:
                        reply = await self._execute(step)
                except StoreError as exc:
                    step = op.throw(exc)
                else:
                    step = op.send(reply)
        except StopIteration as stop:
            return stop.value
        except BaseException:
            op.close()  # its finally blocks run now, not whenever the traceback goes
            raise

    async def _execute(self, step: domain.Step) -> Any:
        if isinstance(step, domain.Command):
            return await self._one(step)
        # Started together, the calls are queued in one loop iteration: one
        # write per node. Each keeps its own reply or error.
        replies = await asyncio.gather(*(self._one(command) for command in step), return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException) and not isinstance(reply, StoreError):
                raise reply  # a cancellation, or a bug: not a reply
        return replies

    async def _one(self, command: domain.Command) -> Any:
        if not command.shared:
            return await self._one_sent(command)
        pending = self._shared.get(command.args)
        if pending is None:
            pending = self._shared[command.args] = asyncio.ensure_future(self._one_sent(command))
            pending.add_done_callback(lambda done: (self._shared.pop(command.args, None), _retrieved(done)))
        return await asyncio.shield(pending)

    async def _one_sent(self, command: domain.Command) -> Any:
        import redis

        try:
            try:
                return await self._send(command)
            except redis.exceptions.NoScriptError:
                # Redis restarted or was flushed: load the script where the
                # command goes, and send the command once more.
                await self._load(command)
                return await self._send(command)
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            raise domain.translate(exc, self.where) from None

    async def _load(self, command: domain.Command) -> None:
        """SCRIPT LOAD for a command Redis answered NOSCRIPT. On one server the
        calls that met NOSCRIPT together share one load."""
        load = domain.Command(("SCRIPT", "LOAD", script_source(command.script)), command.key)
        if self.cluster:
            await self._send(load)
            return
        pending = self._loading.get(command.script)
        if pending is None:
            pending = self._loading[command.script] = asyncio.ensure_future(self._send(load))
            pending.add_done_callback(lambda done: (self._loading.pop(command.script, None), _retrieved(done)))
        await asyncio.shield(pending)

    def _send(self, command: domain.Command) -> Any:
        pipe = self._pipe
        if self.cluster:
            return pipe.call(command.key or "", *command.args)
        if command.untracked:
            return pipe.call_untracked(*command.args)
        return pipe.call(*command.args)

    async def ping(self) -> bool:
        return await self.run(_ping()) in ("PONG", b"PONG", True)

    # --- links -------------------------------------------------------------

    async def get(self, namespace: str, uid: str, service: str) -> Link | None:
        return await self.run(domain.get(self.keys(namespace), uid, service))

    async def set(self, namespace: str, uid: str, service: str, pod: int, ttl_ms: int | None = None) -> int | None:
        """Force the link; returns the previous pod or None."""
        return await self.run(domain.set_link(self.keys(namespace), uid, service, pod, ttl_ms))

    async def try_set(self, namespace: str, uid: str, service: str, pod: int,
                      ttl_ms: int | None = None) -> tuple[bool, int]:
        return await self.run(domain.try_set(self.keys(namespace), uid, service, pod, ttl_ms))

    async def set_if_absent(self, namespace: str, uid: str, service: str, pod: int,
                            ttl_ms: int | None = None) -> SetIfAbsent:
        return await self.run(domain.set_if_absent(self.keys(namespace), uid, service, pod, ttl_ms))

    async def set_if_absent_many(self, namespace: str, service: str, wanted: Iterable[tuple[str, int]],
                                 ttl_ms: int | None = None) -> list[SetIfAbsent | CorruptData]:
        return await self.run(domain.set_if_absent_many(self.keys(namespace), service, wanted, ttl_ms))

    async def move(self, namespace: str, uid: str, service: str, expected: int,
                   new: int) -> tuple[bool, int | None]:
        return await self.run(domain.move(self.keys(namespace), uid, service, expected, new))

    async def remove(self, namespace: str, uid: str, service: str, *, after_ms: int = 0,
                     if_pod: int | None = None) -> tuple[bool, int | None]:
        return await self.run(domain.remove(self.keys(namespace), uid, service, after_ms=after_ms, if_pod=if_pod))

    async def links_of(self, namespace: str, uid: str) -> dict[str, int]:
        return await self.run(domain.links_of(self.keys(namespace), uid))

    async def batch_pods(self, namespace: str, uids: list[str], service: str) -> list[int | None]:
        return await self.run(domain.batch_pods(self.keys(namespace), uids, service, cluster=self.cluster))

    async def batch_get(self, namespace: str, uids: list[str], service: str) -> dict[str, int | None]:
        return dict(zip(uids, await self.batch_pods(namespace, uids, service)))

    # --- pod states --------------------------------------------------------

    async def snapshot(self, namespace: str, service: str, *, expire_ms: int, gateway: str | None = None,
                       gateway_expire_ms: int = 0):
        return await self.run(domain.snapshot(self.keys(namespace), service, expire_ms=expire_ms,
                                                gateway=gateway, gateway_expire_ms=gateway_expire_ms))

    async def leave_gateways(self, namespace: str, services: list[str], gateway: str) -> None:
        await self.run(domain.leave_gateways(self.keys(namespace), services, gateway))

    async def publish_state(self, namespace: str, service: str, pod: int, **kwargs: Any) -> Published:
        return await self.run(domain.publish_state(self.keys(namespace), service, pod, cluster=self.cluster,
                                                     **kwargs))

    async def remove_state(self, namespace: str, service: str, pod: int) -> bool:
        return await self.run(domain.remove_state(self.keys(namespace), service, pod))

    # --- tags --------------------------------------------------------------

    async def get_tag(self, namespace: str, tag: str) -> str | None:
        return await self.run(domain.get_tag(self.keys(namespace), tag))


def _retrieved(done: asyncio.Future) -> None:
    """Mark a shared task's error as seen: its waiters may all have gone."""
    if not done.cancelled():
        done.exception()


def _ping() -> domain.Op[Any]:
    return (yield domain.Command(("PING",), None))
