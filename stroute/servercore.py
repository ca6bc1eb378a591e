"""What a server driver decides, written once for the sync and asyncio drivers.

`ServerCore` holds a pod's state (load, routing state, epoch, ownership,
counters) and every decision about what a heartbeat publishes and what its
answer means. A heartbeat and the link methods are operations in the sense
of `stroute.store.domain`: `ServerDriver` runs them with `Store.run` from
its threads, `AsyncServerDriver` with `await AsyncStore.run` from its tasks.

Rules that keep a pod from being misreported:
- Load: until the load source has given a good value, the pod publishes
  DRAINING (alive, takes no new users) and notes why beside its field;
  after that a failing source keeps the last good value, and says so.
- Ownership: each start is an incarnation with its own epoch. Its first
  heartbeat refuses a pod alive under another epoch (unless takeover), and
  every later one refuses a field that another epoch wrote: the driver then
  stops publishing and reports PodClaimed (exit 4) instead of flipping the
  field with the other instance. Both checks run inside state_publish.lua.
"""

from __future__ import annotations

import abc

import logging
import os
import threading
import time
from typing import Any, Callable

from stroute import names
from stroute.config import Config
from stroute.errors import PodClaimed
from stroute.podstate import PodState, RoutingState
from stroute.store import domain
from stroute.store.domain import Op, Published

log = logging.getLogger("stroute.server")

# Heartbeats between two re-registrations of the service in the namespace's
# registry set (and re-sends of the pod's reason note): they change rarely,
# so most heartbeats are one EVALSHA.
_REGISTER_EVERY = 10


def cpu_load(cpu_factor: float) -> int | None:
    """Load derived from the host's CPU use: 0..1000 scaled by cpu_factor;
    None when the host does not say (a made-up 0 would attract every user)."""
    try:
        busy = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return None
    return round(1000 * cpu_factor * min(1.0, busy))


class ServerCore(abc.ABC):
    """A server driver's state and decisions; its Redis work as operations.

    Load comes from, in order: a value set with set_load_state(), the
    `load_source` callable (read every period, apart from heartbeats; it
    returns an int or raises with a one-line reason), else the host's CPU
    use times server.cpu_factor.
    """

    def __init__(self, service: str, pod: int, config: Config, store: Any,
                 load_source: Callable[[], Any] | None) -> None:
        self.config = config  # validated by the driver
        self.namespace = self.config.namespace
        self.service = names.service(service)
        self.pod = names.pod(pod)
        self.store = store
        self._perform = store.run  # runs an operation: a call, or a coroutine (the asyncio store)
        self._ks = store.keys(self.namespace)
        self._load_source = load_source
        self._load: int | None = None
        self._state = RoutingState.READY
        self._reason: str | None = None  # why the pod is in the state it asked for (a stop in progress)
        self._published_state: RoutingState | None = None
        self._published_reason: str | None = None
        self._since_register = 0
        self.epoch: int | None = None
        self._owned = False  # a heartbeat of this incarnation reached the field
        self._takeover = False
        self._claims_raised = False
        self.claimed_by: PodClaimed | None = None  # set when another instance holds or took the pod
        self.cordoned = False
        self.last_heartbeat_ms: int | None = None
        # Redis time of the heartbeat that first published the current state
        # (how long a pod has been DRAINING is what tells a stuck drain).
        self.state_since_ms: int | None = None
        self.heartbeats_ok = 0
        self.heartbeats_failed = 0
        self.last_load: int | None = None  # the load of the last heartbeat that reached Redis
        self.links_set = 0  # links set through this driver's link methods
        self.links_removed = 0
        self._links_lock = threading.Lock()
        # Called with the seconds each publish's Redis round trip took (failed ones too).
        self.publish_observers: list[Callable[[float], None]] = []
        # The load source's readings: written by whatever reads it (a thread).
        self._load_lock = threading.Lock()
        self._good_load: int | None = None  # the last good value of the load source
        self._load_problem: str | None = None  # why its last reading failed
        self._load_read_at: float | None = None  # monotonic time of its last reading
        self._period = self.config.state.period
        self._expire_ms = self.config.state.expire_ms

    # --- what the driver's own waiting provides ------------------------------------

    @abc.abstractmethod
    def _sampling(self) -> bool:
        """Whether a reader of the load source is running."""
        ...

    @abc.abstractmethod
    def _wake_up(self) -> None:
        """Publish at once: the state asked for changed."""
        ...

    def _load_was_read(self) -> None:
        """A reading of the load source ended (a first heartbeat may wait for it)."""

    # --- load and routing state ---------------------------------------------------

    def set_load_state(self, load: int) -> None:
        """Set the load published from the next heartbeat on (lower is better)."""
        self._load = names.load(load)

    def get_load_state(self) -> int:
        """The load the next heartbeat will publish (0 while it is unknown:
        the pod is then published DRAINING, see publishing())."""
        return self._load_status()[0]

    def _reading(self, value: Any) -> int | None:
        """Take one value read from the load source (or the exception it
        raised): the load, or None when it failed (the reason is kept, and
        logged when it changes)."""
        if not isinstance(value, BaseException):
            try:
                load = names.load(value)
            except Exception as exc:  # a value that is no load is a failed reading
                value = exc
        if isinstance(value, BaseException):
            problem = (str(value).strip() or type(value).__name__).splitlines()[0]
            with self._load_lock:
                changed, self._load_problem = problem != self._load_problem, problem
                self._load_read_at, good = time.monotonic(), self._good_load
            self._load_was_read()
            if changed:
                log.warning("%s; %s", problem, "no load yet: the pod is published DRAINING" if good is None
                            else f"keeping the last good load {good}")
            return None
        with self._load_lock:
            was, self._load_problem = self._load_problem, None
            had, self._good_load, self._load_read_at = self._good_load, load, time.monotonic()
        self._load_was_read()
        if was is not None:
            log.info("load source works %s: load %d", "again" if had is not None else "now", load)
        return load

    def _load_status(self) -> tuple[int, bool, str | None]:
        """(load to publish, unknown?, why it is not a plain fresh reading)."""
        if self._load is not None:
            return self._load, False, None
        if self._load_source is None:
            load = cpu_load(self.config.server.cpu_factor)
            if load is None:
                return 0, True, "no load yet: the host's load average is not available (os.getloadavg failed)"
            return load, False, None
        with self._load_lock:
            good, problem, read_at = self._good_load, self._load_problem, self._load_read_at
        silent = None if read_at is None else time.monotonic() - read_at
        if problem is None and self._sampling() and silent is not None and silent > 2 * self._period + 1:
            problem = f"the load source has not answered for {silent:.0f} s"
        if good is None:
            return 0, True, f"no load yet: {problem or 'waiting for the first reading of the load source'}"
        if problem is not None:
            return good, False, f"load source failing, publishing the last good load {good}: {problem}"
        return good, False, None

    def publishing(self) -> tuple[RoutingState, str | None]:
        """(state, reason) the next heartbeat publishes: the state asked
        for, except DRAINING instead of READY while the load is unknown."""
        state = self._state
        _, unknown, load_reason = self._load_status()
        if state is RoutingState.READY:
            return (RoutingState.DRAINING if unknown else state), load_reason or self._reason
        if state is RoutingState.DOWN:
            return state, self._reason
        return state, self._reason or load_reason

    @property
    def load_problem(self) -> str | None:
        """Why the load is unknown or not fresh, or None."""
        return self._load_status()[2]

    def set_routing_state(self, state: RoutingState | str, reason: str | None = None) -> None:
        """Change READY / DRAINING / DOWN (with an optional reason shown by
        `stroute pods`); published at once when running."""
        self._state = RoutingState.parse(state)
        self._reason = reason
        self._wake_up()

    def get_routing_state(self) -> RoutingState:
        return self._state

    def _new_incarnation(self, takeover: bool) -> None:
        """A start: a new epoch, and a driver stopped DOWN takes users again."""
        if self._state is RoutingState.DOWN:
            self._state, self._reason = RoutingState.READY, None
        self.epoch = int(time.time() * 1000)
        self._owned, self._takeover, self.claimed_by = False, takeover, None

    # --- heartbeats ---------------------------------------------------------------------

    def _register_due(self, state: RoutingState) -> bool:
        """Register on the first heartbeat, on a state change, after a failure, and every Nth."""
        return state is not self._published_state or self._since_register == 0

    def _claim(self, takeover: bool) -> str:
        if takeover or (self._takeover and not self._owned):
            return "force"
        return "continue" if self._owned else "start"

    def _heartbeat_op(self, takeover: bool = False) -> Op[Published]:
        """One heartbeat. Raises StoreError when Redis fails and PodClaimed
        when another instance holds the pod (nothing written); with
        takeover, it overwrites whatever the field holds. One at a time:
        the driver serializes them."""
        try:
            return (yield from self._publish_op(takeover))
        except Exception:
            self.heartbeats_failed += 1
            self._since_register = 0  # register again on the next heartbeat that gets through
            raise

    def _publish_op(self, takeover: bool) -> Op[Published]:
        state, reason = self.publishing()
        load = self.get_load_state()
        register = self._register_due(state)
        claim = self._claim(takeover)
        started = time.perf_counter()
        try:
            result = yield from domain.publish_state(
                self._ks,
                self.service,
                self.pod,
                load=load,
                state=state,
                epoch=self.epoch,
                expire_ms=self._expire_ms,
                summarize=self.pod == 0,
                register=register,
                claim=claim,
                # The note is re-sent whenever the service re-registers, so a
                # Redis that lost it (a restart) gets it back.
                reason=reason if register or reason != self._published_reason else False,
                cluster=self.store.cluster,
            )
        finally:
            self._observe_publish(time.perf_counter() - started)
        if not result.written:
            raise self._claimed(result)
        previous = result.previous
        if (previous is not None and previous.epoch is None and self.epoch is not None
                and previous.heartbeat_ms > (self.last_heartbeat_ms or 0)
                and result.heartbeat_ms - previous.heartbeat_ms <= self._expire_ms
                and previous.state is not RoutingState.DOWN):
            # An original Go/Java driver or `serve --once` names no instance:
            # it is replaced, never fought over, but not silently.
            log.warning("pod %d of %s: replaced a state field without an epoch (%s), written by an original "
                        "driver or 'stroute serve --once' less than %g s ago",
                        self.pod, self.service, previous.encode(), self.config.state.expire)
        if self.epoch is not None:
            self._owned = True
        self.last_load = load
        self._published_reason = reason
        self._since_register = (self._since_register + 1) % _REGISTER_EVERY
        if state is not self._published_state:
            log.info(
                "%s pod %d of %s: %s%s",
                self.namespace,
                self.pod,
                self.service,
                state.name if self._published_state is None else f"{self._published_state.name} -> {state.name}",
                f" ({reason})" if reason else "",
            )
            self._published_state = state
            self.state_since_ms = result.heartbeat_ms
        if result.cordoned != self.cordoned:
            log.info("pod %d of %s is %s by an operator", self.pod, self.service,
                     "cordoned" if result.cordoned else "no longer cordoned")
            self.cordoned = result.cordoned
        self.last_heartbeat_ms = result.heartbeat_ms
        self.heartbeats_ok += 1
        log.debug("heartbeat pod %d of %s: %s, load %d%s", self.pod, self.service, state.name, load,
                  ", cordoned" if result.cordoned else "")
        return result

    def _claimed(self, result: Published) -> PodClaimed:
        other: PodState | None = result.previous
        epoch = other.epoch if other else None
        age = None if other is None else max(0, result.heartbeat_ms - other.heartbeat_ms)
        seen = "" if other is None else f"heartbeat {age / 1000:.1f} s ago, {other.state.name}"
        where = f"pod {self.pod} of {self.service!r} (namespace {self.namespace!r})"
        if self._owned:
            return PodClaimed(
                f"{where} was taken over by another instance (epoch {epoch}, {seen}): this one "
                f"(epoch {self.epoch}) stops publishing",
                epoch=epoch, heartbeat_age_ms=age,
                hint="two instances were started for one pod: the newer one took it over",
            )
        left = "" if age is None else f" in {max(0, self._expire_ms - age) / 1000:.1f} s"
        return PodClaimed(
            f"{where} is alive under another epoch {epoch} ({seen}): another instance publishes for it",
            epoch=epoch, heartbeat_age_ms=age,
            hint=f"stop that instance, or take the pod over (serve --takeover, start(takeover=True)): the other "
                 f"one then stops at its next heartbeat; if it crashed, its pod goes stale{left} (state.expire)",
        )

    def _observe_publish(self, seconds: float) -> None:
        for observe in self.publish_observers:
            try:
                observe(seconds)
            except Exception:  # an observer must never stop heartbeats
                log.exception("publish observer failed")

    # --- links of this pod's users ----------------------------------------------------------

    def _set_linked_pod_op(self, namespace: str, uid: str, service: str, pod: int | None,
                           ttl: float | None) -> Op[int | None]:
        names.bound_namespace(self.namespace, namespace)
        previous = yield from domain.set_link(self._ks, uid, service, self._pod(pod), _ttl_ms(ttl))
        self._count_links(set_=1)
        return previous

    def _try_set_linked_pod_op(self, namespace: str, uid: str, service: str, pod: int | None,
                               ttl: float | None) -> Op[tuple[bool, int]]:
        names.bound_namespace(self.namespace, namespace)
        ok, current = yield from domain.try_set(self._ks, uid, service, self._pod(pod), _ttl_ms(ttl))
        self._count_links(set_=int(ok))
        return ok, current

    def _remove_linked_pod_op(self, namespace: str, uid: str, service: str, after: float | None,
                              delayed: bool, if_pod: int | None | bool = False) -> Op[bool]:
        """`if_pod` False: not fenced; None: fenced by this pod; a pod: fenced by it."""
        names.bound_namespace(self.namespace, namespace)
        fence = None if if_pod is False else self._pod(if_pod)
        removed, _ = yield from domain.remove(self._ks, uid, service, after_ms=self._after_ms(after, delayed),
                                              if_pod=fence)
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
