"""Placement strategies: pick one routable pod for a new user.

A strategy sees the routable pods of the current snapshot and, for each, the
users sent there since the pod last reported its load (`extra`). Effective
load = reported load + extra, so a burst of new users between two heartbeats
spreads out instead of herding on one pod.

Many gateways: each client driver counts only its own placements, but every
gateway sends users to the same pods. A driver registers among the service's
live gateways at each snapshot read (state_snapshot.lua) and counts each of
its placements `gateways` times (`bump`), Orleans' estimate of what all of
them sent: with the users split over G gateways, each one's own count is
1/G of the total. Gateways are counted for `gateway_expire` after their last
read, so one that stops leaves the count within that time.

Slow start: a pod whose epoch first reached its field less than
`placement.slow_start` seconds ago has a weight rising linearly from 1 % to
1 (HAProxy's `slowstart`). Before a load-aware strategy draws, each such pod
is left out of the candidates with probability 1 - weight (relative to the
heaviest routable pod), so its chance to be drawn ramps with time whatever
load it reports; p2c then compares the two drawn by effective load as
always. A new pod at load 0 among N thus gets at most about weight x 2/N of
new users. A static strategy (`hash`) keeps every uid's answer and is left
alone, as HAProxy ignores `slowstart` with its static algorithms.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence

from stroute.podstate import PodView, Snapshot


class Strategy(Protocol):
    name: str

    def choose(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> PodView: ...


@dataclass(frozen=True)
class Decision:
    """One choice and why it was made (for `stroute place --explain`).

    `considered` are the pods the strategy compared, `why` one line for people.
    """

    strategy: str
    pod: PodView
    considered: tuple[PodView, ...]
    why: str


def decide(strategy: Strategy, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> Decision:
    """The strategy's choice with its reason; a strategy without `decide` gets a generic one."""
    explain = getattr(strategy, "decide", None)
    if explain is not None:
        return explain(uid, pods, extra)
    name = getattr(strategy, "name", type(strategy).__name__)
    return Decision(name, strategy.choose(uid, pods, extra), tuple(pods), f"chosen by the {name} strategy")


# A gateway leaves the count this many state.refresh periods after its last
# snapshot read (a driver that places users reads at least once a period),
# and never sooner than GATEWAY_EXPIRE_MIN_S.
GATEWAY_EXPIRE_REFRESHES = 3
GATEWAY_EXPIRE_MIN_S = 1.0
# HAProxy's floor: a pod that just came up still gets a trickle, so it is seen to work.
SLOW_START_MIN_WEIGHT = 0.01


# Strategies whose answer for a uid depends on the pod set only: slow start
# would move a uid's pod at random, so it is not applied to them.
STATIC = ("hash",)


def slow_start_window_ms(config) -> int:
    """placement.slow_start in ms, as placement applies it: 0 when off, and for
    a static strategy."""
    if config.placement.strategy in STATIC:
        return 0
    return round(config.placement.slow_start * 1000)


def gateway_expire_ms(refresh: float) -> int:
    """How long after its last snapshot read a client driver is still counted as a live gateway."""
    return round(max(GATEWAY_EXPIRE_REFRESHES * refresh, GATEWAY_EXPIRE_MIN_S) * 1000)


@dataclass(frozen=True, slots=True)
class SlowStart:
    """One pod in its slow-start window."""

    pod: int
    weight: float  # 0.01 .. 1: its share of new users relative to a warm pod
    remaining_ms: int  # until the window ends


def slow_start(snap: Snapshot, now_ms: int, window_ms: int) -> dict[int, SlowStart]:
    """The routable pods of the snapshot still in their slow-start window at `now_ms` (Redis clock)."""
    if window_ms <= 0 or not snap.since:
        return {}
    out = {}
    for view in snap.routable():
        since = snap.since.get(view.pod)
        if since is None:
            continue  # no epoch (an original Go/Java driver): when it came up is unknown
        age = now_ms - since
        if age < window_ms:
            weight = max(SLOW_START_MIN_WEIGHT, max(0, age) / window_ms)
            out[view.pod] = SlowStart(view.pod, round(weight, 4), window_ms - max(0, age))
    return out


def admit(pods: Sequence[PodView], warming: Mapping[int, SlowStart], random: Callable[[], float]) -> list[PodView]:
    """The pods a strategy may draw from for one new user: each pod in slow
    start stays with probability weight / the heaviest routable pod's weight."""
    if not warming:
        return list(pods)
    top = 1.0 if len(warming) < len(pods) else max(w.weight for w in warming.values())
    kept = []
    for view in pods:
        entry = warming.get(view.pod)
        if entry is None or random() * top < entry.weight:
            kept.append(view)
    return kept or list(pods)


def _effective(view: PodView, extra: Mapping[int, int]) -> int:
    return view.load + extra.get(view.pod, 0)


class PowerOfTwo:
    """Best of two random routable pods by effective load (the default)."""

    name = "p2c"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._random = self._rng.random

    def choose(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> PodView:
        # _pick without building the explanation: this runs for every new user.
        n = len(pods)
        if n == 1:
            return pods[0]
        i = int(self._random() * n)
        j = int(self._random() * (n - 1))
        a, b = pods[i], pods[j + (j >= i)]
        get = extra.get
        return b if b.load + get(b.pod, 0) < a.load + get(a.pod, 0) else a

    def decide(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> Decision:
        chosen, considered = self._pick(pods, extra)
        if len(considered) == 1:
            why = f"pod {chosen.pod} is the only routable pod"
        else:
            a, b = considered
            loads = f"pod {a.pod} at {_effective(a, extra)} and pod {b.pod} at {_effective(b, extra)}"
            if _effective(a, extra) == _effective(b, extra):
                why = f"two random routable pods, {loads} effective load: a tie, the first drawn wins"
            else:
                why = f"two random routable pods, {loads} effective load: pod {chosen.pod} is lower"
        return Decision(self.name, chosen, considered, why)

    def _pick(self, pods: Sequence[PodView], extra: Mapping[int, int]) -> tuple[PodView, tuple[PodView, ...]]:
        if len(pods) == 1:
            return pods[0], (pods[0],)
        # Two distinct random pods (cheaper than random.sample on the login path).
        n = len(pods)
        i = int(self._random() * n)
        j = int(self._random() * (n - 1))
        a, b = pods[i], pods[j + (j >= i)]
        load_a = _effective(a, extra)
        load_b = _effective(b, extra)
        if load_a == load_b:
            return a, (a, b)  # sample order is already random
        return (a if load_a < load_b else b), (a, b)


class LeastLoaded:
    """The seed's Go choice: the lowest reported load. Herds on stale data."""

    name = "least-loaded"

    def choose(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> PodView:
        return min(pods, key=lambda v: (v.load, v.pod))

    def decide(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> Decision:
        chosen = self.choose(uid, pods, extra)
        why = (f"lowest reported load ({chosen.load}) of {len(pods)} routable pods, lowest index on a tie; "
               "this client's own placements are not counted")
        return Decision(self.name, chosen, tuple(pods), why)


class RoundRobin:
    """The Java choice: round-robin over pods whose load <= min load + range."""

    name = "round-robin"

    def __init__(self, good_load_range: int = 500) -> None:
        self.good_load_range = good_load_range
        self._next = 0
        self._lock = threading.Lock()

    def choose(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> PodView:
        return self._pick(pods)[0]

    def decide(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> Decision:
        chosen, good, turn, floor = self._pick(pods)
        why = (f"round-robin turn {turn} over the {len(good)} pods with load <= {floor + self.good_load_range} "
               f"(lowest load {floor} + range {self.good_load_range})")
        return Decision(self.name, chosen, tuple(good), why)

    def _pick(self, pods: Sequence[PodView]) -> tuple[PodView, list[PodView], int, int]:
        floor = min(v.load for v in pods)
        good = [v for v in pods if v.load <= floor + self.good_load_range]
        with self._lock:
            turn = self._next
            self._next += 1
        return good[turn % len(good)], good, turn, floor


class RendezvousHash:
    """Highest-random-weight hashing of the uid: stable while the pod set is."""

    name = "hash"

    def choose(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> PodView:
        return max(pods, key=lambda v: (_weight(uid, v.pod), v.pod))

    def decide(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> Decision:
        chosen = self.choose(uid, pods, extra)
        why = f"highest rendezvous hash weight of uid {uid!r} over {len(pods)} routable pods (load is ignored)"
        return Decision(self.name, chosen, tuple(pods), why)


def _weight(uid: str, pod: int) -> bytes:
    return hashlib.blake2b(f"{pod}\x00{uid}".encode(), digest_size=8).digest()


def make(name: str, *, good_load_range: int = 500, rng: random.Random | None = None) -> Strategy:
    from stroute.config import STRATEGIES
    from stroute.errors import ConfigError

    if name == "p2c":
        return PowerOfTwo(rng)
    if name == "least-loaded":
        return LeastLoaded()
    if name == "round-robin":
        return RoundRobin(good_load_range)
    if name == "hash":
        return RendezvousHash()
    raise ConfigError(f"invalid placement strategy {name!r}: must be one of {', '.join(STRATEGIES)}")
