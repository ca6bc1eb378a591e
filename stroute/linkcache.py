"""The client driver's local cache of links, kept coherent with Redis.

A hit costs no round trip. With an invalidation source (`stroute.invalidation`)
Redis tells the cache of every change to a link it holds, whoever made it,
and the cache answers only while that channel is confirmed working:

- `get` serves an entry only while the source is trusted (a recent PING on
  the invalidation connection came back, so every invalidation Redis sent
  before it has arrived);
- `put` keeps a value only if it was read while the channel stood, on a
  connection tracked by it (the source's generation did not change), and no
  invalidation of that link arrived while the read was under way: an
  invalidation can overtake the reply it concerns, since the two travel on
  different connections;
- when the channel is re-established the whole cache is dropped.

Without a source (`links.coherent: false`) entries live for
`links.cache_seconds`, as in the original drivers.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

_monotonic = time.monotonic

# Invalidations remembered to settle reads in flight; a read that overlapped
# more invalidations than this is not cached.
_RECENT = 4096


class Source(Protocol):
    """What the cache needs of an invalidation source."""

    generation: int  # changes whenever the channel was lost or re-made
    trusted_until: float  # monotonic time up to which the channel is known to work


@dataclass(slots=True)
class Entry:
    pod: int
    persistent: bool
    deadline: float


@dataclass(frozen=True, slots=True)
class Token:
    """Taken before a read whose answer may be cached (`LinkCache.begin`)."""

    generation: int
    seq: int


_FLUSH = object()  # in the recent-invalidations ring: everything was dropped


class LinkCache:
    """(service, uid) -> Entry, thread-safe, bounded."""

    def __init__(
        self,
        *,
        lifetime: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime = lifetime
        self.max_entries = max_entries
        self.source: Source | None = None
        self._clock = clock
        self._entries: dict[tuple[str, str], Entry] = {}
        self._lock = threading.Lock()
        self._seq = 0  # invalidations so far
        self._recent: deque[tuple[int, object]] = deque(maxlen=_RECENT)
        self.invalidations = 0  # links dropped because Redis said they changed
        self.flushes = 0  # whole-cache drops (channel re-made, FLUSHALL)

    # --- trust -------------------------------------------------------------

    def trusted(self) -> bool:
        """Whether cached answers may be served now (the source's clock is
        time.monotonic, whatever clock ages the entries)."""
        source = self.source
        return source is None or time.monotonic() < source.trusted_until

    # --- reads -------------------------------------------------------------

    def get(self, service: str, uid: str) -> Entry | None:
        if self.lifetime <= 0:
            return None
        source = self.source
        if source is not None and _monotonic() >= source.trusted_until:
            return None
        # No lock: a dict read is atomic, and an entry dropped by `invalidate`
        # (under the lock) is either still there or gone, never half-made.
        entry = self._entries.get((service, uid))
        if entry is None:
            return None
        if entry.deadline <= self._clock():
            self._entries.pop((service, uid), None)
            return None
        return entry

    def begin(self) -> Token:
        """Call before reading a link from Redis whose answer will be `put`."""
        source = self.source
        return Token(-1 if source is None else source.generation, self._seq)

    def put(self, token: Token, service: str, uid: str, pod: int, persistent: bool, ttl_ms: int | None = None) -> bool:
        """Remember a link read after `token` was taken; False when it may be stale."""
        if self.lifetime <= 0:
            return False
        source = self.source
        if source is not None and (source.generation != token.generation or not self.trusted()):
            return False
        lifetime = self.lifetime if ttl_ms is None else min(self.lifetime, ttl_ms / 1000)
        now = self._clock()
        key = (service, uid)
        with self._lock:
            if self._seq != token.seq and self._overtaken(key, token.seq):
                return False
            if len(self._entries) >= self.max_entries:
                self._trim(now)
            self._entries[key] = Entry(pod, persistent, now + lifetime)
        return True

    def _overtaken(self, key: tuple[str, str], since: int) -> bool:
        """Whether `key` was invalidated after `since` (held under the lock)."""
        if not self._recent or self._recent[0][0] > since + 1:
            return True  # the ring no longer reaches back that far
        for seq, what in reversed(self._recent):
            if seq <= since:
                return False
            if what is _FLUSH or what == key:
                return True
        return False

    def forget(self, service: str, uid: str) -> None:
        """Drop one entry (the caller knows it is wrong)."""
        with self._lock:
            self._entries.pop((service, uid), None)

    def __len__(self) -> int:
        return len(self._entries)

    # --- invalidation ----------------------------------------------------------

    def invalidate(self, links: list[tuple[str, str]]) -> None:
        """Redis says these (service, uid) links changed."""
        with self._lock:
            for key in links:
                self._seq += 1
                self._recent.append((self._seq, key))
                if self._entries.pop(key, None) is not None:
                    self.invalidations += 1

    def flush(self) -> None:
        """Drop everything (the channel was re-made, or Redis was flushed)."""
        with self._lock:
            self._seq += 1
            self._recent.append((self._seq, _FLUSH))
            self._entries.clear()
            self.flushes += 1

    def _trim(self, now: float) -> None:
        """Drop expired entries; if still full, the oldest half (insertion order)."""
        for key in [k for k, v in self._entries.items() if v.deadline <= now]:
            del self._entries[key]
        if len(self._entries) >= self.max_entries:
            for key in list(self._entries)[: len(self._entries) // 2]:
                del self._entries[key]
