"""The client driver: which pod does this user go to?

The seed's StatefulRouteForClientDriver, in Python. `compute_linked_pod`
follows SPEC's five steps: a cache hit on an alive pod costs no round trip;
a new user costs one EVALSHA once the service's state snapshot is warm.
Thread-safe: one driver serves every thread of a process.

What the driver decides is `stroute.clientcore`'s, shared with the asyncio
driver (`stroute.aio`); this class runs it on the sync Store.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from stroute.clientcore import (  # noqa: F401 (re-exported: the public names of the client driver)
    OUTCOMES,
    REREAD_MIN_SECONDS,
    SOURCES,
    BatchLinks,
    ClientCore,
    Explanation,
    Placement,
    log,
)
from stroute.config import Config
from stroute.errors import StrouteError
from stroute.podstate import Snapshot
from stroute.store import Link, SetIfAbsent, Store


class ClientDriver(ClientCore):
    """Computes and caches user -> pod links of one namespace.

    Give it a Config (namespace, Redis URL, TTLs, strategy) or a ready Store.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        store: Store | None = None,
        clock: Callable[[], float] = time.monotonic,
        cache_max_entries: int = 100_000,
        coherent: bool | None = None,
    ) -> None:
        from stroute import config as config_module

        config, store, self._owns_store = config_module.for_driver(config, store, config_module.Config.open_store)
        super().__init__(config, store, clock=clock, cache_max_entries=cache_max_entries)
        self._open_source(coherent, store)

    # --- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        try:
            self._perform(self._leave_op())
        except StrouteError as exc:  # it then leaves the count when its registration expires
            log.info("could not leave the live gateways: %s", exc)
        self._close_source()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> "ClientDriver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_coherent(self, timeout: float = 5.0) -> bool:
        """Wait until cached answers can be served (the invalidation channel is
        confirmed); False if it is not within `timeout` seconds. A gateway can
        call this before it reports ready: until then every lookup reads Redis."""
        deadline = time.monotonic() + timeout
        while not self.cache.trusted():
            if self.source is None or time.monotonic() >= deadline:
                return self.cache.trusted()
            time.sleep(0.005)
        return True

    # --- the state snapshot ------------------------------------------------------

    def snapshot(self, service: str, *, refresh: bool = False) -> Snapshot:
        """The service's pod states, re-read at most once per state.refresh seconds."""
        return self._perform(self._snapshot_op(service, refresh=refresh))

    # --- placement ----------------------------------------------------------------

    def compute_linked_pod(self, namespace: str, uid: str, service: str, *, persist: bool = False) -> int:
        """The pod this user goes to, creating the link if needed (SPEC's placement)."""
        return self._perform(self._compute_op(namespace, uid, service, persist))

    def place(self, uid: str, service: str, *, persist: bool = False, reassign: bool = False) -> Placement:
        """Like compute_linked_pod, and says where the answer came from."""
        return self._perform(self._counted_place_op(uid, service, persist, reassign))

    def explain_place(self, uid: str, service: str, *, persist: bool = False) -> Explanation:
        """Place like `place`, and record what the decision was based on.

        A placement that fails for want of a pod is recorded in `error`
        instead of raised, so the snapshot that explains it can be shown.
        """
        return self._perform(self._explain_op(uid, service, persist))

    def place_many(self, uids: Iterable[str], service: str, *, persist: bool = False) -> dict[str, Placement | Exception]:
        """Place many users with one pipelined round trip for the new ones.

        Returns uid -> Placement, or the exception that placement raised.
        """
        return self._perform(self._place_many_op(uids, service, persist))

    # --- reads ----------------------------------------------------------------------

    def get_linked_pod(self, namespace: str, uid: str, service: str) -> int | None:
        """The linked pod from the cache, else from Redis (and cached); None if none."""
        return self._perform(self._get_linked_pod_op(namespace, uid, service))

    def get_linked_pod_not_cache(self, namespace: str, uid: str, service: str) -> int | None:
        """The linked pod read from Redis, bypassing (and then refreshing) the cache."""
        return self._perform(self._get_linked_pod_not_cache_op(namespace, uid, service))

    def get_link(self, uid: str, service: str) -> Link | None:
        """The full link (pod, kind, TTL) from Redis."""
        return self._perform(self._get_link_op(uid, service))

    def get_linked_pod_in_cache_or_if_persist(self, namespace: str, uid: str, service: str) -> int | None:
        """The cached pod, else the persistent link from Redis; temporary links are not read."""
        return self._perform(self._in_cache_or_if_persist_op(namespace, uid, service))

    def batch_get_linked_pod(self, namespace: str, uids: Iterable[str], service: str) -> BatchLinks:
        """Links of many users of one service, read from Redis in one round trip."""
        return self._perform(self._batch_get_op(namespace, uids, service))

    def links_of(self, namespace: str, uid: str) -> dict[str, int]:
        """Every persistent link of one user: {service: pod}."""
        return self._perform(self._links_of_op(namespace, uid))

    def get_link_service(self, namespace: str, uid: str) -> dict[str, int]:
        """The user's linked services, {service: pod}: the Go original's GetLinkService
        (its persistent links, the user's index hash). Until this version this
        method resolved a tag: that is resolve_tag()."""
        return self.links_of(namespace, uid)

    def resolve_tag(self, namespace: str, tag: str) -> str | None:
        """The service a tag points at (e.g. 'lobby' -> 'lobby-v2'), or None."""
        return self._perform(self._tag_op(namespace, tag))

    # --- writes ------------------------------------------------------------------------

    def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service: str, pod: int, *, persist: bool = False
    ) -> SetIfAbsent:
        """Create the link unless one exists; either way, the pod in force."""
        return self._perform(self._set_if_absent_op(namespace, uid, service, pod, persist))

    # --- the local cache ------------------------------------------------------------------

    def set_cache(self, namespace: str, uid: str, service: str, pod: int, *, persistent: bool = False) -> None:
        """Remember a link locally for links.cache_seconds.

        With a coherent cache the link is read from Redis first (one round
        trip), so that Redis tracks it for this driver, and remembered only if
        Redis holds the same pod: an entry Redis does not know this driver
        holds would never be invalidated.
        """
        self._perform(self._set_cache_op(namespace, uid, service, pod, persistent))

