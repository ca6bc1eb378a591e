"""Operator actions on one pod: drain (cordon, then migrate), clear its links, forget it.

Drain and clear go through the store's fenced operations, so they never
overwrite what a client or the pod changed meanwhile: drain moves a link with
compare-and-set (Store.move_many, which keeps a temporary link's remaining
TTL), clear removes it with remove-if (Store.remove_many(if_pod=N)). Both send
them in pipelined batches (a pipeline per node on a Cluster); each move or
removal is still one atomic script of its own, so a run stopped anywhere
(SIGINT, SIGKILL) has moved or removed each link once or not at all. A link
that changed between the scan and the write is skipped. A key the scan or the
write cannot read as a link is left alone and reported (`bad_keys`).

Clear and forget refuse a pod that is alive unless forced: its users would
lose their links, or its state row would vanish, while it still serves them.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from stroute import names, placement
from stroute.config import Config, StateConfig
from stroute.errors import Conflict, CorruptData, DrainIncomplete, InvalidInput, NoAvailablePod
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
# Moves or removals per pipelined round trip: large enough to amortise the
# round trip, small enough that progress and a deadline are seen often.
BATCH = 1000
# Under --rate a batch holds the moves due in this window, so a high rate is
# not capped by one round trip per move; the pacing stays exact over time.
_RATE_WINDOW_S = 0.05


@dataclass
class DrainProgress:
    """Where a drain is.

    With migrate, `total` counts only the links the drain will move (those
    found so far: a later pass adds arrivals) and `done` those it has
    handled, moved or skipped. Without it, the drain moves nothing and waits:
    `total` is the links it found, `done` those gone since. `left` = links
    still on the pod (as last counted), persistent ones included.
    """

    phase: str  # "migrate", "wait" or "done"
    total: int
    done: int
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
        self._next_slot: float | None = None  # under --rate: the next move's slot
        self._end: float | None = None
        self._bad = BadKeys()  # of the last scan
        self._write_bad = BadKeys()  # keys a move found unreadable (an index of another type)
        self._refused: set[str] = set()  # uids whose move found such a key: not tried again
        self._found = 0  # links to move found by the passes so far: the progress total

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
        movable = self._pending(links)
        self._progress(report, "migrate" if self.migrate else "wait", len(links))
        for _ in range(_MAX_PASSES):
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
            movable = self._pending(links)
            self._progress(report, "migrate" if self.migrate else "wait", len(links))
        if self.dry_run:
            report.remaining = report.links_before - report.moved
        else:
            links = self._scan()
            report.remaining = len(links)
            report.to_move = sum(1 for link in links if self._movable(link))
            if not self.migrate:
                report.to_move = report.remaining if self.deadline is not None else 0
        report.bad_keys = _merged(self._bad, self._write_bad)
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

    def _pending(self, links: list[Link]) -> list[Link]:
        """Of a scan's links, those this pass moves (counted into the progress total)."""
        movable = [link for link in links if self._movable(link) and link.uid not in self._refused]
        self._found += len(movable)
        return movable

    def _movable(self, link: Link) -> bool:
        return self.migrate and (self.include_persistent or not link.persistent)

    def _scan(self) -> list[Link]:
        """The pod's links now; the keys not readable as links go to the last scan's BadKeys
        (a new one per scan: a drain reads the pod several times)."""
        self._bad = BadKeys()
        return list(self.store.scan_links(self.namespace, service=self.service, pod=self.pod, bad=self._bad))

    def _migrate(self, movable: list[Link], report: DrainReport, on_pod: int) -> None:
        """Move `movable` in pipelined batches, each paced by --rate as a whole."""
        if self._next_slot is not None:
            # The wait between passes is idle, not a delay to catch up on.
            self._next_slot = max(self._next_slot, self._clock())
        done = 0
        while done < len(movable):
            size = self._throttle(len(movable) - done)
            if not size:
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
            batch = movable[done:done + size]
            chosen = []
            for link in batch:
                # Counted before the reply, so the batch's next choices see it; taken back if not moved.
                target = self._strategy.choose(link.uid, targets, self._extra).pod
                self._extra[target] += 1
                chosen.append(target)
            if self.dry_run:
                replies: list = [(True, target) for target in chosen]
            else:
                replies = self.store.move_many(self.namespace, self.service,
                                               [(link.uid, self.pod, target) for link, target in zip(batch, chosen)])
            for link, target, reply in zip(batch, chosen, replies):
                if not isinstance(reply, CorruptData) and reply[0]:
                    report.moved += 1
                    report.targets[target] = report.targets.get(target, 0) + 1
                    continue
                self._extra[target] -= 1
                if isinstance(reply, CorruptData):
                    _add(self._write_bad, reply)  # left alone and reported, as a scan's bad key
                    self._refused.add(link.uid)
                report.skipped += 1  # moved, removed or expired meanwhile: not ours to touch
            done += len(batch)
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

    def _throttle(self, pending: int) -> int:
        """How many of `pending` moves to send now, after waiting for their slots
        under --rate; 0 when the deadline comes first.

        Under --rate, move i has the slot start + i/rate. A batch goes when the
        slot of its last move has come (so the rate is never exceeded), and
        holds the moves due in _RATE_WINDOW_S, or more when the drain fell
        behind (a slow round trip), so it catches up and the rate stays exact.
        """
        now = self._clock()
        if self._end is not None and now >= self._end:
            return 0
        if self.rate is None or self.dry_run:
            return min(pending, BATCH)
        if self._next_slot is None:
            self._next_slot = now
        step = 1 / self.rate
        size = max(1, min(pending, BATCH, int(self.rate * _RATE_WINDOW_S)))
        if self._end is not None:
            # Only the moves whose slots come before the deadline.
            size = min(size, max(0, math.ceil((self._end - self._next_slot) / step)))
            if not size:
                self._wait_until(self._end)
                return 0
        last = self._next_slot + (size - 1) * step
        if last > now:
            if not self._wait_until(last):
                return 0
            now = self._clock()
        behind = int((now - self._next_slot) / step) + 1  # slots that have come
        size = max(size, min(pending, BATCH, behind))
        self._next_slot += size * step
        return size

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
        if self._on_progress is None:
            return
        left = max(0, left)
        if self.migrate:
            total, done = self._found, report.moved + report.skipped
        else:
            total, done = report.links_before, max(0, report.links_before - left)
        self._on_progress(DrainProgress(phase, total, done, report.moved, report.skipped, left))


def _add(bad: BadKeys, error: CorruptData) -> None:
    key = error.keys[0]
    bad.add(key, error.message.removeprefix(f"key {key!r} ").removesuffix("; nothing was written"))


def _merged(scanned: BadKeys, written: BadKeys) -> BadKeys:
    """The last scan's bad keys and those the writes found, each key once."""
    if not written.count:
        return scanned
    merged = BadKeys(scanned.count, list(scanned.found))
    seen = {key for key, _ in scanned.found}
    for key, problem in written.found:
        if key not in seen:
            seen.add(key)
            merged.add(key, problem)
    merged.count += max(0, written.count - len(written.found))  # past the kept list: counted only
    return merged


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

    Streams the scan: the links found are removed with remove-if-pod in
    pipelined batches as the scan goes, so one that a client moved to another
    pod meanwhile survives (`kept`). Links created on the pod after the scan
    passed them are not seen. A key the removal finds unreadable (an index
    of another type) is left alone, counted in `kept` and reported in
    `bad_keys`.
    """
    report = ClearReport(namespace, names.service(service), names.pod(pod), dry_run=dry_run)
    if not force:
        report.alive = alive_pod(store, namespace, service, pod, expire_ms=expire_ms)
        if report.alive is not None and not dry_run:
            raise Conflict(f"{report.alive}: its links were not cleared",
                           hint="drain it first (stroute pod drain -s SVC --pod N --migrate), or pass --force")
    written = BadKeys()
    batch: list[str] = []

    def flush() -> None:
        if not dry_run:
            for reply in store.remove_many(namespace, service, batch, if_pod=pod):
                if isinstance(reply, CorruptData):
                    _add(written, reply)
                    report.kept += 1
                elif reply[0]:
                    report.removed += 1
                else:
                    report.kept += 1
        batch.clear()
        if on_progress is not None:
            on_progress(report)

    for link in store.scan_links(namespace, service=service, pod=pod, bad=report.bad_keys):
        report.found += 1
        batch.append(link.uid)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    report.bad_keys = _merged(report.bad_keys, written)
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
