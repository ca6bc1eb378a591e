"""Placement strategies: pick one routable pod for a new user.

A strategy sees the routable pods of the current snapshot and, for each, the
number of users this client has placed there since the snapshot was taken
(`extra`). Effective load = reported load + extra, so a burst of new users
between two heartbeats spreads out instead of herding on one pod.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

from stroute.podstate import PodView


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
