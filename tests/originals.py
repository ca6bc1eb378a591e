"""The original Go and Java drivers' reading and writing, reproduced from their formats.

Written from the originals' documented key templates, value formats and the
argument order and effect of their scripts (HZ00M/homo-go, folder route/;
HZ00M/homo, StatefulDriverRedisImpl, LoadInfo, ServiceStateMgrImpl and the
Lua scripts under homo-core-redis-base); none of their code is here. Every
write is a plain Redis command, as their scripts' effect. Where an original
has a bug, it is reproduced, and named, because the tests must see what a
real fleet sees. docs/mixed-fleets.md lists the sources.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

# --- homo-go ------------------------------------------------------------------------------------

GO_PREFIX = "sf"


def go_link_key(ns: str, uid: str, svc: str) -> str:
    return f"{GO_PREFIX}:{{{ns}:lk:{uid}}}{svc}"  # formatUidWithSpecificSvcLinkRedisKey


def go_index_key(ns: str, uid: str) -> str:
    return f"{GO_PREFIX}:{{{ns}:lk:{uid}}}"  # formatUidLinkRedisKey


def go_state_key(ns: str, svc: str) -> str:
    return f"{GO_PREFIX}:{{{ns}:state:{svc}}}"  # formatServiceStateRedisKey


def go_workload_key(ns: str, svc: str) -> str:
    return f"{GO_PREFIX}:{{{ns}:workload:{svc}}}"  # formatWorkloadStateRedisKey


class GoWriter:
    """What the Go original's executor and server driver write."""

    # StateObj.ToStateString returns this literal, whatever the pod's load and state (Go's bug).
    STATE_VALUE = "state"

    def __init__(self, client: Any, ns: str) -> None:
        self.client, self.ns = client, ns

    def publish_state(self, svc: str, pod: int) -> None:
        """updateServiceState -> SetServiceState: HSET state key, pod -> ToStateString()."""
        self.client.hset(go_state_key(self.ns, svc), str(pod), self.STATE_VALUE)

    def publish_workload(self, svc: str, load: int, shutdown: bool = False) -> str:
        """calculateWorkloadState -> SetWorkloadState: SET workload key (no TTL)."""
        value = ("Shutdown" if shutdown else "Overloaded" if load >= 5 else "High" if load >= 3
                 else "Normal" if load >= 1 else "Idle")
        self.client.set(go_workload_key(self.ns, svc), value)
        return value

    # Link scripts: KEYS {uidSvcKey, uidKey}, ARGV {svc, pod, persistSeconds} (-1 = persistent).
    def set_link(self, uid: str, svc: str, pod: int, persist_seconds: int) -> int:
        """statefulSetLink: GET the old pod, SET, then PERSIST + HSET or EXPIRE + HDEL; returns the old pod or -1."""
        link, index = go_link_key(self.ns, uid, svc), go_index_key(self.ns, uid)
        old = self.client.get(link)
        self.client.set(link, str(pod))
        if persist_seconds == -1:
            self.client.persist(link)
            self.client.hset(index, svc, str(pod))
        else:
            self.client.expire(link, persist_seconds)
            self.client.hdel(index, svc)
        return -1 if old is None else int(old)

    def set_link_if_absent(self, uid: str, svc: str, pod: int, persist_seconds: int) -> int:
        """statefulSetLinkIfAbsent: an existing link wins, untouched (no TTL refresh)."""
        link, index = go_link_key(self.ns, uid, svc), go_index_key(self.ns, uid)
        old = self.client.get(link)
        if old is not None:
            return int(old)
        self.client.set(link, str(pod))
        if persist_seconds == -1:
            self.client.persist(link)
            self.client.hset(index, svc, str(pod))
        else:
            self.client.expire(link, persist_seconds)
            self.client.hdel(index, svc)
        return pod

    def remove_link(self, uid: str, svc: str, persist_seconds: int) -> bool:
        """statefulRemoveLink: DEL first, then EXPIRE on the deleted key (a no-op), then HDEL.
        A delayed removal therefore removes at once (Go's bug)."""
        link, index = go_link_key(self.ns, uid, svc), go_index_key(self.ns, uid)
        removed = self.client.delete(link)
        if persist_seconds != -1:
            self.client.expire(link, persist_seconds)
        self.client.hdel(index, svc)
        return bool(removed)

    def set_link_json(self, uid: str, svc: str, pod: int, expire_seconds: int, now_s: int) -> None:
        """The shipped route/executor/lua_scripts/statefulSetLink.lua: the link key holds JSON, with EX."""
        value = json.dumps({"podId": pod, "serviceName": svc, "namespace": self.ns, "uid": uid,
                            "createTime": str(now_s), "lastAccessTime": str(now_s)})
        self.client.set(go_link_key(self.ns, uid, svc), value, ex=expire_seconds)


class GoReader:
    """The Go original's reading of states and links (RouteInfoDriverImpl, client driver)."""

    def __init__(self, client: Any, ns: str) -> None:
        self.client, self.ns = client, ns

    def states(self, svc: str) -> dict[int, str]:
        """GetServiceState: HGETALL; fields that Atoi rejects are skipped."""
        out = {}
        for name, value in self.client.hgetall(go_state_key(self.ns, svc)).items():
            try:
                out[int(name)] = value
            except ValueError:
                continue
        return out

    def routable(self, svc: str) -> list[int]:
        """IsPodRoutable: the value is exactly "READY"; everything else maps to Unknown."""
        return sorted(pod for pod, value in self.states(svc).items() if value == "READY")

    def available(self, svc: str, pod: int) -> bool:
        """IsPodAvailable: the pod has a field at all."""
        return pod in self.states(svc)

    def linked_pod(self, uid: str, svc: str) -> int:
        """GetLinkedPod: GET and Atoi; -1 when none; an error when the value is no number."""
        raw = self.client.get(go_link_key(self.ns, uid, svc))
        if raw is None or raw == "":
            return -1
        return int(raw)  # ValueError: "无效的Pod索引" in Go

    @staticmethod
    def cache_valid(pod: int) -> bool:
        """isCacheValid: pod 0 counts as 'no link' in Go's client cache (Go's bug)."""
        return pod != 0 and pod != -100

    def best_pod(self, svc: str) -> int:
        """GetServiceBestPod over the routable pods (loads are never parsed: all 0, so the lowest pod)."""
        routable = self.routable(svc)
        if not routable:
            raise LookupError("service not ready")
        return routable[0]

    def place(self, uid: str, svc: str, persist_seconds: int = 300) -> int:
        writer = GoWriter(self.client, self.ns)
        return writer.set_link_if_absent(uid, svc, self.best_pod(svc), persist_seconds)


# --- homo-java ----------------------------------------------------------------------------------

JAVA_PREFIX = "slug"
JAVA_PERSIST_FOREVER = -1  # StatefulDriver.PERSIST_FOREVER
JAVA_DELETE_NOW = -1  # StatefulDriver.DELETE_NOW
# ServerStateProperties defaults.
JAVA_LINK_TTL_S = 540  # homo.service.state.cache.duration.second
JAVA_LOCAL_CACHE_S = 600  # homo.service.state.local.cache.duration.second
JAVA_DELAY_REMOVE_S = 60  # homo.service.state.cache.delay.remove.second
JAVA_STATE_EXPIRE_MS = 60_000  # homo.service.state.expire.millSeconds ...
JAVA_STATE_WINDOW_MS = JAVA_STATE_EXPIRE_MS * 1000  # ... multiplied by 1000 again in getAllStateInfo (Java's bug)
JAVA_RANGE = 500  # homo.service.state.range.default


def java_link_key(ns: str, uid: str, svc: str) -> str:
    return f"{JAVA_PREFIX}-lk:{{{ns}:{uid}:{svc}}}"  # USER_SERVICE_TEMP


def java_index_key(ns: str, uid: str) -> str:
    return f"{JAVA_PREFIX}-lk:{{{ns}:{uid}}}"  # USER_TEMP


def java_state_key(ns: str, svc: str) -> str:
    return f"{JAVA_PREFIX}-state:{{{ns}:{svc}}}"  # SERVICE_STATE_TEMP


class JavaReadError(Exception):
    """LoadInfo.build threw: the whole getServiceState call fails, for every pod of the service."""


@dataclass(frozen=True)
class LoadInfo:
    id: int
    load: int
    timestamp: int
    state: int


_INT_MAX, _LONG_MAX = 2**31 - 1, 2**63 - 1


def _java_parse(text: str, limit: int) -> int:
    """Integer.valueOf / Long.valueOf: optional sign, ASCII digits, in range; else NumberFormatException."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise JavaReadError(f"NumberFormatException: For input string: {text!r}")
    value = int(text)
    if not -limit - 1 <= value <= limit:
        raise JavaReadError(f"NumberFormatException: For input string: {text!r}")
    return value


def java_load_info(pod_field: str, value: str) -> LoadInfo:
    """LoadInfo.build: value.split("-") (trailing empty strings dropped), the first three parsed."""
    parts = value.split("-")
    while parts and parts[-1] == "":
        parts.pop()
    if len(parts) < 3:
        raise JavaReadError(f"ArrayIndexOutOfBoundsException for {value!r}")
    return LoadInfo(_java_parse(pod_field, _INT_MAX), _java_parse(parts[0], _INT_MAX),
                    _java_parse(parts[1], _LONG_MAX), _java_parse(parts[2], _INT_MAX))


class JavaWriter:
    """What StatefulDriverRedisImpl writes (its Lua scripts' effect as plain commands)."""

    def __init__(self, client: Any, ns: str) -> None:
        self.client, self.ns = client, ns

    def publish_state(self, svc: str, pod: int, load: int, state: int, now_ms: int | None = None) -> str:
        """setServiceState: HSET state key, pod -> LoadInfo.join(load, currentTimeMillis, state)."""
        value = f"{load}-{int(time.time() * 1000) if now_ms is None else now_ms}-{state}"
        self.client.hset(java_state_key(self.ns, svc), str(pod), value)
        return value

    # Link scripts: KEYS {uidSvcKey, uidKey}, ARGV {svc, pod, ttl} (-1 = persistent).
    def set_link(self, uid: str, svc: str, pod: int, ttl: int) -> None:
        """statefulSetLink: SET, then PERSIST + HSET, or EXPIRE + HDEL."""
        link, index = java_link_key(self.ns, uid, svc), java_index_key(self.ns, uid)
        self.client.set(link, str(pod))
        if ttl == -1:
            self.client.persist(link)
            self.client.hset(index, svc, str(pod))
        else:
            self.client.expire(link, ttl)
            self.client.hdel(index, svc)

    def set_link_if_absent(self, uid: str, svc: str, pod: int, ttl: int) -> int:
        """statefulSetLinkIfAbsent: an existing link with a TTL gets EXPIRE ttl (so ttl -1 deletes
        it: Java's bug) and wins; else SET and HSET (ttl -1) or EXPIRE."""
        link, index = java_link_key(self.ns, uid, svc), java_index_key(self.ns, uid)
        old = self.client.get(link)
        if old is not None:
            if self.client.ttl(link) != -1:
                self.client.expire(link, ttl)  # EXPIRE key -1 deletes the key
            return int(old)
        self.client.set(link, str(pod))
        if ttl == -1:
            self.client.hset(index, svc, str(pod))
        else:
            self.client.expire(link, ttl)
        return pod

    def remove_link(self, uid: str, svc: str, ttl: int) -> None:
        """statefulRemoveLink: ttl -1 DEL, else EXPIRE ttl (a delayed removal); HDEL; DEL an empty index."""
        link, index = java_link_key(self.ns, uid, svc), java_index_key(self.ns, uid)
        if ttl == -1:
            self.client.delete(link)
        else:
            self.client.expire(link, ttl)
        self.client.hdel(index, svc)
        if self.client.hlen(index) == 0:
            self.client.delete(index)


@dataclass
class JavaReader:
    """ServiceStateMgrImpl's view of one service: getAllStateInfo, updateGoodServiceCache, choiceFun."""

    client: Any
    ns: str
    range: int = JAVA_RANGE
    good: dict[str, list[int]] = field(default_factory=dict)  # goodServiceMap
    alive: dict[str, list[int]] = field(default_factory=dict)  # availableServiceMap
    turns: dict[str, int] = field(default_factory=dict)  # choiceFun's serviceMode
    local_cache: dict[tuple[str, str], int] = field(default_factory=dict)

    def states(self, svc: str, now_ms: int | None = None) -> dict[int, LoadInfo]:
        """getServiceState: every field through LoadInfo.build (one bad value fails the call), kept
        when timestamp >= now - expireMillis * 1000."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        begin = now - JAVA_STATE_WINDOW_MS
        out = {}
        for pod, value in self.client.hgetall(java_state_key(self.ns, svc)).items():
            info = java_load_info(pod, value)
            if info.timestamp >= begin:
                out[info.id] = info
        return out

    def update(self, svc: str, now_ms: int | None = None) -> bool:
        """updateGoodServiceCache; False (caches kept as they were) when it threw, as errorContinue does."""
        try:
            infos = self.states(svc, now_ms)
        except JavaReadError:
            return False
        if not infos:
            self.good[svc] = []  # availableServiceMap is left as it was
            return True
        # A HashMap<Integer, _> of small pod numbers iterates in ascending order.
        available = [info for _, info in sorted(infos.items()) if info.state != 0]
        if not available:
            return False  # filterStateList.get(0) throws: both caches keep their old lists (Java's bug)
        limit = available[0].load + self.range
        good = []
        for info in available:
            if info.load <= limit:
                good.append(info.id)
            else:
                break
        self.good[svc] = good
        self.alive[svc] = [info.id for info in available]
        return True

    def is_pod_available(self, svc: str, pod: int) -> bool:
        return pod in self.alive.get(svc, [])

    def choice_best_pod(self, svc: str) -> int | None:
        if svc not in self.good:
            if not self.update(svc):
                raise LookupError(f"choicePodNotFound {svc}")
        good = self.good[svc]
        count = self.turns.get(svc, 0)
        self.turns[svc] = count + 1
        return good[count % len(good)] if good else None

    def compute_linked_pod(self, uid: str, svc: str, persist: bool = False) -> int | None:
        """computeUserLinkedPodIfAbsent: cache, else choose and setLinkedPodIfAbsent (TTL 540 s)."""
        cached = self.local_cache.get((uid, svc))
        if cached is not None:
            return cached if self.is_pod_available(svc, cached) else None
        chosen = self.choice_best_pod(svc)
        if chosen is None:
            return None
        ttl = JAVA_PERSIST_FOREVER if persist else JAVA_LINK_TTL_S
        current = JavaWriter(self.client, self.ns).set_link_if_absent(uid, svc, chosen, ttl)
        if not self.is_pod_available(svc, current):
            return None
        self.local_cache[(uid, svc)] = current
        return current

    def linked_pod(self, uid: str, svc: str) -> int:
        """statefulGetLink: GET or "-1", then Integer.valueOf."""
        raw = self.client.get(java_link_key(self.ns, uid, svc))
        return _java_parse("-1" if raw is None else raw, _INT_MAX)

    def all_link_service(self, uid: str) -> dict[str, int]:
        """getAllLinkService: HGETALL of the index, values through Integer.valueOf."""
        return {svc: _java_parse(pod, _INT_MAX) for svc, pod in
                self.client.hgetall(java_index_key(self.ns, uid)).items()}
