"""stroute for asyncio: the drivers as coroutines, with automatic pipelining.

`AsyncClientDriver` offers every method of `ClientDriver`, the seed's names
included, as coroutines; `AsyncServerDriver` every method of `ServerDriver`,
its heartbeat a task. Its decisions are the sync driver's
(`stroute.clientcore`): the same validation, errors, Lua scripts, placement
strategies, coherent cache, stats and config. Only the waiting differs:
every command that concurrent coroutines send in one loop iteration goes out
in one write (`stroute.autopipeline`), so a gateway serving a thousand
requests at once pays for a few round trips, not a thousand.

    driver = AsyncClientDriver(config)
    pod = await driver.compute_linked_pod("default", uid, "game")
    ...
    await driver.close()

    server = AsyncServerDriver("game", 3, config)
    task = asyncio.create_task(server.run())   # READY, a heartbeat every state.period
    ...
    task.cancel()                              # DRAINING, the drain window, DOWN
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any, Callable, Iterable

from stroute.clientcore import BatchLinks, ClientCore, Explanation, Placement, log
from stroute.config import Config
from stroute.errors import InvalidInput, PodClaimed, StrouteError
from stroute.podstate import RoutingState, Snapshot
from stroute.servercore import ServerCore
from stroute.store import Link, Published, SetIfAbsent

__all__ = ["AsyncClientDriver", "AsyncServerDriver", "Placement", "Explanation", "BatchLinks"]

server_log = logging.getLogger("stroute.server")


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

        config, store, self._owns_store = config_module.for_driver(config, store, config_module.Config.open_async_store)
        super().__init__(config, store, clock=clock, cache_max_entries=cache_max_entries)
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


class AsyncServerDriver(ServerCore):
    """Publishes one pod's state every `state.period` seconds, from a task.

    `run()` is the whole lifecycle as one coroutine: it publishes READY (a
    new epoch) and a heartbeat every period until it is cancelled; then it
    publishes DRAINING, waits the drain window, publishes DOWN and lets the
    cancellation through, within the drain window plus STOP_GRACE_S
    whatever Redis does. A second cancellation during the drain window cuts
    it short (DOWN within HURRY_S). `start()`/`stop()` do the same in two
    calls. The load source may be a plain callable (read in a worker
    thread, so a slow one never blocks the loop) or a coroutine function.
    """

    def __init__(
        self,
        service: str,
        pod: int,
        config: Config | None = None,
        *,
        store: Any = None,
        load_source: Callable[[], Any] | None = None,
    ) -> None:
        from stroute import config as config_module

        config, store, self._owns_store = config_module.for_driver(config, store, config_module.Config.open_async_store)
        self._heartbeats: asyncio.Task | None = None
        self._sampler: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._publishing: asyncio.Lock | None = None
        self._first_reading: asyncio.Event | None = None
        self._abort_drain: asyncio.Event | None = None
        super().__init__(service, pod, config, store, load_source)

    def _sampling(self) -> bool:
        return self._sampler is not None and not self._sampler.done()

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    @property
    def running(self) -> bool:
        return self._heartbeats is not None and not self._heartbeats.done()

    async def read_load(self) -> int | None:
        """Read the load source once: the load, or None when it failed (the
        reason is kept, and logged when it changes)."""
        source = self._load_source
        if source is None:
            return None
        try:
            if inspect.iscoroutinefunction(source):
                value = await source()
            else:
                value = await asyncio.to_thread(source)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the source is a reading without a load
            value = exc
        load = self._reading(value)
        if self._first_reading is not None:
            self._first_reading.set()
        return load

    # --- heartbeats ---------------------------------------------------------------------

    async def publish(self, *, takeover: bool = False) -> Published:
        """Publish one heartbeat now. Raises StoreError when Redis fails and
        PodClaimed when another instance holds the pod (nothing written);
        with takeover, this heartbeat overwrites whatever the field holds."""
        if self._load_source is not None and self._load is None and self.epoch is None:
            await self.read_load()  # never started, so no reader task: read it here
        if self._publishing is None:
            self._publishing = asyncio.Lock()
        async with self._publishing:  # one at a time, always of the current state
            return await self._perform(self._heartbeat_op(takeover))

    async def start(self, *, takeover: bool = False) -> None:
        """Start heartbeats in a task (first one at once) as a new incarnation
        (a new epoch). With takeover, the first heartbeat overwrites a pod
        alive under another epoch instead of refusing it."""
        if self.running:
            return
        self._new_incarnation(takeover)
        self._wake = asyncio.Event()
        self._abort_drain = asyncio.Event()
        self._first_reading = asyncio.Event()
        self._sampler = None
        if self._load_source is not None and self._load is None:
            self._sampler = asyncio.ensure_future(self._sample())
        self._heartbeats = asyncio.ensure_future(self._beat())

    async def _sample(self) -> None:
        while True:
            began = time.monotonic()
            await self.read_load()
            await asyncio.sleep(max(0.0, self._period - (time.monotonic() - began)))

    async def _beat(self) -> None:
        from stroute.server import _BACKOFF_FIRST_S, _FIRST_LOAD_WAIT_S

        if self._sampler is not None:
            try:
                await asyncio.wait_for(self._first_reading.wait(), min(_FIRST_LOAD_WAIT_S, self._period))
            except asyncio.TimeoutError:
                pass
        backoff = 0.0
        outage_since: float | None = None
        while True:
            self._wake.clear()
            try:
                await self.publish()
            except PodClaimed as exc:
                self.claimed_by = exc
                if not self._claims_raised:
                    server_log.error("%s", exc)
                return
            except StrouteError as exc:
                if outage_since is None:
                    outage_since = time.monotonic()
                    server_log.warning("heartbeat failed, retrying with backoff: %s", exc)
                backoff = min(self._period, max(_BACKOFF_FIRST_S, backoff * 2))
                await asyncio.sleep(backoff)
                continue
            except Exception:  # never let the heartbeat task die
                server_log.exception("heartbeat failed unexpectedly")
                await asyncio.sleep(self._period)
                continue
            if outage_since is not None:
                server_log.info("heartbeats resumed after %.1f s", time.monotonic() - outage_since)
                outage_since = None
            backoff = 0.0
            try:
                await asyncio.wait_for(self._wake.wait(), self._period)
            except asyncio.TimeoutError:
                pass

    async def stop(self, drain_seconds: float | None = None, *, cause: str | None = None) -> None:
        """Warm stop: DRAINING at once, wait the drain window, DOWN, return.

        Returns within the drain window + STOP_GRACE_S whatever Redis does:
        a publish Redis does not answer in time is given up (logged). The
        drain window ends early on stop_now() or when the task running
        stop() is cancelled; DOWN then gets HURRY_S. A driver that is not
        running publishes DOWN at once; one whose pod another instance took
        publishes nothing.
        """
        from stroute.server import HURRY_S, STOP_GRACE_S

        drain = self.config.server.drain_seconds if drain_seconds is None else drain_seconds
        began = time.monotonic()
        hurried = False
        if drain > 0 and self.running and self._state is not RoutingState.DOWN and self.claimed_by is None:
            self._state = RoutingState.DRAINING
            self._reason = f"stopping{f' ({cause})' if cause else ''}: drain window of {drain:g} s, then DOWN"
            window_end = began + drain
            try:
                await self._publish_within(window_end - time.monotonic())
                await asyncio.wait_for(self._abort_drain.wait(), max(0.0, window_end - time.monotonic()))
                hurried = True
            except asyncio.TimeoutError:
                pass
            except asyncio.CancelledError:
                hurried = True  # cancelled again: DOWN now, then the cancellation goes on
                await self._halt_tasks()
                await self._down(cause, HURRY_S)
                raise
        await self._halt_tasks()
        await self._down(cause, HURRY_S if hurried else STOP_GRACE_S)

    def stop_now(self) -> None:
        """End a running stop()'s drain window now (DOWN follows at once)."""
        if self._abort_drain is not None:
            self._abort_drain.set()

    async def _down(self, cause: str | None, budget: float) -> None:
        if self.claimed_by is not None:
            return  # the field is another instance's now: write nothing
        self._state, self._reason = RoutingState.DOWN, f"stopped{f' ({cause})' if cause else ''}"
        await self._publish_within(budget)

    async def _publish_within(self, seconds: float) -> bool:
        """Publish the current state, giving up (logged) after `seconds`."""
        state = self._state
        try:
            await asyncio.wait_for(self.publish(), max(0.0, seconds))
            return True
        except asyncio.TimeoutError:
            server_log.warning("could not publish %s: Redis did not answer in time, giving up", state.name)
        except PodClaimed as exc:
            self.claimed_by = exc
            if not self._claims_raised:
                server_log.error("%s", exc)
        except StrouteError as exc:
            server_log.warning("could not publish %s: %s", state.name, exc)
        return False

    async def _halt_tasks(self) -> None:
        cancel = getattr(self._load_source, "cancel", None)
        if cancel is not None:
            try:
                cancel()  # a load command still running is killed, not waited for
            except Exception:
                server_log.exception("could not cancel the load source")
        for task in (self._heartbeats, self._sampler):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._heartbeats = self._sampler = None

    async def run(self, *, drain_seconds: float | None = None, takeover: bool = False) -> None:
        """The lifecycle as a task: start, publish until cancelled, then
        stop() (DRAINING, the drain window, DOWN), and let the cancellation
        through. Raises PodClaimed when another instance holds the pod at
        start (unless takeover) or takes it over later."""
        self._claims_raised = True
        try:
            await self.start(takeover=takeover)
            try:
                await asyncio.shield(self._heartbeats)
            except asyncio.CancelledError:
                await self.stop(drain_seconds, cause="cancelled")
                raise
            await self._halt_tasks()
            if self.claimed_by is not None:
                raise self.claimed_by
        finally:
            self._claims_raised = False

    async def run_until_signalled(self, *, drain_seconds: float | None = None, takeover: bool = False) -> int:
        """run() until a stop signal (SIGTERM, SIGINT, SIGHUP, ...): the
        first one is a warm stop, a second one cuts the drain short. Returns
        the first signal's number. Uses the running loop's signal handlers
        (main thread, Unix)."""
        from stroute.server import signal_name, stop_signals

        loop = asyncio.get_running_loop()
        received: list[int] = []
        stopped = asyncio.Event()

        def on_signal(number: int) -> None:
            received.append(number)
            if len(received) == 1:
                stopped.set()
            else:
                self.stop_now()

        installed = []
        for number in stop_signals():
            try:
                loop.add_signal_handler(number, on_signal, number)
                installed.append(number)
            except (OSError, ValueError, RuntimeError):  # not catchable here
                continue
        if not installed:
            raise InvalidInput("run_until_signalled() needs the main thread's event loop (signal handlers run there)")
        self._claims_raised = True
        try:
            await self.start(takeover=takeover)
            waiting = asyncio.ensure_future(stopped.wait())
            await asyncio.wait([waiting, self._heartbeats], return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if not received:
                await self._halt_tasks()
                raise self.claimed_by or PodClaimed("the heartbeats ended")
            name = signal_name(received[0])
            server_log.info("%s: draining, then DOWN (send it again to stop at once)", name)
            await self.stop(drain_seconds, cause=name)
            if self.claimed_by is not None:
                raise self.claimed_by
            server_log.info("stopped")
            return received[0]
        finally:
            self._claims_raised = False
            for number in installed:
                loop.remove_signal_handler(number)

    async def close(self) -> None:
        if self.running:
            await self.stop(0)
        if self._owns_store:
            await self.store.close()

    async def __aenter__(self) -> "AsyncServerDriver":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- links of this pod's users ----------------------------------------------------------

    async def set_linked_pod(self, namespace: str, uid: str, service: str, pod: int | None = None,
                             *, ttl: float | None = None) -> int | None:
        """Force a link (to this pod by default); returns the previous pod."""
        return await self._perform(self._set_linked_pod_op(namespace, uid, service, pod, ttl))

    async def try_set_linked_pod(self, namespace: str, uid: str, service: str, pod: int | None = None,
                                 *, ttl: float | None = None) -> tuple[bool, int]:
        """Set unless a persistent link to another pod exists: (ok, pod in force)."""
        return await self._perform(self._try_set_linked_pod_op(namespace, uid, service, pod, ttl))

    async def remove_linked_pod(self, namespace: str, uid: str, service: str, *, after: float | None = None,
                                delayed: bool = False) -> bool:
        """Remove a link now, after `after` seconds, or (delayed) after links.remove_delay."""
        return await self._perform(self._remove_linked_pod_op(namespace, uid, service, after, delayed))

    async def remove_linked_pod_with_id(self, namespace: str, uid: str, service: str, pod: int | None = None,
                                        *, after: float | None = None, delayed: bool = False) -> bool:
        """Remove the link only if it points at `pod` (this pod by default): fencing."""
        return await self._perform(self._remove_linked_pod_op(namespace, uid, service, after, delayed,
                                                              if_pod=pod))
