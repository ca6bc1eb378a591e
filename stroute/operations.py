"""Operator actions on one pod: drain (cordon, then migrate), clear its links, forget it.

Drain and clear go link by link through the store's fenced operations, so
they never overwrite what a client or the pod changed meanwhile: drain moves
a link with compare-and-set (Store.move, which keeps a temporary link's
remaining TTL), clear removes it with remove-if (Store.remove(if_pod=N)). A
link that changed between the scan and the write is skipped. A key the scan
cannot read as a link is left alone and reported (`bad_keys`).

Clear and forget refuse a pod that is alive unless forced: its users would
lose their links, or its state row would vanish, while it still serves them.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from stroute import names, placement
from stroute.config import Config, StateConfig
from stroute.errors import Conflict, DrainIncomplete, InvalidInput, NoAvailablePod
from stroute.podstate import PodView, Snapshot
from stroute.store import BadKeys, Link, Store

# Without a config, a pod is judged alive by the default expiry window.
_DEFAULT_EXPIRE_MS = StateConfig().expire_ms

# A drain's last pass waits until clients have seen the cordon: they re-read
# pod states at most every state.refresh seconds, plus one round trip.
_SETTLE_GRACE_S = 0.5
# Passes over the pod's links before a drain stops chasing new arrivals (a
# client that ignores the cordon, e.g. the pod linking users to itself).
_MAX_PASSES = 10
# Without --migrate, how often a drain with a deadline re-counts the links.
_WAIT_POLL_S = 1.0


@dataclass
class DrainProgress:
    """Where a drain is: `left` = links still on the pod (as last counted)."""

    phase: str  # "migrate" or "wait"
    total: int
    moved: int
    skipped: int
    left: int


@dataclass
class DrainReport:
    namespace: str
    service: str
    pod: int
    links_before: int
    moved: int = 0  # with dry_run: would move
    skipped: int = 0  # changed between the scan and the move: left alone
    remaining: int = 0  # links on the pod at the end
    to_move: int = 0  # of `remaining`, links the drain was asked to move (the deadline stopped it)
    targets: dict[int, int] = field(default_factory=dict)  # pod -> links moved (would move) there
    dry_run: bool = False
    migrate: bool = False
    cordon_changed: bool = False  # False: the pod was already cordoned (or dry run)
    deadline_reached: bool = False
    error: Exception | None = None  # NoAvailablePod when the targets ran out mid-drain; DrainIncomplete
    bad_keys: BadKeys = field(default_factory=BadKeys)  # of the last scan: keys not readable as links

    def to_dict(self) -> dict:
        return {
            "namespace": self.namespace,
            "service": self.service,
            "pod": self.pod,
            "links_before": self.links_before,
            "moved": self.moved,
            "skipped": self.skipped,
            "remaining": self.remaining,
            "bad_keys": self.bad_keys.to_dict(),
        }


class Drain:
    """Cordon a pod and (with migrate) move its links to routable pods.

    The targets are chosen by the configured placement strategy over the
    routable pods of a snapshot re-read at most every state.refresh seconds,
    counting this drain's own moves as extra load (as a client driver counts
    its placements), so a drain of many links spreads them out.
    """

    def __init__(
        self,
        store: Store,
        config: Config,
        service: str,
        pod: int,
        *,
        migrate: bool = False,
        include_persistent: bool = False,
        dry_run: bool = False,
        rate: float | None = None,
        deadline: float | None = None,
        on_progress: Callable[[DrainProgress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if include_persistent and not migrate:
            raise InvalidInput("--include-persistent only applies with --migrate")
        if rate is not None and (isinstance(rate, bool) or not rate > 0 or rate == float("inf")):
            raise InvalidInput(f"invalid rate {rate!r}: must be a number of moves per second greater than 0")
        if deadline is not None and (isinstance(deadline, bool) or not deadline >= 0 or deadline == float("inf")):
            raise InvalidInput(f"invalid deadline {deadline!r}: must be a number of seconds, 0 or more")
        self.store = store
        self.config = config
        self.namespace = config.namespace
        self.service = names.service(service)
        self.pod = names.pod(pod)
        self.migrate = migrate
        self.include_persistent = include_persistent
        self.dry_run = dry_run
        self.rate = rate
        self.deadline = deadline
        self._on_progress = on_progress
        self._clock = clock
        self._sleep = sleep
        self._expire_ms = config.state.expire_ms
        self._strategy = placement.make(config.placement.strategy,
                                        good_load_range=config.placement.good_load_range)
        self._snap: Snapshot | None = None
        self._snap_at = 0.0
        self._extra: Counter = Counter()  # this drain's moves per pod since the snapshot
        self._next_slot = 0.0
        self._end: float | None = None
        self._bad = BadKeys()  # of the last scan

    # --- the run -------------------------------------------------------------------

    def run(self) -> DrainReport:
        start = self._clock()
        self._end = None if self.deadline is None else start + self.deadline
        if self.migrate and not self._targets(self._snapshot(force=True)):
            snap = self._snapshot()
            raise NoAvailablePod(
                f"cannot drain pod {self.pod} of {self.service!r} with --migrate: no other routable pod to "
                f"move its links to ({snap.describe()}); nothing changed",
                hint="start or uncordon another pod of the service, or drain without --migrate",
            )
        cordon_changed = False
        if not self.dry_run:
            cordon_changed = self.store.set_cordon(self.namespace, self.service, self.pod, True)
        settle_at = self._clock() + self.config.state.refresh + _SETTLE_GRACE_S
        links = self._scan()
        report = DrainReport(self.namespace, self.service, self.pod, len(links), dry_run=self.dry_run,
                             migrate=self.migrate, cordon_changed=cordon_changed)
        self._progress(report, "migrate" if self.migrate else "wait", len(links))
        for _ in range(_MAX_PASSES):
            movable = [link for link in links if self._movable(link)]
            if movable:
                self._migrate(movable, report, len(links))
            if self.dry_run or report.error is not None or report.deadline_reached:
                break
            if self.migrate:
                if not movable and self._clock() >= settle_at:
                    break  # nothing new since the last pass, and clients have seen the cordon
                if not movable and not self._wait_until(settle_at):
                    report.deadline_reached = True
                    break
            else:
                if not links or self._end is None:
                    break
                if not self._wait_until(self._clock() + _WAIT_POLL_S):
                    report.deadline_reached = True
                    break
            links = self._scan()
            self._progress(report, "migrate" if self.migrate else "wait", len(links))
        if self.dry_run:
            report.remaining = report.links_before - report.moved
        else:
            links = self._scan()
            report.remaining = len(links)
            report.to_move = sum(1 for link in links if self._movable(link))
            if not self.migrate:
                report.to_move = report.remaining if self.deadline is not None else 0
        report.bad_keys = self._bad
        self._progress(report, "done", report.remaining)
        if report.error is None and report.to_move and report.deadline_reached:
            links = f"{report.to_move} link{'' if report.to_move == 1 else 's'}"
            where = f"pod {self.pod} of {self.service!r}"
            report.error = DrainIncomplete(
                f"deadline of {self.deadline:g} s reached with {links} still to move off {where}" if self.migrate
                else f"deadline of {self.deadline:g} s reached with {links} still on {where} "
                     "(without --migrate a drain waits for them to leave)",
                hint="run the drain again; it is safe to repeat" if self.migrate
                else "add --migrate to move temporary links now",
            )
        return report

    def _movable(self, link: Link) -> bool:
        return self.migrate and (self.include_persistent or not link.persistent)

    def _scan(self) -> list[Link]:
        """The pod's links now; the keys not readable as links go to the last scan's BadKeys
        (a new one per scan: a drain reads the pod several times)."""
        self._bad = BadKeys()
        return list(self.store.scan_links(self.namespace, service=self.service, pod=self.pod, bad=self._bad))

    def _migrate(self, movable: list[Link], report: DrainReport, on_pod: int) -> None:
        done = 0
        for link in movable:
            if not self._throttle():
                report.deadline_reached = True
                return
            targets = self._targets(self._snapshot())
            if not targets:
                report.error = NoAvailablePod(
                    f"drain of pod {self.pod} of {self.service!r} stopped: no other routable pod is left "
                    f"to move links to ({self._snapshot().describe()})",
                    hint="start or uncordon another pod of the service, then run the drain again",
                )
                return
            target = self._strategy.choose(link.uid, targets, self._extra).pod
            if self.dry_run:
                moved = True
            else:
                moved, _ = self.store.move(self.namespace, link.uid, self.service, self.pod, target)
            if moved:
                report.moved += 1
                report.targets[target] = report.targets.get(target, 0) + 1
                self._extra[target] += 1
            else:
                report.skipped += 1  # moved, removed or expired meanwhile: not ours to touch
            done += 1
            self._progress(report, "migrate", on_pod - done)

    # --- targets ------------------------------------------------------------------------

    def _snapshot(self, force: bool = False) -> Snapshot:
        now = self._clock()
        if force or self._snap is None or now - self._snap_at >= self.config.state.refresh:
            self._snap = self.store.snapshot(self.namespace, self.service, expire_ms=self._expire_ms)
            self._snap_at = now
            self._extra.clear()
        return self._snap

    def _targets(self, snap: Snapshot) -> list[PodView]:
        # In a dry run the pod is not cordoned, so leave it out by hand.
        return [v for v in snap.routable() if v.pod != self.pod]

    # --- pacing -------------------------------------------------------------------------

    def _throttle(self) -> bool:
        """Wait for the next move's slot under --rate; False when the deadline comes first."""
        now = self._clock()
        if self._end is not None and now >= self._end:
            return False
        if self.rate is None or self.dry_run:
            return True
        if self._next_slot > now and not self._wait_until(self._next_slot):
            return False
        self._next_slot = max(self._next_slot, self._clock()) + 1 / self.rate
        return True

    def _wait_until(self, when: float) -> bool:
        """Sleep until `when`; False (after sleeping up to the deadline) when the deadline is earlier."""
        if self._end is not None and when >= self._end:
            self._sleep(max(0.0, self._end - self._clock()))
            return False
        delay = when - self._clock()
        if delay > 0:
            self._sleep(delay)
        return True

    def _progress(self, report: DrainReport, phase: str, left: int) -> None:
        if self._on_progress is not None:
            self._on_progress(DrainProgress(phase, report.links_before, report.moved, report.skipped, max(0, left)))


# --- clear ---------------------------------------------------------------------------------


@dataclass
class ClearReport:
    namespace: str
    service: str
    pod: int
    found: int = 0
    removed: int = 0  # with dry_run: 0 (`found` would be removed)
    kept: int = 0  # changed between the scan and the removal: left alone
    dry_run: bool = False
    alive: str | None = None  # dry run of an alive pod: why the clear itself would be refused
    bad_keys: BadKeys = field(default_factory=BadKeys)  # keys not readable as links: left alone

    def to_dict(self) -> dict:
        return {
            "namespace": self.namespace,
            "service": self.service,
            "pod": self.pod,
            "found": self.found,
            "removed": self.removed,
            "kept": self.kept,
            "dry_run": self.dry_run,
            "bad_keys": self.bad_keys.to_dict(),
        }


def alive_pod(store: Store, namespace: str, service: str, pod: int, *, expire_ms: int) -> str | None:
    """'pod N of SVC is alive (STATE, heartbeat M ms ago)' when the pod is alive, else None."""
    view = store.snapshot(namespace, service, expire_ms=expire_ms).pods.get(pod)
    if view is None or not view.alive:
        return None
    return (f"pod {pod} of {service!r} is alive ({view.display_state}{', cordoned' if view.cordoned else ''}, "
            f"heartbeat {view.heartbeat_age_ms} ms ago)")


def clear_pod(
    store: Store,
    namespace: str,
    service: str,
    pod: int,
    *,
    dry_run: bool = False,
    force: bool = False,
    expire_ms: int = _DEFAULT_EXPIRE_MS,
    on_progress: Callable[[ClearReport], None] | None = None,
) -> ClearReport:
    """Remove every link to `pod` of `service` (and its index entry), fenced on the pod.

    Refuses (Conflict) a pod alive by `expire_ms` unless `force`: its users
    would lose their links while it still holds their state. A dry run of an
    alive pod counts anyway and says why in `alive`.

    Streams the scan: each link found is removed with remove-if-pod at once,
    so one that a client moved to another pod meanwhile survives (`kept`).
    Links created on the pod after the scan passed them are not seen.
    """
    report = ClearReport(namespace, names.service(service), names.pod(pod), dry_run=dry_run)
    if not force:
        report.alive = alive_pod(store, namespace, service, pod, expire_ms=expire_ms)
        if report.alive is not None and not dry_run:
            raise Conflict(f"{report.alive}: its links were not cleared",
                           hint="drain it first (stroute pod drain SVC POD --migrate), or pass --force")
    for link in store.scan_links(namespace, service=service, pod=pod, bad=report.bad_keys):
        report.found += 1
        if not dry_run:
            removed, _ = store.remove(namespace, link.uid, service, if_pod=pod)
            if removed:
                report.removed += 1
            else:
                report.kept += 1
        if on_progress is not None:
            on_progress(report)
    return report


# --- forget ----------------------------------------------------------------------------------


def forget_pod(
    store: Store, namespace: str, service: str, pod: int, *, force: bool = False, expire_ms: int = _DEFAULT_EXPIRE_MS
) -> bool:
    """Remove a pod's state field (a pod gone after a scale-down); False when it had none.

    Refuses (Conflict) a pod alive by `expire_ms` unless `force`: it would
    only reappear on its next heartbeat, and meanwhile look gone.
    """
    names.service(service)
    names.pod(pod)
    if not force:
        alive = alive_pod(store, namespace, service, pod, expire_ms=expire_ms)
        if alive is not None:
            raise Conflict(f"{alive}: not forgotten",
                           hint="stop it first, or pass --force (it reappears on its next heartbeat)")
    return store.remove_state(namespace, service, pod)
