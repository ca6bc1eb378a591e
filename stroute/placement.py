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
from typing import Mapping, Protocol, Sequence

from stroute.podstate import PodView


class Strategy(Protocol):
    name: str

    def choose(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> PodView: ...


class PowerOfTwo:
    """Best of two random routable pods by effective load (the default)."""

    name = "p2c"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def choose(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> PodView:
        if len(pods) == 1:
            return pods[0]
        a, b = self._rng.sample(pods, 2)
        load_a = a.load + extra.get(a.pod, 0)
        load_b = b.load + extra.get(b.pod, 0)
        if load_a == load_b:
            return a  # sample order is already random
        return a if load_a < load_b else b


class LeastLoaded:
    """The seed's Go choice: the lowest reported load. Herds on stale data."""

    name = "least-loaded"

    def choose(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> PodView:
        return min(pods, key=lambda v: (v.load, v.pod))


class RoundRobin:
    """The Java choice: round-robin over pods whose load <= min load + range."""

    name = "round-robin"

    def __init__(self, good_load_range: int = 500) -> None:
        self.good_load_range = good_load_range
        self._next = 0
        self._lock = threading.Lock()

    def choose(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> PodView:
        floor = min(v.load for v in pods)
        good = [v for v in pods if v.load <= floor + self.good_load_range]
        with self._lock:
            turn = self._next
            self._next += 1
        return good[turn % len(good)]


class RendezvousHash:
    """Highest-random-weight hashing of the uid: stable while the pod set is."""

    name = "hash"

    def choose(self, uid: str, pods: Sequence[PodView], extra: Mapping[int, int]) -> PodView:
        return max(pods, key=lambda v: (_weight(uid, v.pod), v.pod))


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
