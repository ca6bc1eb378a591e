"""Pod state: the value codec, staleness, and the per-service snapshot.

A pod publishes one hash field `pod -> value`, in one of two forms:

    load-heartbeatMillis-state[-epoch]      READY (not cordoned) and DOWN
    load-heartbeatMillis-0-[epoch]-state    DRAINING, and a cordoned pod: "withheld"

`load-millis-state` is the Java original's format. Its reader splits on '-',
reads the first three fields, and takes any state but 0 as available; the
Go original's reader takes only the literal value READY as routable. A pod
that must get no new user therefore publishes 0 in the third field, which
both originals read as "not available", and its real state in a fifth one,
which only stroute reads (see docs/mixed-fleets.md). The epoch is empty
when the pod has none. 2 = DRAINING and the epoch are stroute's.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


# ASCII digits only: str.isdigit() also accepts '²' and the like, which int()
# then rejects, and one such field must not break every reader's snapshot.
_DIGITS = re.compile(r"[0-9]+")


def _is_number(text: str) -> bool:
    return _DIGITS.fullmatch(text) is not None


class RoutingState(enum.IntEnum):
    DOWN = 0
    READY = 1
    DRAINING = 2

    @classmethod
    def parse(cls, value: "str | int | RoutingState") -> "RoutingState":
        from stroute.errors import InvalidInput

        if isinstance(value, RoutingState):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise InvalidInput(f"invalid routing state {value!r}: must be one of READY, DRAINING, DOWN")


@dataclass(frozen=True, slots=True)
class PodState:
    """What one pod published about itself."""

    load: int
    heartbeat_ms: int
    state: RoutingState
    epoch: int | None = None
    # A READY pod withheld from the original drivers (it was cordoned when it
    # published). DRAINING is always withheld and DOWN needs no withholding,
    # so for them this stays False.
    withheld: bool = False

    def encode(self) -> str:
        if self.state is RoutingState.DRAINING or (self.withheld and self.state is RoutingState.READY):
            return f"{self.load}-{self.heartbeat_ms}-0-{'' if self.epoch is None else self.epoch}-{int(self.state)}"
        base = f"{self.load}-{self.heartbeat_ms}-{int(self.state)}"
        return base if self.epoch is None else f"{base}-{self.epoch}"

    @classmethod
    def decode(cls, raw: str) -> "PodState | None":
        """Parse a state field; None when it is in neither form."""
        parts = raw.split("-")
        if len(parts) == 5:
            if parts[2] != "0" or not (parts[3] == "" or _is_number(parts[3])) or parts[4] not in ("1", "2"):
                return None
            if not (_is_number(parts[0]) and _is_number(parts[1])):
                return None
            epoch = int(parts[3]) if parts[3] else None
            state = RoutingState(int(parts[4]))
            return cls(int(parts[0]), int(parts[1]), state, epoch, withheld=state is RoutingState.READY)
        if len(parts) not in (3, 4) or not all(_is_number(p) for p in parts):
            return None
        state = int(parts[2])
        if state not in (0, 1, 2):
            return None
        epoch = int(parts[3]) if len(parts) == 4 else None
        return cls(int(parts[0]), int(parts[1]), RoutingState(state), epoch)


@dataclass(frozen=True, slots=True)
class PodView:
    """One pod as a reader sees it at the snapshot's time."""

    pod: int
    load: int
    heartbeat_ms: int
    state: RoutingState
    epoch: int | None
    cordoned: bool
    stale: bool
    heartbeat_age_ms: int

    @property
    def alive(self) -> bool:
        return not self.stale and self.state is not RoutingState.DOWN

    @property
    def routable(self) -> bool:
        return self.alive and self.state is RoutingState.READY and not self.cordoned

    @property
    def display_state(self) -> str:
        """READY / DRAINING / DOWN, or STALE when the heartbeat expired."""
        return "STALE" if self.stale else self.state.name


@dataclass(frozen=True)
class Snapshot:
    """Every pod of one service, read in one round trip.

    `now_ms` is Redis's own clock (TIME), so staleness does not depend on the
    reader's clock. `invalid` lists pods whose field could not be parsed:
    they are treated as dead; `unparseable` has their raw values (an
    original Go server driver writes the literal `state`).
    """

    service: str
    now_ms: int
    pods: dict[int, PodView]
    invalid: tuple[int, ...] = ()
    # pod -> when (Redis ms) its current epoch first reached the field: the
    # start of its slow-start window. Pods without an epoch are not in it.
    since: dict[int, int] = field(default_factory=dict)
    # Client drivers that read the service's states to place users within the
    # gateway expiry, the reader included; 0 when the reader did not register.
    gateways: int = 0
    unparseable: tuple[tuple[int, str], ...] = ()  # (pod, raw value) of each invalid pod

    @classmethod
    def build(
        cls,
        service: str,
        states: dict[str, str],
        controls: dict[str, str],
        now_ms: int,
        expire_ms: int,
        *,
        notes: dict[str, str] | None = None,
        gateways: int = 0,
    ) -> "Snapshot":
        pods: dict[int, PodView] = {}
        invalid: dict[int, str] = {}
        cordoned = {int(p) for p, v in controls.items() if _is_number(p) and v == "cordon"}
        for field_name, raw in states.items():
            if not _is_number(field_name):
                continue
            pod = int(field_name)
            parsed = PodState.decode(raw)
            if parsed is None:
                invalid[pod] = raw
                continue
            age = now_ms - parsed.heartbeat_ms
            pods[pod] = PodView(
                pod=pod,
                load=parsed.load,
                heartbeat_ms=parsed.heartbeat_ms,
                state=parsed.state,
                epoch=parsed.epoch,
                cordoned=pod in cordoned,
                stale=age > expire_ms,
                heartbeat_age_ms=max(0, age),
            )
        since: dict[int, int] = {}
        for pod, noted in parse_notes(notes or {}).items():
            view = pods.get(pod)
            if view is not None and view.epoch is not None:
                for seen, epoch in noted.epochs:
                    if epoch == view.epoch:
                        since[pod] = seen
                        break
        return cls(service, now_ms, dict(sorted(pods.items())), tuple(sorted(invalid)), since, gateways,
                   tuple(sorted(invalid.items())))

    def __post_init__(self) -> None:
        # Placement asks these for every user: work them out once.
        object.__setattr__(self, "_alive", frozenset(p for p, v in self.pods.items() if v.alive))
        object.__setattr__(self, "_routable", [v for v in self.pods.values() if v.routable])

    def is_alive(self, pod: int) -> bool:
        return pod in self._alive  # type: ignore[attr-defined]

    def routable(self) -> list[PodView]:
        """The routable pods, in pod order (a shared list: do not modify)."""
        return self._routable  # type: ignore[attr-defined]

    def alive(self) -> list[PodView]:
        return [v for v in self.pods.values() if v.alive]

    @property
    def workload(self) -> str:
        """READY when every pod takes users, DOWN when none does, else DEGRADED."""
        routable = self.routable()
        if not routable:
            return "DOWN"
        if len(routable) == len(self.pods) and not self.invalid:
            return "READY"
        return "DEGRADED"

    def describe(self) -> str:
        """One line of what was seen, for 'no available pod' errors."""
        if not self.pods and not self.invalid:
            return "no pod has published a state"
        counts: dict[str, int] = {}
        for view in self.pods.values():
            label = view.display_state + (" (cordoned)" if view.cordoned and view.alive else "")
            counts[label] = counts.get(label, 0) + 1
        if self.invalid:
            counts["unparseable"] = len(self.invalid)
        parts = [f"{n} {label}" for label, n in sorted(counts.items())]
        return f"{len(self.pods) + len(self.invalid)} pods seen: " + ", ".join(parts)


# --- what a pod says about its state, beside its field ----------------------------------
#
# P:{ns:state:svc}:notes holds, per pod, "POD:reason" (why a server driver
# publishes what it does when that is not plain READY: no good load yet, a
# failing load source, a stop in progress) and "POD:epochs" (when each of its
# last EPOCH_HISTORY epochs first reached the field, newest first). The Go and
# Java originals read only the state hash, so none of this is in the field.

EPOCH_HISTORY = 6
# An epoch "keeps changing" when at least EPOCH_FLAP_COUNT epochs first
# reached the field within EPOCH_FLAP_WINDOW_MS: a crash loop, or two
# instances taking the pod from each other. One restart or one rolling
# update is two epochs and does not count.
EPOCH_FLAP_COUNT = 3
EPOCH_FLAP_WINDOW_MS = 10 * 60 * 1000


@dataclass(frozen=True, slots=True)
class PodNotes:
    reason: str | None = None
    epochs: tuple[tuple[int, int], ...] = ()  # (first seen ms, epoch), newest first

    def recent_epochs(self, now_ms: int, window_ms: int = EPOCH_FLAP_WINDOW_MS) -> int:
        """How many epochs first reached the field within the window."""
        return sum(1 for seen, _ in self.epochs if now_ms - seen <= window_ms)

    def flapping(self, now_ms: int) -> bool:
        return self.recent_epochs(now_ms) >= EPOCH_FLAP_COUNT


def parse_notes(flat: dict[str, str]) -> dict[int, PodNotes]:
    """The notes hash (field -> value) as pod -> PodNotes; malformed parts are skipped."""
    reasons: dict[int, str] = {}
    epochs: dict[int, tuple[tuple[int, int], ...]] = {}
    for name, value in flat.items():
        pod, _, kind = name.partition(":")
        if not _is_number(pod):
            continue
        if kind == "reason":
            reasons[int(pod)] = value
        elif kind == "epochs":
            entries = []
            for entry in value.split(","):
                seen, _, epoch = entry.partition(":")
                if _is_number(seen) and _is_number(epoch):
                    entries.append((int(seen), int(epoch)))
            epochs[int(pod)] = tuple(entries)
    return {pod: PodNotes(reasons.get(pod), epochs.get(pod, ())) for pod in sorted(set(reasons) | set(epochs))}
