"""The server driver: a pod publishes its load and routing state.

The seed's StatefulRouteForServerDriver, in Python. `start()` runs a
heartbeat thread; `stop()` publishes DRAINING, waits the drain window
(interruptible with `stop_now()`), publishes DOWN and returns. Redis outages
are logged and retried with backoff; the driver never crashes on them and
never hangs on stop past the drain window plus one socket timeout.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

from stroute import names
from stroute.config import Config
from stroute.errors import StoreError, StrouteError
from stroute.podstate import RoutingState
from stroute.store import Published, Store

log = logging.getLogger("stroute.server")

_BACKOFF_FIRST_S = 0.2
# Heartbeats between two re-registrations of the service in the namespace's
# registry set: it changes rarely, so most heartbeats are one EVALSHA.
_REGISTER_EVERY = 10


def cpu_load(cpu_factor: float) -> int:
    """Load derived from the host's CPU use: 0..1000 scaled by cpu_factor."""
    try:
        busy = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        busy = 0.0
    return round(1000 * cpu_factor * min(1.0, busy))


class ServerDriver:
    """Publishes one pod's state every `state.period` seconds.

    Load comes from, in order: a value set with set_load_state(), the
    `load_source` callable, else the host's CPU use times server.cpu_factor.
    """

    def __init__(
        self,
        service: str,
        pod: int,
        config: Config | None = None,
        *,
        store: Store | None = None,
        load_source: Callable[[], int] | None = None,
    ) -> None:
        from stroute import config as config_module

        self.config = config or config_module.load()
        config_module.validate(self.config)
        self.namespace = self.config.namespace
        self.service = names.service(service)
        self.pod = names.pod(pod)
        self._owns_store = store is None
        self.store = store or self.config.open_store()
        self._load_source = load_source
        self._load: int | None = None
        self._last_load = 0
        self._state = RoutingState.READY
        self._published_state: RoutingState | None = None
        self._since_register = 0
        self.epoch: int | None = None
        self.cordoned = False
        self.last_heartbeat_ms: int | None = None
        self.heartbeats_ok = 0
        self.heartbeats_failed = 0
        self.last_load: int | None = None  # the load of the last heartbeat that reached Redis
        self.links_set = 0  # links set through this driver's link methods
        self.links_removed = 0
        self._links_lock = threading.Lock()
        # Called with the seconds each publish's Redis round trip took (failed ones too).
        self.publish_observers: list[Callable[[float], None]] = []
        self._lock = threading.Lock()  # one publish at a time, always of the current state
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._abort_drain = threading.Event()
        self._thread: threading.Thread | None = None
        self._period = self.config.state.period
        self._expire_ms = self.config.state.expire_ms

    # --- load and routing state ---------------------------------------------------

    def set_load_state(self, load: int) -> None:
        """Set the load published from the next heartbeat on (lower is better)."""
        self._load = names.load(load)

    def get_load_state(self) -> int:
        """The load the next heartbeat will publish."""
        if self._load is not None:
            return self._load
        if self._load_source is not None:
            try:
                self._last_load = names.load(self._load_source())
            except Exception as exc:  # a broken load source must not stop heartbeats
                log.warning("load source failed, keeping load %d: %s", self._last_load, exc)
            return self._last_load
        return cpu_load(self.config.server.cpu_factor)

    def set_routing_state(self, state: RoutingState | str) -> None:
        """Change READY / DRAINING / DOWN; published at once when running."""
        self._state = RoutingState.parse(state)
        self._wake.set()

    def get_routing_state(self) -> RoutingState:
        return self._state

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- heartbeats ---------------------------------------------------------------------

    def _register_due(self, state: RoutingState) -> bool:
        """Register on the first heartbeat, on a state change, after a failure, and every Nth."""
        return state is not self._published_state or self._since_register == 0

    def publish(self) -> Published:
        """Publish one heartbeat now. Raises StoreError when Redis fails."""
        try:
            return self._publish()
        except Exception:
            self.heartbeats_failed += 1
            self._since_register = 0  # register again on the next heartbeat that gets through
            raise

    def _publish(self) -> Published:
        with self._lock:
            state = self._state
            load = self.get_load_state()
            started = time.perf_counter()
            try:
                result = self.store.publish_state(
                    self.namespace,
                    self.service,
                    self.pod,
                    load=load,
                    state=state,
                    epoch=self.epoch,
                    expire_ms=self._expire_ms,
                    summarize=self.pod == 0,
                    register=self._register_due(state),
                )
            finally:
                self._observe_publish(time.perf_counter() - started)
            self.last_load = load
            self._since_register = (self._since_register + 1) % _REGISTER_EVERY
            if state is not self._published_state:
                log.info(
                    "%s pod %d of %s: %s",
                    self.namespace,
                    self.pod,
                    self.service,
                    state.name if self._published_state is None else f"{self._published_state.name} -> {state.name}",
                )
                self._published_state = state
            if result.cordoned != self.cordoned:
                log.info("pod %d of %s is %s by an operator", self.pod, self.service,
                         "cordoned" if result.cordoned else "no longer cordoned")
                self.cordoned = result.cordoned
            self.last_heartbeat_ms = result.heartbeat_ms
            self.heartbeats_ok += 1
            log.debug("heartbeat pod %d of %s: %s, load %d%s", self.pod, self.service, state.name, load,
                      ", cordoned" if result.cordoned else "")
            return result

    def _observe_publish(self, seconds: float) -> None:
        for observe in self.publish_observers:
            try:
                observe(seconds)
            except Exception:  # an observer must never stop heartbeats
                log.exception("publish observer failed")

    def start(self) -> None:
        """Start heartbeats in a background thread (first one at once)."""
        if self.running:
            return
        if self._state is RoutingState.DOWN:
            self._state = RoutingState.READY  # a restarted driver takes users again
        self.epoch = int(time.time() * 1000)
        self._halt.clear()
        self._abort_drain.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"stroute-heartbeat-{self.service}-{self.pod}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        backoff = 0.0
        outage_since: float | None = None
        while not self._halt.is_set():
            self._wake.clear()
            try:
                self.publish()
            except StrouteError as exc:
                if outage_since is None:
                    outage_since = time.monotonic()
                    log.warning("heartbeat failed, retrying with backoff: %s", exc)
                backoff = min(self._period, max(_BACKOFF_FIRST_S, backoff * 2))
                self._halt.wait(backoff)
                continue
            except Exception:  # never let the heartbeat thread die
                log.exception("heartbeat failed unexpectedly")
                self._halt.wait(self._period)
                continue
            if outage_since is not None:
                log.info("heartbeats resumed after %.1f s", time.monotonic() - outage_since)
                outage_since = None
            backoff = 0.0
            self._wake.wait(self._period)

    def stop(self, drain_seconds: float | None = None) -> None:
        """Warm stop: DRAINING at once, wait the drain window, DOWN, return.

        Call stop_now() from another thread (a second signal) to cut the
        drain window short. A driver that is not running publishes DOWN at once.
        """
        drain = self.config.server.drain_seconds if drain_seconds is None else drain_seconds
        if drain > 0 and self.running and self._state is not RoutingState.DOWN:
            self._state = RoutingState.DRAINING
            self._try_publish()
            self._abort_drain.wait(drain)
        self._halt.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.redis.socket_timeout + 1)
            self._thread = None
        self._state = RoutingState.DOWN
        self._try_publish()

    def stop_now(self) -> None:
        """End a running stop()'s drain window now (DOWN follows at once)."""
        self._abort_drain.set()

    def _try_publish(self) -> None:
        try:
            self.publish()
        except StoreError as exc:
            log.warning("could not publish %s: %s", self._state.name, exc)

    def close(self) -> None:
        if self.running:
            self.stop(0)
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> "ServerDriver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- links of this pod's users ----------------------------------------------------------

    def set_linked_pod(self, namespace: str, uid: str, service: str, pod: int | None = None,
                       *, ttl: float | None = None) -> int | None:
        """Force a link (to this pod by default); returns the previous pod."""
        names.bound_namespace(self.namespace, namespace)
        previous = self.store.set(self.namespace, uid, service, self._pod(pod), _ttl_ms(ttl))
        self._count_links(set_=1)
        return previous

    def try_set_linked_pod(self, namespace: str, uid: str, service: str, pod: int | None = None,
                           *, ttl: float | None = None) -> tuple[bool, int]:
        """Set unless a persistent link to another pod exists: (ok, pod in force)."""
        names.bound_namespace(self.namespace, namespace)
        ok, current = self.store.try_set(self.namespace, uid, service, self._pod(pod), _ttl_ms(ttl))
        self._count_links(set_=int(ok))
        return ok, current

    def remove_linked_pod(self, namespace: str, uid: str, service: str, *, after: float | None = None,
                          delayed: bool = False) -> bool:
        """Remove a link now, after `after` seconds, or (delayed) after links.remove_delay."""
        names.bound_namespace(self.namespace, namespace)
        removed, _ = self.store.remove(self.namespace, uid, service, after_ms=self._after_ms(after, delayed))
        self._count_links(removed=int(removed))
        return removed

    def remove_linked_pod_with_id(self, namespace: str, uid: str, service: str, pod: int | None = None,
                                  *, after: float | None = None, delayed: bool = False) -> bool:
        """Remove the link only if it points at `pod` (this pod by default): fencing."""
        names.bound_namespace(self.namespace, namespace)
        removed, _ = self.store.remove(self.namespace, uid, service, after_ms=self._after_ms(after, delayed),
                                       if_pod=self._pod(pod))
        self._count_links(removed=int(removed))
        return removed

    def _count_links(self, *, set_: int = 0, removed: int = 0) -> None:
        with self._links_lock:
            self.links_set += set_
            self.links_removed += removed

    def _after_ms(self, after: float | None, delayed: bool) -> int:
        return self.config.links.removal_ms(after, delayed=delayed)

    def _pod(self, pod: int | None) -> int:
        return self.pod if pod is None else names.pod(pod)


def _ttl_ms(ttl: float | None) -> int | None:
    return None if ttl is None else names.ttl_ms(ttl)


