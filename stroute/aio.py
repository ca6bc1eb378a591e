"""stroute for asyncio: the client driver as coroutines, with automatic pipelining.

`AsyncClientDriver` offers every method of `ClientDriver`, the seed's names
included, as coroutines. Its decisions are the sync driver's
(`stroute.clientcore`): the same validation, errors, Lua scripts, placement
strategies, coherent cache, stats and config. Only the waiting differs:
every command that concurrent coroutines send in one loop iteration goes out
in one write (`stroute.autopipeline`), so a gateway serving a thousand
requests at once pays for a few round trips, not a thousand.

    driver = AsyncClientDriver(config)
    pod = await driver.compute_linked_pod("default", uid, "game")
    ...
    await driver.close()
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Iterable

from stroute.clientcore import BatchLinks, ClientCore, Explanation, Placement, log
from stroute.config import Config
from stroute.errors import StrouteError
from stroute.podstate import Snapshot
from stroute.store import Link, SetIfAbsent

__all__ = ["AsyncClientDriver", "Placement", "Explanation", "BatchLinks"]


class AsyncClientDriver(ClientCore):
    """Computes and caches user -> pod links of one namespace, for asyncio.

    Give it a Config (namespace, Redis URL, TTLs, strategy) or a ready
    AsyncStore. Use it from one event loop. With a coherent cache (the
    default) its invalidation channel runs on a listener thread, as the sync
    driver's does, and the cache is shared safely with it.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        store: Any = None,
        clock: Callable[[], float] = time.monotonic,
        cache_max_entries: int = 100_000,
        coherent: bool | None = None,
    ) -> None:
        from stroute import config as config_module

        config = config or config_module.load()
        config_module.validate(config)
        self._owns_store = store is None
        store = store or config.open_async_store()
        super().__init__(config, store, clock=clock, cache_max_entries=cache_max_entries)
        self._perform = store.run
        # The invalidation channel listens on its own connection, from a
        # thread, as the sync driver's does; the sync store it is opened on
        # is never used for commands, only to make that connection.
        self._listening = None
        wants = config.links.coherent if coherent is None else coherent
        if wants and self.cache.lifetime > 0:
            self._listening = config.open_store()
            store.follow_tracking(self._listening)
        self._open_source(coherent, self._listening)
        own_writes = getattr(self.source, "own_writes", None)  # memory://'s in-process source
        if own_writes is not None and not store.cluster:
            store.pipeline.own_writes = own_writes

    # --- lifecycle -------------------------------------------------------------

    async def close(self) -> None:
        try:
            await self._perform(self._leave_op())
        except StrouteError as exc:  # it then leaves the count when its registration expires
            log.info("could not leave the live gateways: %s", exc)
        self._close_source()
        if self._listening is not None:
            self._listening.close()
            self._listening = None
        if self._owns_store:
            await self.store.close()

    async def __aenter__(self) -> "AsyncClientDriver":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_coherent(self, timeout: float = 5.0) -> bool:
        """Wait until cached answers can be served (the invalidation channel is
        confirmed); False if it is not within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.cache.trusted():
            if self.source is None or time.monotonic() >= deadline:
                return self.cache.trusted()
            await asyncio.sleep(0.005)
        return True

    # --- the state snapshot ------------------------------------------------------

    async def snapshot(self, service: str, *, refresh: bool = False) -> Snapshot:
        """The service's pod states, re-read at most once per state.refresh seconds."""
        return await self._perform(self._snapshot_op(service, refresh=refresh))

    # --- placement ----------------------------------------------------------------

    async def compute_linked_pod(self, namespace: str, uid: str, service: str, *, persist: bool = False) -> int:
        """The pod this user goes to, creating the link if needed (SPEC's placement)."""
        return await self._perform(self._compute_op(namespace, uid, service, persist))

    async def place(self, uid: str, service: str, *, persist: bool = False, reassign: bool = False) -> Placement:
        """Like compute_linked_pod, and says where the answer came from."""
        return await self._perform(self._counted_place_op(uid, service, persist, reassign))

    async def explain_place(self, uid: str, service: str, *, persist: bool = False) -> Explanation:
        """Place like `place`, and record what the decision was based on."""
        return await self._perform(self._explain_op(uid, service, persist))

    async def place_many(self, uids: Iterable[str], service: str, *,
                         persist: bool = False) -> dict[str, Placement | Exception]:
        """Place many users with one pipelined round trip for the new ones.

        Returns uid -> Placement, or the exception that placement raised.
        """
        return await self._perform(self._place_many_op(uids, service, persist))

    # --- reads ----------------------------------------------------------------------

    async def get_linked_pod(self, namespace: str, uid: str, service: str) -> int | None:
        """The linked pod from the cache, else from Redis (and cached); None if none."""
        return await self._perform(self._get_linked_pod_op(namespace, uid, service))

    async def get_linked_pod_not_cache(self, namespace: str, uid: str, service: str) -> int | None:
        """The linked pod read from Redis, bypassing (and then refreshing) the cache."""
        return await self._perform(self._get_linked_pod_not_cache_op(namespace, uid, service))

    async def get_link(self, uid: str, service: str) -> Link | None:
        """The full link (pod, kind, TTL) from Redis."""
        return await self._perform(self._get_link_op(uid, service))

    async def get_linked_pod_in_cache_or_if_persist(self, namespace: str, uid: str, service: str) -> int | None:
        """The cached pod, else the persistent link from Redis; temporary links are not read."""
        return await self._perform(self._in_cache_or_if_persist_op(namespace, uid, service))

    async def batch_get_linked_pod(self, namespace: str, uids: Iterable[str], service: str) -> BatchLinks:
        """Links of many users of one service, read from Redis in one round trip."""
        return await self._perform(self._batch_get_op(namespace, uids, service))

    async def links_of(self, namespace: str, uid: str) -> dict[str, int]:
        """Every persistent link of one user: {service: pod}."""
        return await self._perform(self._links_of_op(namespace, uid))

    async def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """The user's linked services, {service: pod}: the Go original's GetLinkService."""
        return await self.links_of(namespace, uid)

    async def resolve_tag(self, namespace: str, tag: str) -> str | None:
        """The service a tag points at (e.g. 'lobby' -> 'lobby-v2'), or None."""
        return await self._perform(self._tag_op(namespace, tag))

    # --- writes ------------------------------------------------------------------------

    async def set_linked_pod_if_absent(self, namespace: str, uid: str, service: str, pod: int, *,
                                       persist: bool = False) -> SetIfAbsent:
        """Create the link unless one exists; either way, the pod in force."""
        return await self._perform(self._set_if_absent_op(namespace, uid, service, pod, persist))

    # --- the local cache ------------------------------------------------------------------

    async def set_cache(self, namespace: str, uid: str, service: str, pod: int, *, persistent: bool = False) -> None:
        """Remember a link locally (see ClientDriver.set_cache)."""
        await self._perform(self._set_cache_op(namespace, uid, service, pod, persistent))
