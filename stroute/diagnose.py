"""Diagnose a deployment: connectivity, server, scripts, pods, clocks, link data.

`run()` returns a Report of checks, each PASS, WARN or FAIL with a one-line
detail. Nothing here prints: the command line renders the report. Every check
reads, except SCRIPT LOAD of stroute's own scripts (what any driver does on
first use) and the write probe: one key under the namespace's hash tag,
`P:{ns}:probe:TOKEN`, set with a 10 s TTL and deleted at once, because a
Redis that answers every read can still refuse every write (a read-only
replica, an ACL without write commands, a full memory under noeviction).

What each status means:
- FAIL: something is broken now (Redis unreachable, writes refused, memory
  above maxmemory under noeviction, a script does not load, a service with
  no routable pod, a broken link index, a clock so far off that pods are
  judged alive or dead wrongly);
- WARN: worth a look, not an outage (stale or DOWN pods, persistent links to
  dead pods, a Redis setting that can lose links, small clock skew).
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from stroute.config import Config
from stroute.errors import RedisUnavailable, StrouteError
from stroute.podstate import EPOCH_FLAP_WINDOW_MS, PodNotes, Snapshot
from stroute.store import SCRIPTS, BadKeys, Link, Store, script_sha, script_source

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
STATUSES = (PASS, WARN, FAIL)

PING_SAMPLES = 5
LATENCY_WARN_MS = 50.0
CLOCK_WARN_MS = 1000
CLOCK_NOISE_MS = 10  # below this a measured skew is round-trip noise
# The scripts read TIME and then write: replicating their effects (not the
# script) is the default from Redis 5.0; 3.2-4.x need redis.replicate_commands().
MIN_VERSION = (5, 0)
PROBE_TTL_MS = 10_000  # the write probe's key outlives a doctor killed between SET and DEL by this much
MEMORY_WARN = 0.9  # share of maxmemory in use, under noeviction, that warns before writes fail
EXAMPLES = 3  # examples named in a detail line


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class Report:
    namespace: str
    checks: list[Check] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, int]:
        return {s.lower(): sum(1 for c in self.checks if c.status == s) for s in STATUSES}

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)

    @property
    def unreachable(self) -> bool:
        """The connection check failed: nothing else could be checked."""
        return any(c.name == "connection" and c.status == FAIL for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "checks": [c.to_dict() for c in self.checks],
            "summary": self.summary,
        }


def run(store: Store, config: Config, *, sample: int = 1000, clock: Callable[[], float] = time.time) -> Report:
    """Run every check against one namespace; `sample` bounds the link scans."""
    ns = config.namespace
    expire_ms = config.state.expire_ms
    report = Report(ns)
    connection = _guard("connection", lambda: check_connection(store))
    report.checks.append(connection)
    if connection.status == FAIL:
        return report
    report.checks.append(_guard("server", lambda: check_server(store)))
    report.checks.append(_guard("memory", lambda: check_memory(store)))
    report.checks.append(_guard("write", lambda: check_write(store, ns)))
    report.checks.append(_guard("scripts", lambda: check_scripts(store)))
    report.checks.append(_guard("tracking", lambda: check_tracking(store, config)))

    snapshots: dict[str, Snapshot] = {}
    try:
        registry = store.registry(ns, discover=True)
    except StrouteError as exc:
        report.checks.append(Check("services", FAIL, str(exc)))
        services = []
    else:
        services = registry.services
        if registry.wrong_type is not None:
            report.checks.append(Check(
                "services", FAIL,
                f"WRONGTYPE: the services registry {registry.key} is a {registry.wrong_type}, not a set: "
                "server drivers cannot register their service (SADD fails); delete the key, they add it again",
            ))
        elif registry.invalid:
            report.checks.append(Check(
                "services", WARN,
                f"the services registry {registry.key} holds "
                f"{_count(len(registry.invalid), 'entry', 'entries')} that are not service names "
                f"(written by another program?): {_examples([repr(m) for m in registry.invalid])}; "
                "stroute skips them (remove them with SREM)",
            ))
        elif not services:
            report.checks.append(Check(
                "services", WARN,
                f"no service has registered in namespace {ns!r}: no server driver has published a heartbeat yet",
            ))
        elif registry.unregistered:
            report.checks.append(Check(
                "services", PASS,
                f"{_count(len(services), 'service')}; found by their state keys only, not in the registry "
                f"{registry.key} (an original Go or Java server driver registers nothing): "
                f"{_examples(list(registry.unregistered))}",
            ))
    for service in services:
        def one(service: str = service) -> Check:
            snapshots[service] = snap = store.snapshot(ns, service, expire_ms=expire_ms)
            return check_service(snap, store.pod_notes(ns, service), store.keys(ns).state(service))

        report.checks.append(_guard(f"service:{service}", one))

    report.checks.append(_guard("clock", lambda: check_clock(store, snapshots.values(), expire_ms, clock)))

    links: list[Link] = []

    def sample_links() -> Check:
        bad = BadKeys()
        links.extend(itertools.islice(store.scan_links(ns, bad=bad), sample))
        check = check_links(links, _snapshot_of(store, ns, expire_ms, snapshots), sample)
        if not bad.count:
            return check
        examples = _examples([f"{key} {problem}" for key, problem in bad.found])
        verb = "holds" if bad.count == 1 else "hold"
        return Check("links", FAIL, f"{_count(bad.count, 'key')} under link names {verb} data stroute cannot read "
                                    f"(the commands that walk links skip them and exit 7): {examples}; "
                                    f"repair or delete them; {check.detail}")

    report.checks.append(_guard("links", sample_links))
    report.checks.append(_guard("index", lambda: check_index(store, ns, links, sample)))
    return report


def _guard(name: str, fn: Callable[[], Check]) -> Check:
    """A check that hits a Redis error becomes a FAIL naming it."""
    try:
        return fn()
    except StrouteError as exc:
        return Check(name, FAIL, str(exc) + (f"; {exc.hint}" if exc.hint else ""))


def _snapshot_of(store: Store, ns: str, expire_ms: int, cache: dict[str, Snapshot]) -> Callable[[str], Snapshot]:
    def get(service: str) -> Snapshot:
        snap = cache.get(service)
        if snap is None:
            snap = cache[service] = store.snapshot(ns, service, expire_ms=expire_ms)
        return snap

    return get


def duration(ms: float) -> str:
    """A short human duration: 850ms, 4.2s, 3m05s, 2h03m, 5d04h."""
    ms = max(0, int(ms))
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:EXAMPLES])
    more = len(items) - EXAMPLES
    return shown + (f" and {more} more" if more > 0 else "")


# --- the checks ------------------------------------------------------------------


def check_connection(store: Store) -> Check:
    started = time.perf_counter()
    store.ping()  # connects: timed apart from the round trips
    connect_ms = (time.perf_counter() - started) * 1000
    timings = []
    for _ in range(PING_SAMPLES):
        started = time.perf_counter()
        store.ping()
        timings.append((time.perf_counter() - started) * 1000)
    latency = statistics.median(timings)
    detail = (f"{store.where}: connected in {connect_ms:.1f} ms, PING median {latency:.2f} ms "
              f"over {PING_SAMPLES}, max {max(timings):.2f} ms")
    if latency > LATENCY_WARN_MS:
        return Check("connection", WARN, detail + f" (over {LATENCY_WARN_MS:.0f} ms: every operation pays it)")
    return Check("connection", PASS, detail)


def _info(store: Store, section: str) -> dict[str, Any] | None:
    """INFO section, or None when the server does not implement INFO (memory://)."""
    try:
        return store._call(store.client.info, section)
    except RedisUnavailable:
        raise
    except StrouteError:
        return None


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        parts.append(int(digits or 0))
    return tuple(parts)


def check_server(store: Store) -> Check:
    server = _info(store, "server")
    if server is None:
        return Check("server", WARN, "the server does not answer INFO (an in-process memory:// store?): "
                                     "version and mode unknown")
    version = str(server.get("redis_version", "?"))
    mode = server.get("redis_mode", "standalone")
    replication = _info(store, "replication") or {}
    cluster = _info(store, "cluster") or {}
    role = replication.get("role", "?")
    parts = [f"Redis {version}", f"mode {mode}", f"role {role}"]
    if str(cluster.get("cluster_enabled", "0")) == "1":
        parts.append("cluster enabled")
    if role == "master":
        parts.append(f"{replication.get('connected_slaves', 0)} replicas")
    detail = ", ".join(parts)
    if role == "slave":
        return Check("server", FAIL, detail + ": connected to a replica, which refuses writes; "
                                              "point the URL at the master (or use redis+sentinel://)")
    if _version(version) < MIN_VERSION:
        return Check("server", WARN, detail + f": stroute needs Redis {'.'.join(map(str, MIN_VERSION))} "
                                              "or later (scripts that read TIME before writing)")
    return Check("server", PASS, detail)


def check_memory(store: Store) -> Check:
    """Each primary's memory (on a cluster every node holds links): the worst one decides."""
    if store.cluster:
        nodes = []
        for client in store._primaries():
            kwargs = client.connection_pool.connection_kwargs
            nodes.append((f"{kwargs.get('host')}:{kwargs.get('port')}", store._call(client.info, "memory")))
    else:
        memory = _info(store, "memory")
        if memory is None:
            return Check("memory", PASS, "eviction policy unknown (no INFO): nothing to check")
        nodes = [("", memory)]
    rank = {PASS: 0, WARN: 1, FAIL: 2}
    status, detail = max((_memory_of(memory) for _, memory in nodes), key=lambda found: rank[found[0]])
    if len(nodes) > 1:
        worst = next(name for name, memory in nodes if _memory_of(memory) == (status, detail))
        detail = f"{len(nodes)} primaries, {'each' if status == PASS else 'worst'}: node {worst}: {detail}"
    return Check("memory", status, detail)


def _memory_of(memory: dict[str, Any]) -> tuple[str, str]:
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    limit = int(memory.get("maxmemory", 0) or 0)
    used = int(memory.get("used_memory", 0) or 0)
    detail = (f"used {memory.get('used_memory_human', used)}, "
              f"maxmemory {'none' if limit == 0 else memory.get('maxmemory_human', limit)}, policy {policy}")
    if limit and policy == "noeviction" and used > limit:
        return FAIL, detail + (": above maxmemory under noeviction, Redis refuses every write "
                               "(links, heartbeats); raise maxmemory or free memory")
    if limit and policy.startswith("allkeys-"):
        return WARN, detail + (": when memory is full Redis evicts any key, persistent links "
                               "included; use noeviction or a volatile-* policy")
    if limit and used > limit:
        return WARN, detail + (": above maxmemory, Redis evicts keys with a TTL (temporary links) "
                               "and refuses writes when none is left")
    if limit and policy == "noeviction" and used >= MEMORY_WARN * limit:
        return WARN, detail + (f": over {MEMORY_WARN:.0%} of maxmemory under noeviction; "
                               "past it Redis refuses every write")
    return PASS, detail


def _refusal(exc: Exception) -> str | None:
    """What a refused write means (redis-py strips the error's first word), or None."""
    from redis import exceptions as e

    text = str(exc).strip()
    if isinstance(exc, e.ReadOnlyError) or text.startswith("READONLY"):
        return "this is a read-only replica: point the URL at the master (or use redis+sentinel://)"
    if isinstance(exc, e.OutOfMemoryError) or text.startswith("OOM"):
        return "memory is above maxmemory under noeviction: raise maxmemory or free memory"
    if isinstance(exc, e.NoPermissionError) or text.startswith("NOPERM"):
        return ("the Redis user's ACL forbids it: allow write commands on the namespace's keys "
                "('stroute acl' prints a rule)")
    if text.startswith("MISCONF"):
        return "Redis cannot save its snapshot and refuses writes (stop-writes-on-bgsave-error)"
    return None


def _reraise(exc: Exception) -> None:
    raise exc


def check_write(store: Store, namespace: str) -> Check:
    """SET (PX) and DEL one probe key under the namespace's hash tag: on a
    cluster it goes to the namespace's own slot, so its node is the one tested."""
    import secrets

    import redis

    key = store.keys(namespace).probe(secrets.token_hex(6))
    try:
        store.client.set(key, "stroute doctor", px=PROBE_TTL_MS)
        store.client.delete(key)
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        why = _refusal(exc)
        if why is None:  # not a refusal to write: the store's own message and exit code
            store._call(_reraise, exc)
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        return Check("write", FAIL, f"Redis refuses writes, {why} (SET {key}: {reason})")
    return Check("write", PASS, f"SET (PX {PROBE_TTL_MS}) and DEL of a probe key under the namespace's hash tag "
                                "succeed")


# CLIENT TRACKING, which keeps client drivers' caches coherent, came with Redis 6.0.
TRACKING_VERSION = (6, 0)


def check_tracking(store: Store, config: Config) -> Check:
    """Can client drivers keep a coherent cache here (CLIENT TRACKING), and how many do now."""
    if not config.links.coherent:
        return Check("tracking", WARN, f"links.coherent is off: client drivers serve a cached link for up to "
                                       f"{config.links.cache_seconds:g} s (links.cache_seconds) after it changed "
                                       "in Redis")
    server = _info(store, "server")
    if server is None:
        return Check("tracking", PASS, "memory://: client drivers sharing this process's store are told of "
                                       "every change by an in-process hook")
    version = str(server.get("redis_version", "?"))
    if _version(version) < TRACKING_VERSION:
        return Check("tracking", FAIL, f"Redis {version} has no CLIENT TRACKING (Redis 6.0 or later has): client "
                                       "drivers cannot confirm their cache and read Redis for every lookup; upgrade "
                                       "Redis, or set links.coherent: false to cache without coherence")
    clients = _sum_over_nodes(_info(store, "clients"), "tracking_clients")
    keys = _sum_over_nodes(_info(store, "stats"), "tracking_total_keys")
    return Check("tracking", PASS, f"Redis {version} supports CLIENT TRACKING; {clients} tracking connections, "
                                   f"{keys} keys tracked now")


def _sum_over_nodes(info: dict[str, Any] | None, field: str) -> int:
    """An INFO field, added up over a cluster's nodes (whose INFO comes keyed by node)."""
    if not info:
        return 0
    if field in info:
        return int(info[field] or 0)
    return sum(int(part.get(field, 0) or 0) for part in info.values() if isinstance(part, dict))


def check_scripts(store: Store) -> Check:
    loaded, failed = [], []
    for name in SCRIPTS:
        try:
            sha = store._call(store.client.script_load, script_source(name))
        except StrouteError as exc:
            failed.append(f"{name}.lua: {exc}")
            continue
        expected = script_sha(name)
        if sha != expected:
            failed.append(f"{name}.lua: SCRIPT LOAD answered {sha}, expected {expected}")
        else:
            loaded.append(name)
    if failed:
        return Check("scripts", FAIL, f"{len(failed)} of {_count(len(failed) + len(loaded), 'script')} do not load: "
                                      + _examples(failed))
    return Check("scripts", PASS, f"{len(loaded)} scripts load (SCRIPT LOAD)")


def check_service(snap: Snapshot, pod_notes: dict[int, PodNotes] | None = None, state_key: str | None = None) -> Check:
    """`pod_notes` (Store.pod_notes) adds a WARN for a pod whose epoch keeps
    changing: EPOCH_FLAP_COUNT epochs within EPOCH_FLAP_WINDOW_MS (a crash
    loop, or two instances taking the pod in turn), kept by state_publish.lua."""
    name = f"service:{snap.service}"
    views = list(snap.pods.values())
    if not views and not snap.invalid:
        return Check(name, WARN, "registered, but no pod has published a state")
    routable = snap.routable()
    alive = snap.alive()
    head = (f"{len(routable)} routable / {len(alive)} alive / {_count(len(views) + len(snap.invalid), 'pod')}, "
            f"workload {snap.workload}")
    flapping = [
        f"pod {pod}'s epoch keeps changing: {note.recent_epochs(snap.now_ms)} epochs in the last "
        f"{EPOCH_FLAP_WINDOW_MS // 60000} min (a crash loop, or two instances taking it in turn)"
        for pod, note in sorted((pod_notes or {}).items())
        if note.flapping(snap.now_ms)
    ]
    problems = [
        # A stale pod that last said DOWN stopped cleanly; one that last said READY crashed.
        f"pod {v.pod} {v.display_state} (last heartbeat {duration(v.heartbeat_age_ms)} ago"
        + (f", last published {v.state.name})" if v.stale else ")")
        for v in views
        if not v.alive
    ]
    where = f" of {state_key}" if state_key else ""
    raws = dict(snap.unparseable)
    for pod in snap.invalid:
        raw = raws.get(pod)
        shown = "" if raw is None else f": {raw!r}"
        why = " (the original Go server driver writes the literal 'state')" if raw == "state" else ""
        problems.append(f"pod {pod} has an unparseable state field{where}{shown}, treated as dead{why}")
    dead = bool(problems)
    problems = flapping + problems
    cordoned = [str(v.pod) for v in views if v.cordoned]
    notes = [f"cordoned: {', '.join(cordoned)}"] if cordoned else []
    if not routable:
        return Check(name, FAIL, "; ".join([head + ": new users get 'no available pod'",
                                            *([_examples(problems)] if problems else []), *notes]))
    if dead:
        return Check(name, WARN, "; ".join([head, _examples(problems), *notes])
                     + " (a pod gone for good: 'stroute pod forget')")
    if problems:
        return Check(name, WARN, "; ".join([head, _examples(problems), *notes]))
    return Check(name, PASS, "; ".join([head, *notes]))


def check_clock(store: Store, snapshots: Iterable[Snapshot], expire_ms: int, clock: Callable[[], float]) -> Check:
    before = clock()
    secs, micros = store._call(store.client.time)
    after = clock()
    redis_ms = int(secs) * 1000 + int(micros) // 1000
    local_skew = redis_ms - round((before + after) / 2 * 1000)
    findings = [_skew_text(local_skew)]
    worst_pod = 0
    ahead = []
    for snap in snapshots:
        for view in snap.pods.values():
            future = view.heartbeat_ms - snap.now_ms
            if future > CLOCK_WARN_MS:
                ahead.append(f"pod {view.pod} of {snap.service} heartbeat {duration(future)} in the future")
                worst_pod = max(worst_pod, future)
            if view.epoch is not None and view.epoch - snap.now_ms > CLOCK_WARN_MS:
                ahead.append(f"pod {view.pod} of {snap.service} started {duration(view.epoch - snap.now_ms)} "
                             "in the future (its host clock is ahead)")
                worst_pod = max(worst_pod, view.epoch - snap.now_ms)
    if ahead:
        findings.append(_examples(ahead))
    else:
        findings.append("pod heartbeats agree with Redis TIME")
    detail = "; ".join(findings)
    if worst_pod > expire_ms:
        return Check("clock", FAIL, detail + f": beyond the expiry window ({duration(expire_ms)}), "
                                             "dead pods look alive; stamp heartbeats with Redis TIME")
    if ahead or abs(local_skew) > CLOCK_WARN_MS:
        return Check("clock", WARN, detail + " (stroute stamps heartbeats with Redis TIME; writers that use "
                                             "their own clock, and pod epochs, depend on synced clocks)")
    return Check("clock", PASS, detail)


def _skew_text(skew_ms: int) -> str:
    if abs(skew_ms) < CLOCK_NOISE_MS:
        return f"this host's clock is in step with Redis TIME (within {CLOCK_NOISE_MS} ms)"
    return f"this host's clock is {duration(abs(skew_ms))} {'behind' if skew_ms > 0 else 'ahead of'} Redis TIME"


def check_links(links: list[Link], snapshot_of: Callable[[str], Snapshot], sample: int) -> Check:
    if not links:
        return Check("links", PASS, "no links in the namespace")
    dead_persistent, dead_temporary = [], 0
    for link in links:
        snap = snapshot_of(link.service)
        if snap.is_alive(link.pod):
            continue
        view = snap.pods.get(link.pod)
        why = "never published a state" if view is None else view.display_state
        if link.persistent:
            dead_persistent.append(f"{link.uid} -> {link.service} pod {link.pod} ({why})")
        else:
            dead_temporary += 1
    scope = f"{_count(len(links), 'link')} sampled" + (" (the first of more)" if len(links) >= sample else "")
    temp = (f"; {_count(dead_temporary, 'temporary link')} to dead pods (moved on next placement)"
            if dead_temporary else "")
    if dead_persistent:
        return Check("links", WARN, f"{scope}: {_count(len(dead_persistent), 'persistent link')} to dead pods, "
                                    f"those users get 'pod unavailable' until the pod returns or they are moved: "
                                    f"{_examples(dead_persistent)}{temp}")
    return Check("links", PASS, f"{scope}: every persistent link points at an alive pod{temp}")


def _scan_index_keys(store: Store, ns: str, limit: int) -> list[tuple[str, str]]:
    """(key, uid) of up to `limit` index hashes, by SCAN."""
    ks = store.keys(ns)
    found: list[tuple[str, str]] = []
    for batch in store.scan_keys(ks.index_pattern(), count=1000):
        for key in batch:
            uid = ks.parse_index(key)
            if uid is not None:
                found.append((key, uid))
                if len(found) >= limit:
                    return found
    return found


def _read_pairs(store: Store, ns: str, pairs: list[tuple[str, str]], *, atomic: bool) -> list[tuple[Any, Any, Any]]:
    """(link value, link pttl, index field) of each (uid, service)."""
    ks = store.keys(ns)
    if atomic:
        # One MULTI per pair (both keys share a hash tag): a concurrent link
        # operation cannot show a half-done state.
        out = []
        for uid, service in pairs:
            pipe = store.client.pipeline(transaction=True)
            pipe.get(ks.link(uid, service))
            pipe.pttl(ks.link(uid, service))
            pipe.hget(ks.index(uid), service)
            out.append(tuple(store._call(pipe.execute)))
        return out
    pipe = store.client.pipeline(transaction=False)
    for uid, service in pairs:
        pipe.get(ks.link(uid, service))
        pipe.pttl(ks.link(uid, service))
        pipe.hget(ks.index(uid), service)
    flat = store._call(pipe.execute, raise_on_error=False) if pairs else []
    return [tuple(flat[i:i + 3]) for i in range(0, len(flat), 3)]


def _problem(uid: str, service: str, value: Any, pttl: Any, field_value: Any) -> str | None:
    """What breaks the invariant 'index field iff persistent link, same pod', or None."""
    if field_value is None:
        if value is not None and int(pttl) == -1:
            return f"persistent link {uid} -> {service} pod {value} is missing from the index"
        return None
    if value is None:
        return f"index of {uid} says {service} -> {field_value}, but there is no link"
    if int(pttl) != -1:
        return f"index of {uid} says {service} -> {field_value}, but the link is temporary"
    if value != field_value:
        return f"index of {uid} says {service} -> {field_value}, but the link says {value}"
    return None


def check_index(store: Store, ns: str, links: list[Link], sample: int) -> Check:
    pairs: dict[tuple[str, str], None] = {}
    hashes = _scan_index_keys(store, ns, sample)
    wrong_type = []
    if hashes:
        pipe = store.client.pipeline(transaction=False)
        for key, _ in hashes:
            pipe.hgetall(key)
        for (key, uid), fields in zip(hashes, store._call(pipe.execute, raise_on_error=False)):
            if isinstance(fields, Exception):  # WRONGTYPE: no hash under the index's name
                wrong_type.append(f"index key {key} is a {store._call(store.client.type, key)}, not a hash")
                continue
            for service in fields:
                pairs[(uid, service)] = None
    for link in links:
        if link.persistent:
            pairs[(link.uid, link.service)] = None
    if not pairs and not wrong_type:
        return Check("index", PASS, "no persistent links in the namespace")
    ordered = list(pairs)
    suspects = []
    for (uid, service), reply in zip(ordered, _read_pairs(store, ns, ordered, atomic=False)):
        if any(isinstance(r, Exception) for r in reply):  # WRONGTYPE: reported by the links check or above
            problem = f"the keys of {uid} -> {service} are not of the types stroute writes"
            if not any(f" {store.keys(ns).index(uid)} " in w for w in wrong_type):
                wrong_type.append(problem)
        elif _problem(uid, service, *reply) is not None:
            suspects.append((uid, service))
    confirmed = list(wrong_type)
    if suspects:
        try:
            replies = _read_pairs(store, ns, suspects, atomic=True)
        except StrouteError:  # no MULTI (a cluster client): a second plain read
            replies = _read_pairs(store, ns, suspects, atomic=False)
        confirmed += [p for p in (_problem(*pair, *reply) for pair, reply in zip(suspects, replies)) if p]
    scope = (f"{_count(len(hashes), 'index hash', 'index hashes')} and "
             f"{_count(sum(1 for link in links if link.persistent), 'persistent link')} sampled")
    if confirmed:
        return Check("index", FAIL, f"{scope}: {_count(len(confirmed), 'inconsistency', 'inconsistencies')} "
                                    "between link keys and the "
                                    f"persistent index: {_examples(confirmed)}; re-set each link "
                                    "('stroute link set') to repair it")
    return Check("index", PASS, f"{scope}: consistent")
