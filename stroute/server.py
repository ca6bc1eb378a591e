"""The server driver: a pod publishes its load and routing state.

The seed's StatefulRouteForServerDriver, in Python. `start()` runs a
heartbeat thread, and with a load source a second thread that reads it, so
a slow or hanging source never delays a heartbeat. `stop()` publishes
DRAINING, waits the drain window (cut short by `stop_now()`), publishes
DOWN and returns within the drain window plus STOP_GRACE_S, whatever Redis
does. `run_until_signalled()` is the whole daemon lifecycle on signals;
`stroute serve` only parses flags and calls it.

Rules that keep a pod from being misreported:
- Load: until the load source has given a good value, the pod publishes
  DRAINING (alive, takes no new users) and notes why beside its field;
  after that a failing source keeps the last good value, and says so.
- Ownership: each start() is an incarnation with its own epoch. Its first
  heartbeat refuses a pod alive under another epoch (unless takeover), and
  every later one refuses a field that another epoch wrote: the driver then
  stops publishing and reports PodClaimed (exit 4) instead of flipping the
  field with the other instance. Both checks run inside state_publish.lua.
- Signals: run_until_signalled() turns every catchable signal that would
  end the process (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, ...)
  into a warm stop, and a second one into a stop now.

Redis outages are logged and retried with backoff; the driver never
crashes on them.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable

from stroute.config import Config
from stroute.errors import InvalidInput, PodClaimed, StrouteError
from stroute.podstate import RoutingState
from stroute.servercore import ServerCore, log
from stroute.store import Published, Store

_BACKOFF_FIRST_S = 0.2
# Beyond the drain window, stop() waits at most this long for DOWN to reach
# Redis (a hung Redis must not hold a pod past Kubernetes' grace period:
# the default 20 s window + 2 s stays inside its 30 s).
STOP_GRACE_S = 2.0
# After a second signal, DOWN gets this long to reach Redis, then the stop ends.
HURRY_S = 1.0
# The first heartbeat waits this long for the first load reading (a fast
# source then never shows a DRAINING blip at start; a hanging one cannot
# delay it more than this).
_FIRST_LOAD_WAIT_S = 1.0
_POLL_S = 0.05  # how soon the main thread notices a signal

# Signals a warm stop is made of: the usual three, and every other catchable
# signal whose default action ends the process, so none leaves a pod READY
# until it goes stale. SIGPIPE and SIGXFSZ are left out (Python ignores
# them), as are faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP,
# SIGSYS), which a Python handler cannot recover from.
_ALWAYS = ("SIGTERM", "SIGINT", "SIGHUP")
_IF_UNHANDLED = ("SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGIO", "SIGPWR",
                 "SIGSTKFLT")


def stop_signals() -> list[int]:
    """The signals run_until_signalled() stops on (when no handler of the application's has them)."""
    out = [getattr(signal, name) for name in (*_ALWAYS, *_IF_UNHANDLED) if hasattr(signal, name)]
    if hasattr(signal, "SIGRTMIN"):
        out += range(signal.SIGRTMIN, signal.SIGRTMAX + 1)
    return list(dict.fromkeys(int(s) for s in out))


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        if hasattr(signal, "SIGRTMIN") and signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return f"signal {number}"


class ServerDriver(ServerCore):
    """Publishes one pod's state every `state.period` seconds, from a thread.

    Load comes from, in order: a value set with set_load_state(), the
    `load_source` callable (read in its own thread every period; it returns
    an int or raises with a one-line reason), else the host's CPU use times
    server.cpu_factor.
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

        config, store, self._owns_store = config_module.for_driver(config, store, config_module.Config.open_store)
        self._lock = threading.Lock()  # one publish at a time, always of the current state
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._abort_drain = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampler: threading.Thread | None = None
        self._load_read = threading.Event()
        super().__init__(service, pod, config, store, load_source)

    def _sampling(self) -> bool:
        return self._sampler is not None and self._sampler.is_alive()

    def _wake_up(self) -> None:
        self._wake.set()

    def _load_was_read(self) -> None:
        self._load_read.set()

    def read_load(self) -> int | None:
        """Read the load source once, in this thread: the load, or None when
        it failed (the reason is kept, and logged when it changes)."""
        source = self._load_source
        if source is None:
            return None
        try:
            value = source()
        except Exception as exc:  # any failure of the source is a reading without a load
            value = exc
        return self._reading(value)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- heartbeats ---------------------------------------------------------------------

    def publish(self, *, takeover: bool = False) -> Published:
        """Publish one heartbeat now. Raises StoreError when Redis fails and
        PodClaimed when another instance holds the pod (nothing written);
        with takeover, this heartbeat overwrites whatever the field holds."""
        if self._load_source is not None and self._load is None and self.epoch is None:
            self.read_load()  # never started, so no reader thread (serve --once): read it here
        with self._lock:
            return self._perform(self._heartbeat_op(takeover))

    def start(self, *, takeover: bool = False) -> None:
        """Start heartbeats in a background thread (first one at once) as a
        new incarnation (a new epoch). With takeover, the first heartbeat
        overwrites a pod alive under another epoch instead of refusing it."""
        if self.running:
            return
        self._new_incarnation(takeover)
        # Each run has its own halt event: a thread of an earlier run still
        # stuck on a hung Redis ends when it returns, whatever this run does.
        halt = self._halt = threading.Event()
        self._abort_drain.clear()
        self._load_read = threading.Event()
        self._sampler = None
        if self._load_source is not None and self._load is None:
            self._sampler = threading.Thread(target=self._sample, args=(halt,),
                                             name=f"stroute-load-{self.service}-{self.pod}", daemon=True)
            self._sampler.start()
        self._thread = threading.Thread(
            target=self._run, args=(halt,), name=f"stroute-heartbeat-{self.service}-{self.pod}", daemon=True
        )
        self._thread.start()

    def _sample(self, halt: threading.Event) -> None:
        while not halt.is_set():
            began = time.monotonic()
            self.read_load()
            halt.wait(max(0.0, self._period - (time.monotonic() - began)))

    def _run(self, halt: threading.Event) -> None:
        if self._sampler is not None:
            self._load_read.wait(min(_FIRST_LOAD_WAIT_S, self._period))
        backoff = 0.0
        outage_since: float | None = None
        while not halt.is_set():
            self._wake.clear()
            try:
                self.publish()
            except PodClaimed as exc:
                self.claimed_by = exc
                if not self._claims_raised:  # run_until_signalled() raises it: the caller reports it
                    log.error("%s", exc)
                halt.set()
                break
            except StrouteError as exc:
                if outage_since is None:
                    outage_since = time.monotonic()
                    log.warning("heartbeat failed, retrying with backoff: %s", exc)
                backoff = min(self._period, max(_BACKOFF_FIRST_S, backoff * 2))
                halt.wait(backoff)
                continue
            except Exception:  # never let the heartbeat thread die
                log.exception("heartbeat failed unexpectedly")
                halt.wait(self._period)
                continue
            if outage_since is not None:
                log.info("heartbeats resumed after %.1f s", time.monotonic() - outage_since)
                outage_since = None
            backoff = 0.0
            self._wake.wait(self._period)

    def stop(self, drain_seconds: float | None = None, *, interrupted: Callable[[], bool] | None = None,
             cause: str | None = None) -> None:
        """Warm stop: DRAINING at once, wait the drain window, DOWN, return.

        Returns within the drain window + STOP_GRACE_S whatever Redis does:
        a publish Redis does not answer in time is given up (logged). The
        drain window ends early on stop_now() (from another thread) or when
        `interrupted()` turns true (polled: a signal handler's flag); DOWN
        then gets HURRY_S. A driver that is not running publishes DOWN at
        once; one whose pod another instance took publishes nothing.
        `cause` (e.g. "SIGTERM") goes into the reason noted beside the field.
        """
        drain = self.config.server.drain_seconds if drain_seconds is None else drain_seconds
        began = time.monotonic()

        def cut() -> bool:
            return self._abort_drain.is_set() or (interrupted is not None and interrupted())

        if drain > 0 and self.running and self._state is not RoutingState.DOWN and self.claimed_by is None:
            self._state = RoutingState.DRAINING
            self._reason = f"stopping{f' ({cause})' if cause else ''}: drain window of {drain:g} s, then DOWN"
            window_end = began + drain
            self._publish_by(window_end, cut, hurry=0.0)  # cut short: DOWN is all that matters now
            while not cut() and time.monotonic() < window_end:
                self._abort_drain.wait(min(_POLL_S, window_end - time.monotonic()))
        self._halt_threads()
        if self.claimed_by is not None:
            return  # the field is another instance's now: write nothing
        self._state, self._reason = RoutingState.DOWN, f"stopped{f' ({cause})' if cause else ''}"
        hurried = cut()
        self._publish_by(time.monotonic() + (HURRY_S if hurried else STOP_GRACE_S), cut, hurry=HURRY_S)

    def stop_now(self) -> None:
        """End a running stop()'s drain window now (DOWN follows at once)."""
        self._abort_drain.set()

    def _halt_threads(self) -> None:
        self._halt.set()
        self._wake.set()
        cancel = getattr(self._load_source, "cancel", None)
        if cancel is not None:
            try:
                cancel()  # a load command still running is killed, not waited for
            except Exception:
                log.exception("could not cancel the load source")
        if self._thread is not None:
            # A heartbeat stuck on a hung Redis is not waited for: it holds the
            # publish lock, so DOWN still goes after it (or is given up).
            self._thread.join(timeout=_POLL_S)
            self._thread = None

    def _publish_by(self, deadline: float, cut: Callable[[], bool], *, hurry: float) -> bool:
        """Publish the current state from a helper thread, waiting for it
        until `deadline`, or at most `hurry` more seconds once `cut()` turns
        true; False if given up."""
        state = self._state
        helper = threading.Thread(target=self._try_publish, name="stroute-publish", daemon=True)
        helper.start()
        while helper.is_alive():
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("could not publish %s: Redis did not answer in time, giving up", state.name)
                return False
            if cut():
                deadline, cut = min(deadline, time.monotonic() + hurry), lambda: False
            helper.join(min(_POLL_S, left))
        return True

    def _try_publish(self) -> None:
        try:
            self.publish()
        except PodClaimed as exc:
            self.claimed_by = exc
            if not self._claims_raised:
                log.error("%s", exc)
        except StrouteError as exc:
            log.warning("could not publish %s: %s", self._state.name, exc)

    def run_until_signalled(self, *, drain_seconds: float | None = None, takeover: bool = False) -> int:
        """The daemon lifecycle: start, publish until a stop signal, stop().

        The first signal of stop_signals() is a warm stop (DRAINING, the
        drain window, DOWN; at most drain + STOP_GRACE_S); a second one
        ends the drain at once (DOWN within HURRY_S). Returns the first
        signal's number. Raises PodClaimed when another instance holds the
        pod at start (unless takeover) or takes it over later: nothing more
        is published then. Call it from the main thread (Python runs signal
        handlers there); the previous handlers are back when it returns.
        """
        if threading.current_thread() is not threading.main_thread():
            raise InvalidInput("run_until_signalled() must run in the main thread (signal handlers run there)")
        received: list[int] = []

        def on_signal(signum, frame):
            # Record only: a handler runs between two bytecodes of the main
            # thread, possibly while it holds the very lock (an Event's) that
            # anything more would take. The main thread polls the record.
            received.append(signum)

        previous = {}
        for number in stop_signals():
            try:
                current = signal.getsignal(number)
                if signal_name(number) in _ALWAYS or current is signal.SIG_DFL:
                    previous[number] = signal.signal(number, on_signal)
            except (OSError, ValueError):  # not catchable here
                continue
        self._claims_raised = True
        try:
            self.start(takeover=takeover)
            while not received and self.claimed_by is None:
                time.sleep(_POLL_S)
            if not received:
                self._halt_threads()
                raise self.claimed_by
            name = signal_name(received[0])
            drain = self.config.server.drain_seconds if drain_seconds is None else drain_seconds
            if drain > 0:
                log.info("%s: draining for %g s, then DOWN (send it again to stop at once)", name, drain)
            else:
                log.info("%s: stopping", name)
            began = time.monotonic()
            self.stop(drain, interrupted=lambda: len(received) > 1, cause=name)
            if len(received) > 1:
                log.info("%s again: drain cut short after %.1f s", signal_name(received[1]), time.monotonic() - began)
            if self.claimed_by is not None:
                raise self.claimed_by
            log.info("stopped")
            return received[0]
        finally:
            self._claims_raised = False
            for number, handler in previous.items():
                signal.signal(number, handler)

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
        return self._perform(self._set_linked_pod_op(namespace, uid, service, pod, ttl))

    def try_set_linked_pod(self, namespace: str, uid: str, service: str, pod: int | None = None,
                           *, ttl: float | None = None) -> tuple[bool, int]:
        """Set unless a persistent link to another pod exists: (ok, pod in force)."""
        return self._perform(self._try_set_linked_pod_op(namespace, uid, service, pod, ttl))

    def remove_linked_pod(self, namespace: str, uid: str, service: str, *, after: float | None = None,
                          delayed: bool = False) -> bool:
        """Remove a link now, after `after` seconds, or (delayed) after links.remove_delay."""
        return self._perform(self._remove_linked_pod_op(namespace, uid, service, after, delayed))

    def remove_linked_pod_with_id(self, namespace: str, uid: str, service: str, pod: int | None = None,
                                  *, after: float | None = None, delayed: bool = False) -> bool:
        """Remove the link only if it points at `pod` (this pod by default): fencing."""
        return self._perform(self._remove_linked_pod_op(namespace, uid, service, after, delayed, if_pod=pod))
