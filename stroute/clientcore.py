"""What a client driver decides, written once for the sync and asyncio drivers.

`ClientCore` holds a driver's state (the link cache, the services' state
snapshots, the placements not yet in the pods' reported loads, the outcome
counters) and every decision SPEC's placement makes. Each method that needs
Redis is an operation in the sense of `stroute.store.domain`: a generator that
yields the store's commands and gets their replies. `ClientDriver` runs them
with `Store.run`, `AsyncClientDriver` with `await AsyncStore.run`: the two
drivers differ only in how they wait.

The cache is coherent with Redis (`stroute.linkcache`, `stroute.invalidation`):
a link changed anywhere is dropped from it within milliseconds, a state
change or a cordon marks the service's snapshot stale, and while the
invalidation channel is not confirmed nothing cached is served.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
import weakref
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from stroute import names, placement
from stroute.store import domain
from stroute.config import Config
from stroute.errors import Conflict, InvalidInput, NoAvailablePod, PodUnavailable, StoreError
from stroute.linkcache import LinkCache, Token
from stroute.podstate import PodView, Snapshot
from stroute.store.domain import Op
from stroute.store import Link, SetIfAbsent

SOURCES = ("cache", "existing", "new", "moved")
# Placement outcomes counted by stats(): the sources, and the two ways a
# placement fails (NoAvailablePod / PodUnavailable; Conflict).
OUTCOMES = (*SOURCES, "no_capacity", "contention")
_MAX_RACE_ROUNDS = 4
# A snapshot marked stale by a heartbeat (or read while the invalidation
# channel is down) is re-read at most this often: 10 reads a second per
# service, however many pods heartbeat. A cordon is re-read at once.
REREAD_MIN_SECONDS = 0.1
# While one caller re-reads a service's view, the others keep using the view
# they have, if it is at most state.refresh plus this old. Past that they read
# it too: a re-read that hangs (Redis unreachable) does not hold them to an
# old view for long.
STALE_WHILE_REREAD_S = 1.0

log = logging.getLogger("stroute.client")
_monotonic = time.monotonic


@dataclass(frozen=True, slots=True)
class Placement:
    uid: str
    service: str
    pod: int
    source: str  # one of SOURCES


@dataclass(frozen=True)
class Explanation:
    """What one placement was based on (`explain_place`)."""

    uid: str
    service: str
    strategy: str
    snapshot: Snapshot
    candidates: list[tuple[PodView, int]]  # routable pods, and the users estimated sent to each since its heartbeat
    decision: placement.Decision | None  # None: no choice was needed (cache hit) or possible (no routable pod)
    placement: Placement | None  # None when `error` is set
    error: NoAvailablePod | None
    cache: str = "coherent"  # cache_state() when the placement began
    gateways: int = 1  # live gateways of the service: each own placement counted this many times
    slow_start: dict[int, placement.SlowStart] = field(default_factory=dict)  # pods in their slow-start window
    left_out: tuple[int, ...] = ()  # pods in slow start the strategy could not draw this time


@dataclass(frozen=True)
class BatchLinks:
    pods: dict[int, list[str]]  # pod -> uids linked to it
    missing: list[str]  # uids with no link


@dataclass
class _ServiceView:
    snapshot: Snapshot
    fetched: float
    marks: tuple[int, int] = (0, 0)  # the service's invalidation marks when it was read
    placed: Counter = field(default_factory=Counter)  # new users per pod not yet in their reported load (estimated)
    bump: int = 1  # what one own placement adds to `placed`: the live gateways at the read
    warm_until: float = 0.0  # clock time until which some pod is in its slow-start window


class _Coherence:
    """Where invalidations land: links go to the cache, state keys mark snapshots."""

    def __init__(self, driver: "ClientCore") -> None:
        # Weak: the listener thread must not keep a dropped driver alive.
        self._driver_ref = weakref.ref(driver)
        self._cache = driver.cache
        self._keys = driver.store.keys(driver.namespace)

    @property
    def _driver(self) -> "ClientCore":
        driver = self._driver_ref()
        if driver is None:
            raise RuntimeError("the client driver is gone")
        return driver

    def keys_changed(self, keys: list[str]) -> None:
        links = []
        for key in keys:
            link = self._keys.parse_link(key)
            if link is not None:
                links.append((link[1], link[0]))
                continue
            state = self._keys.parse_state(key)
            if state is not None:
                self._driver._state_changed(*state)
        if links:
            self._cache.invalidate(links)

    def flushed(self) -> None:
        self._cache.flush()
        self._driver._state_changed(None, True)


class ClientCore:
    """A client driver's state and decisions; its Redis work as operations.

    Subclasses give the store (`store`, with `keys()` and `run()`) and run
    the operations. Thread-safe where the sync driver needs it: counters and
    views change under one lock, the cache is safe on its own.
    """

    def __init__(self, config: Config, store: Any, *, clock: Callable[[], float],
                 cache_max_entries: int) -> None:
        self.config = config  # validated by the driver
        self.namespace = self.config.namespace
        self.store = store
        self._perform = store.run  # runs an operation: a call, or a coroutine (the asyncio store)
        self.strategy = placement.make(
            self.config.placement.strategy, good_load_range=self.config.placement.good_load_range
        )
        self._clock = clock
        self._temp_ttl_ms = round(self.config.links.temp_ttl * 1000)
        self._expire_ms = self.config.state.expire_ms
        self._refresh = self.config.state.refresh
        # Who this driver is among the gateways placing users (placement.py):
        # readable in Redis, unique even for two drivers in one process.
        self.gateway_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._gateway_expire_ms = placement.gateway_expire_ms(self._refresh)
        self._slow_start_ms = placement.slow_start_window_ms(self.config)
        self._random = random.Random().random
        self.cache = LinkCache(lifetime=self.config.links.cache_seconds, max_entries=cache_max_entries, clock=clock)
        self._views: dict[str, _ServiceView] = {}
        self._refreshing: dict[str, int] = {}  # service -> callers re-reading its view now
        self._marks: dict[str, tuple[int, int]] = {}  # service -> (state mark, control mark)
        self._mark_seq = 0
        self._lock = threading.Lock()
        self._outcomes = dict.fromkeys(OUTCOMES, 0)
        self.source = None
        self._ks = store.keys(self.namespace)

    def _open_source(self, coherent: bool | None, sync_store: Any) -> None:
        """Start the invalidation channel on `sync_store`'s connections (its
        listener threads), when the cache is on and coherent."""
        self.coherent = self.config.links.coherent if coherent is None else coherent
        if self.coherent and self.cache.lifetime > 0:
            from stroute import invalidation

            self.source = invalidation.open_source(sync_store, _Coherence(self),
                                                   bound=self.config.links.coherence_bound)
            self.cache.source = self.source
            # A driver dropped without close() still stops its listener threads.
            self._finalizer = weakref.finalize(self, self.source.close)
        elif coherent is None and self.cache.lifetime > 0:
            log.warning("links.coherent is off: a cached link is served for up to links.cache_seconds "
                        "(%g s), even after it changed in Redis", self.cache.lifetime)

    def _close_source(self) -> None:
        if self.source is not None:
            self._finalizer()  # closes the source, once
            self.source = None
            self.cache.source = None
            self.cache.lifetime = 0  # nothing cached is trusted once the channel is gone

    def _leave_op(self) -> Op[None]:
        """Leave the live gateways of every service this driver placed in."""
        services, self._views = list(self._views), {}
        if services:
            yield from domain.leave_gateways(self._ks, services, self.gateway_id)

    # --- what needs no Redis -------------------------------------------------------

    def stats(self) -> dict[str, int | float]:
        """Placement outcomes since this driver was made: cache, existing, new, moved
        (the sources), no_capacity (no available pod, or a persistent link to a dead
        one) and contention (the link kept changing under racing writers); then the
        cache's coherence: invalidations (cached links Redis said changed),
        cache_flushes (whole-cache drops: the channel was re-made, or Redis
        flushed) and untrusted_seconds (time without a confirmed channel)."""
        with self._lock:
            out: dict[str, int | float] = dict(self._outcomes)
        out["invalidations"] = self.cache.invalidations
        out["cache_flushes"] = self.cache.flushes
        out["untrusted_seconds"] = 0.0 if self.source is None else round(self.source.untrusted_seconds(), 3)
        return out

    def cache_state(self) -> str:
        """coherent (cached answers are served: Redis tells of every change),
        suspended (the invalidation channel is not confirmed: every lookup
        reads Redis), local (links.coherent off: an entry lives up to
        links.cache_seconds) or off (links.cache_seconds is 0)."""
        if self.cache.lifetime <= 0:
            return "off"
        if self.source is None:
            return "local"
        return "coherent" if self.cache.trusted() else "suspended"

    def get_linked_in_cache(self, namespace: str, uid: str, service: str) -> int | None:
        """The cached pod only; never touches Redis."""
        names.bound_namespace(self.namespace, namespace)
        cached = self.cache.get(service, names.uid(uid))
        return None if cached is None else cached.pod

    def cache_expired(self, namespace: str, uid: str, service: str) -> None:
        """Forget the cached link, so the next lookup asks Redis."""
        names.bound_namespace(self.namespace, namespace)
        self.cache.forget(service, uid)

    def _count(self, outcome: Placement | Exception) -> None:
        if isinstance(outcome, Placement):
            key = outcome.source
        elif isinstance(outcome, NoAvailablePod):
            key = "no_capacity"
        elif isinstance(outcome, Conflict):
            key = "contention"
        else:
            return
        with self._lock:
            self._outcomes[key] += 1

    # --- the state snapshot ------------------------------------------------------

    def _view_op(self, service: str, *, refresh: bool = False) -> Op[_ServiceView]:
        """The service's view, re-read at most once per state.refresh seconds."""
        view = self._views.get(service)  # one dict read: atomic, no lock needed
        if view is not None and not refresh:
            if self._fresh(service, view):
                return view
            if service in self._refreshing and self._clock() - view.fetched < self._refresh + STALE_WHILE_REREAD_S:
                # Another caller is re-reading it: without this, every request
                # of a busy gateway that arrives before the answer would send
                # the same read and decode the same answer.
                return view
        marks = self._marks.get(service, (0, 0))
        with self._lock:
            self._refreshing[service] = self._refreshing.get(service, 0) + 1
        try:
            snap = yield from domain.snapshot(self._ks, service, expire_ms=self._expire_ms, gateway=self.gateway_id,
                                                gateway_expire_ms=self._gateway_expire_ms)
        finally:
            with self._lock:
                left = self._refreshing.pop(service) - 1
                if left:
                    self._refreshing[service] = left
        fetched = self._clock()
        new = _ServiceView(snap, fetched, marks, bump=max(1, snap.gateways))
        warming = placement.slow_start(snap, snap.now_ms, self._slow_start_ms)
        if warming:
            new.warm_until = fetched + max(w.remaining_ms for w in warming.values()) / 1000
        if view is not None:
            # A pod that has not heartbeated since still reports a load without
            # the users this client sent it: keep counting them.
            for pod, count in view.placed.items():
                before, now = view.snapshot.pods.get(pod), snap.pods.get(pod)
                if count > 0 and before is not None and now is not None and before.heartbeat_ms == now.heartbeat_ms:
                    new.placed[pod] = count
        with self._lock:
            self._views[service] = new
        return new

    def _snapshot_op(self, service: str, *, refresh: bool = False) -> Op[Snapshot]:
        return (yield from self._view_op(service, refresh=refresh)).snapshot

    def _fresh(self, service: str, view: _ServiceView) -> bool:
        age = self._clock() - view.fetched
        if age >= self._refresh:
            return False
        source = self.source
        if source is None:
            return True
        marks = self._marks.get(service, (0, 0))
        if marks[1] != view.marks[1]:
            return False  # a cordon, an uncordon or a flush: re-read now
        if age < REREAD_MIN_SECONDS:
            return True
        return marks[0] == view.marks[0] and _monotonic() < source.trusted_until

    def _state_changed(self, service: str | None, control: bool) -> None:
        """Redis says a service's state (or control) hash changed; None: every service."""
        with self._lock:
            for svc in [service] if service is not None else list(self._views):
                self._mark_seq += 1
                state, ctl = self._marks.get(svc, (0, 0))
                self._marks[svc] = (self._mark_seq, self._mark_seq if control else ctl)

    # --- placement ----------------------------------------------------------------

    def _compute_op(self, namespace: str, uid: str, service: str, persist: bool) -> Op[int]:
        names.bound_namespace(self.namespace, namespace)
        return (yield from self._counted_place_op(uid, service, persist, False)).pod

    def _counted_place_op(self, uid: str, service: str, persist: bool, reassign: bool) -> Op[Placement]:
        try:
            placed = yield from self._place_op(uid, service, persist=persist, reassign=reassign)
        except (NoAvailablePod, Conflict) as exc:
            self._count(exc)
            raise
        self._count(placed)
        return placed

    def _explain_op(self, uid: str, service: str, persist: bool) -> Op[Explanation]:
        """Place like `place`, and record what the decision was based on.

        A placement that fails for want of a pod is recorded in `error`
        instead of raised, so the snapshot that explains it can be shown.
        """
        trace: dict = {}
        cache = self.cache_state()
        try:
            placed = yield from self._place_op(uid, service, persist=persist, trace=trace)
        except (NoAvailablePod, Conflict) as exc:
            self._count(exc)
            if not isinstance(exc, NoAvailablePod):
                raise
            if "snapshot" not in trace:
                raise
            return Explanation(uid, service, self.strategy.name, trace["snapshot"], trace.get("candidates", []),
                               trace.get("decision"), None, exc, cache, *self._traced(trace))
        self._count(placed)
        return Explanation(uid, service, self.strategy.name, trace["snapshot"], trace.get("candidates", []),
                           trace.get("decision"), placed, None, cache, *self._traced(trace))

    def _traced(self, trace: dict) -> tuple[int, dict, tuple[int, ...]]:
        """The gateway count and slow-start windows a traced placement saw."""
        view = self._views.get(trace["snapshot"].service)
        gateways = trace.get("gateways", view.bump if view is not None else 1)
        warming = trace.get("slow_start")
        if warming is None and view is not None:
            warming = self._warming(view)
        return gateways, warming or {}, trace.get("left_out", ())

    def _place_op(
        self, uid: str, service: str, *, persist: bool = False, reassign: bool = False, trace: dict | None = None
    ) -> Op[Placement]:
        names.uid(uid)
        names.service(service)
        view = yield from self._view_op(service)
        snap = view.snapshot
        if trace is not None:
            trace["snapshot"] = snap
        hit = self._cache_hit(service, uid, snap, persist)
        if hit is not None:
            return hit

        ttl_ms = None if persist else self._temp_ttl_ms
        routable = snap.routable()
        if not routable:
            return (yield from self._place_without_routable_op(uid, service, snap, ttl_ms))

        if trace is None:
            if view.warm_until and self._clock() < view.warm_until:
                routable = placement.admit(routable, self._warming(view), self._random)
            candidate = self.strategy.choose(uid, routable, view.placed).pod
        else:
            with self._lock:
                extra = dict(view.placed)
            trace["candidates"] = [(v, extra.get(v.pod, 0)) for v in routable]
            trace["gateways"] = view.bump
            if view.warm_until and self._clock() < view.warm_until:
                warming = trace["slow_start"] = self._warming(view)
                admitted = placement.admit(routable, warming, self._random)
                trace["left_out"] = tuple(v.pod for v in routable if v not in admitted)
                routable = admitted
            trace["decision"] = placement.decide(self.strategy, uid, routable, extra)
            candidate = trace["decision"].pod.pod
        for _ in range(_MAX_RACE_ROUNDS):
            token = self.cache.begin()
            result = yield from domain.set_if_absent(self._ks, uid, service, candidate, ttl_ms)
            settled = yield from self._settle_op(uid, service, view, candidate, result, ttl_ms, token,
                                                 reassign=reassign)
            if settled is not None:
                return settled
        raise Conflict(
            f"could not settle a link for uid {uid!r} of service {service!r}: it kept changing under contention",
            hint="retry the placement",
        )

    def _warming(self, view: _ServiceView) -> dict[int, placement.SlowStart]:
        """The pods of the view in their slow-start window now (Redis's clock at
        the read, advanced by this driver's own clock since)."""
        now_ms = view.snapshot.now_ms + round((self._clock() - view.fetched) * 1000)
        return placement.slow_start(view.snapshot, now_ms, self._slow_start_ms)

    def _place_many_op(self, uids: Iterable[str], service: str, persist: bool) -> Op[dict[str, Placement | Exception]]:
        """Place many users with one pipelined round trip for the new ones.

        Returns uid -> Placement, or the exception that placement raised.
        """
        names.service(service)
        view = yield from self._view_op(service)
        snap = view.snapshot
        ttl_ms = None if persist else self._temp_ttl_ms
        out: dict[str, Placement | Exception] = {}
        todo: list[tuple[str, int]] = []
        unroutable: list[str] = []
        routable = snap.routable()
        ordered = list(dict.fromkeys(uids))
        for uid in ordered:
            try:
                names.uid(uid)
            except Exception as exc:
                out[uid] = exc
                continue
            hit = self._cache_hit(service, uid, snap, persist)
            if hit is not None:
                out[uid] = hit
            elif routable:
                pods = routable
                if view.warm_until and self._clock() < view.warm_until:
                    pods = placement.admit(routable, self._warming(view), self._random)
                pod = self.strategy.choose(uid, pods, view.placed).pod
                with self._lock:
                    view.placed[pod] += view.bump  # count the pick now, so the batch spreads
                todo.append((uid, pod))
            else:
                unroutable.append(uid)
        token = self.cache.begin()
        results = yield from domain.set_if_absent_many(self._ks, service, todo, ttl_ms)
        for (uid, candidate), result in zip(todo, results):
            if isinstance(result, StoreError):  # bad data under this uid's keys: nothing was written
                with self._lock:
                    view.placed[candidate] -= view.bump
                out[uid] = result
                continue
            if not result.created:
                with self._lock:
                    view.placed[candidate] -= view.bump
            try:
                settled = yield from self._settle_op(uid, service, view, candidate, result, ttl_ms, token,
                                                     counted=True)
                out[uid] = settled or (yield from self._place_op(uid, service, persist=persist))
            except (StoreError, InvalidInput, NoAvailablePod, Conflict) as exc:
                out[uid] = exc
        for uid in unroutable:
            try:
                out[uid] = yield from self._place_without_routable_op(uid, service, snap, ttl_ms)
            except (StoreError, InvalidInput, NoAvailablePod, Conflict) as exc:
                out[uid] = exc
        for outcome in out.values():
            self._count(outcome)
        return {uid: out[uid] for uid in ordered}

    def _settle_op(
        self,
        uid: str,
        service: str,
        view: _ServiceView,
        candidate: int,
        result: SetIfAbsent,
        ttl_ms: int | None,
        token: Token,
        *,
        reassign: bool = False,
        counted: bool = False,
    ) -> Op[Placement | None]:
        """Turn a set-if-absent reply into a placement; None means 'try again'."""
        snap = view.snapshot
        persistent_now = ttl_ms is None or result.was_persistent
        ttl_ms = result.ttl_ms  # what the link has left: a cache entry never outlives it
        if result.created:
            if not counted:
                with self._lock:
                    view.placed[candidate] += view.bump
            self.cache.put(token, service, uid, candidate, persistent_now, ttl_ms)
            return Placement(uid, service, candidate, "new")
        if snap.is_alive(result.pod):
            self.cache.put(token, service, uid, result.pod, persistent_now, ttl_ms)
            return Placement(uid, service, result.pod, "existing")
        if result.was_persistent and not reassign:
            raise PodUnavailable(
                f"pod {result.pod} unavailable: uid {uid!r} has a persistent link to pod {result.pod} "
                f"of service {service!r}, which is not alive ({_pod_seen(snap, result.pod)})",
                pod=result.pod,
                service=service,
                hint="wait for the pod to come back, or move the link (stroute link set)",
            )
        token = self.cache.begin()
        moved, current = yield from domain.move(self._ks, uid, service, result.pod, candidate)
        if moved:
            with self._lock:
                view.placed[candidate] += view.bump
            self.cache.put(token, service, uid, candidate, persistent_now, ttl_ms)
            return Placement(uid, service, candidate, "moved")
        if current is not None and snap.is_alive(current):
            self.cache.put(token, service, uid, current, persistent_now, ttl_ms)
            return Placement(uid, service, current, "existing")
        return None

    def _place_without_routable_op(self, uid: str, service: str, snap: Snapshot,
                                   ttl_ms: int | None) -> Op[Placement]:
        link = yield from domain.get(self._ks, uid, service)
        if link is not None and snap.is_alive(link.pod):
            # Refresh (or upgrade) the link the user already has.
            token = self.cache.begin()
            result = yield from domain.set_if_absent(self._ks, uid, service, link.pod, ttl_ms)
            if snap.is_alive(result.pod):
                self.cache.put(token, service, uid, result.pod, ttl_ms is None or result.was_persistent,
                               result.ttl_ms)
                return Placement(uid, service, result.pod, "existing")
        elif link is not None and link.persistent:
            raise PodUnavailable(
                f"pod {link.pod} unavailable: uid {uid!r} has a persistent link to pod {link.pod} "
                f"of service {service!r}, which is not alive ({_pod_seen(snap, link.pod)}), "
                f"and no other pod is routable ({snap.describe()})",
                pod=link.pod,
                service=service,
                hint="start or uncordon a pod of the service (stroute pods -s SERVICE shows their states)",
            )
        raise NoAvailablePod(
            f"no available pod for service {service!r} in namespace {self.namespace!r}: {snap.describe()}",
            hint="start or uncordon a pod of the service (stroute pods -s SERVICE shows their states)",
        )

    # --- reads ----------------------------------------------------------------------

    def _get_linked_pod_op(self, namespace: str, uid: str, service: str) -> Op[int | None]:
        names.bound_namespace(self.namespace, namespace)
        cached = self.cache.get(service, names.uid(uid))
        if cached is not None:
            return cached.pod
        return (yield from self._get_linked_pod_not_cache_op(namespace, uid, service))

    def _get_linked_pod_not_cache_op(self, namespace: str, uid: str, service: str) -> Op[int | None]:
        names.bound_namespace(self.namespace, namespace)
        token = self.cache.begin()
        link = yield from domain.get(self._ks, uid, service)
        if link is None:
            self.cache_expired(namespace, uid, service)
            return None
        self.cache.put(token, link.service, link.uid, link.pod, link.persistent, link.ttl_ms)
        return link.pod

    def _get_link_op(self, uid: str, service: str) -> Op[Link | None]:
        return (yield from domain.get(self._ks, uid, service))

    def _in_cache_or_if_persist_op(self, namespace: str, uid: str, service: str) -> Op[int | None]:
        names.bound_namespace(self.namespace, namespace)
        cached = self.cache.get(service, names.uid(uid))
        if cached is not None:
            return cached.pod
        # The link key itself, not the index hash: the cache is told of changes
        # to the keys it read, and it knows links by their link key.
        token = self.cache.begin()
        link = yield from domain.get(self._ks, uid, service)
        if link is None or not link.persistent:
            return None
        self.cache.put(token, service, uid, link.pod, True)
        return link.pod

    def _batch_get_op(self, namespace: str, uids: Iterable[str], service: str) -> Op[BatchLinks]:
        names.bound_namespace(self.namespace, namespace)
        wanted = list(dict.fromkeys(uids))
        found = yield from domain.batch_pods(self._ks, wanted, service, cluster=self.store.cluster)
        groups: defaultdict[int | None, list[str]] = defaultdict(list)
        for uid, pod in zip(wanted, found):
            groups[pod].append(uid)
        missing = groups.pop(None, [])
        return BatchLinks(dict(sorted(groups.items())), missing)

    def _links_of_op(self, namespace: str, uid: str) -> Op[dict[str, int]]:
        names.bound_namespace(self.namespace, namespace)
        return (yield from domain.links_of(self._ks, uid))

    def _tag_op(self, namespace: str, tag: str) -> Op[str | None]:
        names.bound_namespace(self.namespace, namespace)
        return (yield from domain.get_tag(self._ks, tag))

    # --- writes ------------------------------------------------------------------------

    def _set_if_absent_op(self, namespace: str, uid: str, service: str, pod: int, persist: bool) -> Op[SetIfAbsent]:
        names.bound_namespace(self.namespace, namespace)
        ttl_ms = None if persist else self._temp_ttl_ms
        token = self.cache.begin()
        result = yield from domain.set_if_absent(self._ks, uid, service, pod, ttl_ms)
        self.cache.put(token, service, uid, result.pod, persist or result.was_persistent, result.ttl_ms)
        return result

    def _set_cache_op(self, namespace: str, uid: str, service: str, pod: int, persistent: bool) -> Op[None]:
        names.bound_namespace(self.namespace, namespace)
        service, uid, pod = names.service(service), names.uid(uid), names.pod(pod)
        if self.source is None:
            self.cache.put(self.cache.begin(), service, uid, pod, persistent)
            return
        token = self.cache.begin()
        link = yield from domain.get(self._ks, uid, service)
        if link is not None and link.pod == pod:
            self.cache.put(token, service, uid, pod, link.persistent, link.ttl_ms)
        else:
            self.cache.forget(service, uid)

    def _cache_hit(self, service: str, uid: str, snap: Snapshot, persist: bool) -> Placement | None:
        """The cached link as a placement, if it still stands: its pod is alive, and
        a persistent placement is asked for only of a link cached as persistent."""
        cached = self.cache.get(service, uid)
        if cached is not None and snap.is_alive(cached.pod) and (cached.persistent or not persist):
            return Placement(uid, service, cached.pod, "cache")
        return None


def _pod_seen(snap: Snapshot, pod: int) -> str:
    view = snap.pods.get(pod)
    if view is None:
        return "it has published no state" if pod not in snap.invalid else "its state is unparseable"
    return f"{view.display_state}, heartbeat {view.heartbeat_age_ms / 1000:.1f} s ago"
