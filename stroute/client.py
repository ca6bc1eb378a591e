"""The client driver: which pod does this user go to?

The seed's StatefulRouteForClientDriver, in Python. `compute_linked_pod`
follows SPEC's five steps: a cache hit on an alive pod costs no round trip;
a new user costs one EVALSHA once the service's state snapshot is warm.
Thread-safe: one driver serves every thread of a process.

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
from typing import Callable, Iterable

from stroute import names, placement
from stroute.config import Config
from stroute.errors import Conflict, InvalidInput, NoAvailablePod, PodUnavailable, StoreError, StrouteError
from stroute.linkcache import LinkCache, Token
from stroute.podstate import PodView, Snapshot
from stroute.store import Link, SetIfAbsent, Store

SOURCES = ("cache", "existing", "new", "moved")
# Placement outcomes counted by ClientDriver.stats(): the sources, and the
# two ways a placement fails (NoAvailablePod / PodUnavailable; Conflict).
OUTCOMES = (*SOURCES, "no_capacity", "contention")
_MAX_RACE_ROUNDS = 4
# A snapshot marked stale by a heartbeat (or read while the invalidation
# channel is down) is re-read at most this often: 10 reads a second per
# service, however many pods heartbeat. A cordon is re-read at once.
REREAD_MIN_SECONDS = 0.1

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
    """What one placement was based on (`ClientDriver.explain_place`)."""

    uid: str
    service: str
    strategy: str
    snapshot: Snapshot
    candidates: list[tuple[PodView, int]]  # routable pods, and the users estimated sent to each since its heartbeat
    decision: placement.Decision | None  # None: no choice was needed (cache hit) or possible (no routable pod)
    placement: Placement | None  # None when `error` is set
    error: NoAvailablePod | None
    cache: str = "coherent"  # ClientDriver.cache_state() when the placement began
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

    def __init__(self, driver: "ClientDriver") -> None:
        # Weak: the listener thread must not keep a dropped driver alive.
        self._driver_ref = weakref.ref(driver)
        self._cache = driver.cache
        self._keys = driver.store.keys(driver.namespace)

    @property
    def _driver(self) -> "ClientDriver":
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


class ClientDriver:
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

        self.config = config or config_module.load()
        config_module.validate(self.config)
        self.namespace = self.config.namespace
        self._owns_store = store is None
        self.store = store or self.config.open_store()
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
        self._marks: dict[str, tuple[int, int]] = {}  # service -> (state mark, control mark)
        self._mark_seq = 0
        self._lock = threading.Lock()
        self._outcomes = dict.fromkeys(OUTCOMES, 0)
        self.coherent = self.config.links.coherent if coherent is None else coherent
        self.source = None
        if self.coherent and self.cache.lifetime > 0:
            from stroute import invalidation

            self.source = invalidation.open_source(self.store, _Coherence(self), bound=self.config.links.coherence_bound)
            self.cache.source = self.source
            # A driver dropped without close() still stops its listener threads.
            self._finalizer = weakref.finalize(self, self.source.close)
        elif coherent is None and self.cache.lifetime > 0:
            log.warning("links.coherent is off: a cached link is served for up to links.cache_seconds "
                        "(%g s), even after it changed in Redis", self.cache.lifetime)

    # --- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        if self._views:
            try:
                self.store.leave_gateways(self.namespace, list(self._views), self.gateway_id)
            except StrouteError as exc:  # it then leaves the count when its registration expires
                log.info("could not leave the live gateways: %s", exc)
            self._views = {}
        if self.source is not None:
            self._finalizer()  # closes the source, once
            self.source = None
            self.cache.source = None
            self.cache.lifetime = 0  # nothing cached is trusted once the channel is gone
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> "ClientDriver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the state snapshot ------------------------------------------------------

    def snapshot(self, service: str, *, refresh: bool = False) -> Snapshot:
        """The service's pod states, re-read at most once per state.refresh seconds."""
        return self._view(service, refresh=refresh).snapshot

    def _view(self, service: str, *, refresh: bool = False) -> _ServiceView:
        view = self._views.get(service)  # one dict read: atomic, no lock needed
        if view is not None and not refresh and self._fresh(service, view):
            return view
        marks = self._marks.get(service, (0, 0))
        snap = self.store.snapshot(self.namespace, service, expire_ms=self._expire_ms, gateway=self.gateway_id,
                                   gateway_expire_ms=self._gateway_expire_ms)
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

    def compute_linked_pod(self, namespace: str, uid: str, service: str, *, persist: bool = False) -> int:
        """The pod this user goes to, creating the link if needed (SPEC's placement)."""
        names.bound_namespace(self.namespace, namespace)
        return self.place(uid, service, persist=persist).pod

    def place(self, uid: str, service: str, *, persist: bool = False, reassign: bool = False) -> Placement:
        """Like compute_linked_pod, and says where the answer came from."""
        try:
            placed = self._place(uid, service, persist=persist, reassign=reassign)
        except (NoAvailablePod, Conflict) as exc:
            self._count(exc)
            raise
        self._count(placed)
        return placed

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

    def explain_place(self, uid: str, service: str, *, persist: bool = False) -> Explanation:
        """Place like `place`, and record what the decision was based on.

        A placement that fails for want of a pod is recorded in `error`
        instead of raised, so the snapshot that explains it can be shown.
        """
        trace: dict = {}
        cache = self.cache_state()
        try:
            placed = self._place(uid, service, persist=persist, trace=trace)
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

    def _place(
        self, uid: str, service: str, *, persist: bool = False, reassign: bool = False, trace: dict | None = None
    ) -> Placement:
        names.uid(uid)
        names.service(service)
        view = self._view(service)
        snap = view.snapshot
        if trace is not None:
            trace["snapshot"] = snap
        hit = self._cache_hit(service, uid, snap, persist)
        if hit is not None:
            return hit

        ttl_ms = None if persist else self._temp_ttl_ms
        routable = snap.routable()
        if not routable:
            return self._place_without_routable(uid, service, snap, ttl_ms)

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
            result = self.store.set_if_absent(self.namespace, uid, service, candidate, ttl_ms)
            settled = self._settle(uid, service, view, candidate, result, ttl_ms, token, reassign=reassign)
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

    def place_many(self, uids: Iterable[str], service: str, *, persist: bool = False) -> dict[str, Placement | Exception]:
        """Place many users with one pipelined round trip for the new ones.

        Returns uid -> Placement, or the exception that placement raised.
        """
        names.service(service)
        view = self._view(service)
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
        results = self.store.set_if_absent_many(self.namespace, service, todo, ttl_ms)
        for (uid, candidate), result in zip(todo, results):
            if isinstance(result, StoreError):  # bad data under this uid's keys: nothing was written
                with self._lock:
                    view.placed[candidate] -= view.bump
                out[uid] = result
                continue
            if not result.created:
                with self._lock:
                    view.placed[candidate] -= view.bump
            out[uid] = self._attempt(
                lambda: self._settle(uid, service, view, candidate, result, ttl_ms, token, counted=True)
                or self._place(uid, service, persist=persist)
            )
        for uid in unroutable:
            out[uid] = self._attempt(lambda: self._place_without_routable(uid, service, snap, ttl_ms))
        for outcome in out.values():
            self._count(outcome)
        return {uid: out[uid] for uid in ordered}

    @staticmethod
    def _attempt(fn: Callable[[], Placement]) -> Placement | Exception:
        try:
            return fn()
        except (StoreError, InvalidInput, NoAvailablePod, Conflict) as exc:
            return exc

    def _settle(
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
    ) -> Placement | None:
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
        moved, current = self.store.move(self.namespace, uid, service, result.pod, candidate)
        if moved:
            with self._lock:
                view.placed[candidate] += view.bump
            self.cache.put(token, service, uid, candidate, persistent_now, ttl_ms)
            return Placement(uid, service, candidate, "moved")
        if current is not None and snap.is_alive(current):
            self.cache.put(token, service, uid, current, persistent_now, ttl_ms)
            return Placement(uid, service, current, "existing")
        return None

    def _place_without_routable(self, uid: str, service: str, snap: Snapshot, ttl_ms: int | None) -> Placement:
        link = self.store.get(self.namespace, uid, service)
        if link is not None and snap.is_alive(link.pod):
            # Refresh (or upgrade) the link the user already has.
            token = self.cache.begin()
            result = self.store.set_if_absent(self.namespace, uid, service, link.pod, ttl_ms)
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

    def get_linked_pod(self, namespace: str, uid: str, service: str) -> int | None:
        """The linked pod from the cache, else from Redis (and cached); None if none."""
        names.bound_namespace(self.namespace, namespace)
        cached = self.cache.get(service, names.uid(uid))
        if cached is not None:
            return cached.pod
        return self.get_linked_pod_not_cache(namespace, uid, service)

    def get_linked_pod_not_cache(self, namespace: str, uid: str, service: str) -> int | None:
        """The linked pod read from Redis, bypassing (and then refreshing) the cache."""
        names.bound_namespace(self.namespace, namespace)
        token = self.cache.begin()
        link = self.store.get(self.namespace, uid, service)
        if link is None:
            self.cache_expired(namespace, uid, service)
            return None
        self.cache.put(token, link.service, link.uid, link.pod, link.persistent, link.ttl_ms)
        return link.pod

    def get_link(self, uid: str, service: str) -> Link | None:
        """The full link (pod, kind, TTL) from Redis."""
        return self.store.get(self.namespace, uid, service)

    def get_linked_pod_in_cache_or_if_persist(self, namespace: str, uid: str, service: str) -> int | None:
        """The cached pod, else the persistent link from Redis; temporary links are not read."""
        names.bound_namespace(self.namespace, namespace)
        cached = self.cache.get(service, names.uid(uid))
        if cached is not None:
            return cached.pod
        # The link key itself, not the index hash: the cache is told of changes
        # to the keys it read, and it knows links by their link key.
        token = self.cache.begin()
        link = self.store.get(self.namespace, uid, service)
        if link is None or not link.persistent:
            return None
        self.cache.put(token, service, uid, link.pod, True)
        return link.pod

    def get_linked_in_cache(self, namespace: str, uid: str, service: str) -> int | None:
        """The cached pod only; never touches Redis."""
        names.bound_namespace(self.namespace, namespace)
        cached = self.cache.get(service, names.uid(uid))
        return None if cached is None else cached.pod

    def batch_get_linked_pod(self, namespace: str, uids: Iterable[str], service: str) -> BatchLinks:
        """Links of many users of one service, read from Redis in one round trip."""
        names.bound_namespace(self.namespace, namespace)
        wanted = list(dict.fromkeys(uids))
        found = self.store.batch_pods(self.namespace, wanted, service)
        groups: defaultdict[int | None, list[str]] = defaultdict(list)
        for uid, pod in zip(wanted, found):
            groups[pod].append(uid)
        missing = groups.pop(None, [])
        return BatchLinks(dict(sorted(groups.items())), missing)

    def links_of(self, namespace: str, uid: str) -> dict[str, int]:
        """Every persistent link of one user: {service: pod}."""
        names.bound_namespace(self.namespace, namespace)
        return self.store.links_of(self.namespace, uid)

    def get_link_service(self, namespace: str, tag: str) -> str | None:
        """The service a tag points at (e.g. 'lobby' -> 'lobby-v2'), or None."""
        names.bound_namespace(self.namespace, namespace)
        return self.store.get_tag(self.namespace, tag)

    # --- writes ------------------------------------------------------------------------

    def set_linked_pod_if_absent(
        self, namespace: str, uid: str, service: str, pod: int, *, persist: bool = False
    ) -> SetIfAbsent:
        """Create the link unless one exists; either way, the pod in force."""
        names.bound_namespace(self.namespace, namespace)
        ttl_ms = None if persist else self._temp_ttl_ms
        token = self.cache.begin()
        result = self.store.set_if_absent(self.namespace, uid, service, pod, ttl_ms)
        self.cache.put(token, service, uid, result.pod, persist or result.was_persistent, result.ttl_ms)
        return result

    # --- the local cache ------------------------------------------------------------------

    def set_cache(self, namespace: str, uid: str, service: str, pod: int, *, persistent: bool = False) -> None:
        """Remember a link locally for links.cache_seconds.

        With a coherent cache the link is read from Redis first (one round
        trip), so that Redis tracks it for this driver, and remembered only if
        Redis holds the same pod: an entry Redis does not know this driver
        holds would never be invalidated.
        """
        names.bound_namespace(self.namespace, namespace)
        service, uid, pod = names.service(service), names.uid(uid), names.pod(pod)
        if self.source is None:
            self.cache.put(self.cache.begin(), service, uid, pod, persistent)
            return
        token = self.cache.begin()
        link = self.store.get(self.namespace, uid, service)
        if link is not None and link.pod == pod:
            self.cache.put(token, service, uid, pod, link.persistent, link.ttl_ms)
        else:
            self.cache.forget(service, uid)

    def cache_expired(self, namespace: str, uid: str, service: str) -> None:
        """Forget the cached link, so the next lookup asks Redis."""
        names.bound_namespace(self.namespace, namespace)
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
