"""What each driver operation sends to Redis and what the replies mean, with no I/O.

An operation is a generator: it validates its input, yields the commands it
needs and gets their replies back, and returns its result. It never touches
a socket, so the sync Store and the AsyncStore run the very same operations,
each with its own transport:

- yielding a `Command` gets its reply back; an error reply, translated into
  stroute's exceptions by the transport, is raised inside the operation at
  the yield, where the operation may handle it;
- yielding a list of `Command`s sends them in one pipelined round trip (one
  pipeline per node on a cluster) and gets the list of replies back, an
  error standing in its command's place as its translated exception.

A script is sent as EVALSHA; the transport loads it and sends it once more
when Redis lost it (NOSCRIPT). Key names come from `KeySpace`, every key of
one command under one hash tag, so each command routes to one cluster node.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generator, Iterable, NamedTuple, TypeVar

from stroute import names
from stroute.errors import CorruptData, InvalidInput, StoreError
from stroute.keys import KeySpace

if TYPE_CHECKING:
    # Imported where used: a command that reads links never loads pod states.
    from stroute.podstate import PodState, RoutingState, Snapshot

SCRIPTS = (
    "link_get",
    "link_set",
    "link_try_set",
    "link_set_if_absent",
    "link_move",
    "link_remove",
    "state_snapshot",
    "state_publish",
    "link_import",
    "state_cordon",
)

# How a heartbeat claims its pod's field (see state_publish.lua).
CLAIMS = ("start", "continue", "force")

# What a link is: kept (no TTL) or expiring.
LINK_KINDS = ("temporary", "persistent")

# Keys per MGET: large enough to amortise, small enough not to block Redis.
_MGET_CHUNK = 10_000


_SCRIPT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")


@functools.cache
def script_source(name: str) -> str:
    """One of the package's Lua scripts (stroute/scripts/NAME.lua), read once."""
    if name not in SCRIPTS:
        raise KeyError(f"no script {name!r}")
    try:
        with open(os.path.join(_SCRIPT_DIR, f"{name}.lua"), encoding="utf-8") as fh:
            return fh.read()
    except OSError:  # not a directory on disk (a zipped install): ask the import system
        from importlib import resources

        return resources.files("stroute.scripts").joinpath(f"{name}.lua").read_text(encoding="utf-8")


@functools.cache
def script_sha(name: str) -> str:
    """The SHA1 Redis knows the script by (EVALSHA)."""
    return hashlib.sha1(script_source(name).encode("utf-8")).hexdigest()


class Link(NamedTuple):
    """One link. Immutable; a tuple, not a frozen dataclass, because a listing
    builds one per link and a tuple builds in a third of the time."""

    namespace: str
    uid: str
    service: str
    pod: int
    ttl_ms: int | None  # None = persistent

    @property
    def persistent(self) -> bool:
        return self.ttl_ms is None

    @property
    def ttl(self) -> int | None:
        """Whole seconds left (rounded up) for a temporary link, None if persistent."""
        return None if self.ttl_ms is None else math.ceil(self.ttl_ms / 1000)


@dataclass
class LinkCounts:
    """How many links each pod of each service has, of each kind (a count
    over a scan: memory grows with the pods, not the links)."""

    # (service, pod) -> [persistent, temporary]
    counts: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    total: int = 0

    def add(self, links: Iterable[Link]) -> None:
        counts = self.counts
        for link in links:
            row = counts.get((link.service, link.pod))
            if row is None:
                row = counts[(link.service, link.pod)] = [0, 0]
            row[link.ttl_ms is not None] += 1
            self.total += 1

    def services(self) -> dict[str, dict[int, tuple[int, int]]]:
        """service -> pod -> (persistent, temporary), both sorted."""
        out: dict[str, dict[int, tuple[int, int]]] = {}
        for (service, pod), (persistent, temporary) in sorted(self.counts.items()):
            out.setdefault(service, {})[pod] = (persistent, temporary)
        return out


@dataclass(frozen=True, slots=True)
class SetIfAbsent:
    pod: int
    created: bool
    was_persistent: bool
    # What a temporary link has left after the call (None: persistent); not
    # part of equality, since it counts down.
    ttl_ms: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BatchLinks:
    """Store.batch_links: the links of many uids of one service."""

    pods: dict[int, list[str]]  # pod -> uids linked to it
    missing: list[str]  # uids with no link
    bad_keys: "BadKeys"  # uids whose link value is no pod index


@dataclass(frozen=True, slots=True)
class Published:
    heartbeat_ms: int
    cordoned: bool
    snapshot: Snapshot | None
    previous: PodState | None = None  # the field before this heartbeat, if it parsed
    written: bool = True  # False: the claim was refused and nothing was written


_POD_TEXT: dict[str, int] = {}  # "3" -> 3: replies repeat a few pod values

# Builds a Link from a tuple of its fields in C: Link(...) runs the
# NamedTuple's __new__, a Python function, and a listing builds one per link.
_new_tuple = tuple.__new__


def _pod_of(raw: Any, key: str) -> int:
    pod = _POD_TEXT.get(raw) if isinstance(raw, str) else None
    if pod is not None:
        return pod
    # Plain ASCII digits only, no regex: this runs for every reply.
    if isinstance(raw, str) and 0 < len(raw) <= 5 and raw.isascii() and raw.isdigit():
        pod = int(raw)
        if pod <= names.POD_MAX:
            if raw == str(pod):  # canonical text only ("03" is checked every time)
                _POD_TEXT[raw] = pod
            return pod
    elif isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= names.POD_MAX:
        return raw
    raise CorruptData(f"key {key!r} {_not_a_pod(raw)}", keys=(key,), hint=_REPAIR)


def _not_a_pod(raw: Any) -> str:
    return f"holds {names.show(raw)}, not a pod index"


_REPAIR = ("'stroute doctor' checks the namespace's data; repair or delete such keys "
           "('stroute link remove UID -s SVC' deletes a link whose value is no pod index)")


# Bad keys listed one by one in a report; the count goes on past it.
MAX_BAD_KEYS_KEPT = 100


@dataclass
class BadKeys:
    """Keys a walk over many keys skipped: they hold what stroute cannot read
    (a value that is no pod index, a key of another type, a key name that
    breaks the naming rules). Counted; the first MAX_BAD_KEYS_KEPT are kept
    with their problem. A walk given one finishes every good key; a walk
    given none raises CorruptData at the first bad key instead.
    """

    count: int = 0
    found: list[tuple[str, str]] = field(default_factory=list)  # (key, problem)

    def add(self, key: str, problem: str) -> None:
        self.count += 1
        if len(self.found) < MAX_BAD_KEYS_KEPT:
            self.found.append((key, problem))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "keys": [{"key": k, "problem": p} for k, p in self.found]}

    def error(self, namespace: str, shown: int = 3) -> CorruptData | None:
        """The CorruptData to end the command with (exit 7), naming the first
        `shown` keys, or None when every key was good."""
        if not self.count:
            return None
        first = "; ".join(f"{k!r} {p}" for k, p in self.found[:shown])
        more = f"; and {self.count - shown} more" if self.count > shown else ""
        keys, verb = ("key", "holds") if self.count == 1 else ("keys", "hold")
        return CorruptData(
            f"{self.count} {keys} in namespace {namespace!r} {verb} data stroute cannot read, skipped "
            f"(every other key was processed): {first}{more}",
            keys=tuple(k for k, _ in self.found), hint=_REPAIR,
        )


def _report(bad: BadKeys | None, key: str, problem: str) -> None:
    """Count a bad key, or raise at once when nobody collects them."""
    if bad is None:
        raise CorruptData(f"key {key!r} {problem}", keys=(key,), hint=_REPAIR)
    bad.add(key, problem)


def parse_pod(raw: Any) -> int | None:
    """The pod of a link value read from Redis, or None when it is no pod index."""
    try:
        return _pod_of(raw, "")
    except CorruptData:
        return None


# A GET answered WRONGTYPE: the key is no string (see Store._as_mget).
_WRONG_TYPE = object()


def _optional_pod(raw: Any, key: str) -> int | None:
    return None if raw is None else _pod_of(raw, key)


def _pairs(flat: list[Any]) -> dict[str, str]:
    return dict(zip(flat[0::2], flat[1::2]))


@dataclass(frozen=True, slots=True)
class Registry:
    """The namespace's services registry, read whatever is in it.

    Another program may write the set (or the key): `services` holds the
    members that are service names, `invalid` the others, and `wrong_type`
    the key's type when it is no set at all (then both lists are empty).
    """

    key: str
    services: list[str]
    invalid: list[str]
    wrong_type: str | None = None
    # With discover: services found by their state keys that are not in the
    # registry (an original driver's pods never add their service to it).
    unregistered: tuple[str, ...] = ()


_TTL_MAX_MS = names.TTL_MAX_S * 1000


def _ttl_arg(ttl_ms: int | None) -> int:
    if ttl_ms is None:
        return 0
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or not 0 < ttl_ms <= _TTL_MAX_MS:
        raise InvalidInput(f"invalid ttl {ttl_ms!r} ms: must be a whole number of milliseconds "
                           f"from 1 to {_TTL_MAX_MS} (10 years)")
    return ttl_ms


def _set_if_absent_reply(reply: list[Any], key: str) -> SetIfAbsent:
    pod, created, was_persistent, left = reply
    return SetIfAbsent(_pod_of(pod, key), bool(created), bool(was_persistent), None if left < 0 else int(left))



T = TypeVar("T")


class Command(NamedTuple):
    """One Redis command of an operation. A NamedTuple: an operation makes
    one per command, and a frozen dataclass takes three times as long to
    build, a share of every placement."""

    args: tuple[Any, ...]
    key: str | None  # a key it touches: its slot routes the command on a cluster (None: any node)
    script: str | None = None  # the package script an EVALSHA runs, loaded again on NOSCRIPT
    untracked: bool = False  # a read whose answer no cache keeps: Redis need not track its keys
    # The same command sent by several callers at once may be sent once and
    # its reply shared (an asyncio transport does: a thousand coroutines
    # finding a service's snapshot stale together read it once).
    shared: bool = False


Step = Command | list[Command]
Op = Generator[Step, Any, T]


def script(name: str, keys: list[str], args: list[Any]) -> Command:
    return Command(("EVALSHA", script_sha(name), len(keys), *keys, *args), keys[0], name)


def _shared(command: Command) -> Command:
    return Command(command.args, command.key, command.script, command.untracked, True)


def link_keys(ks: KeySpace, uid: str, service: str) -> list[str]:
    names.uid(uid)
    names.service(service)
    return ks.link_keys(uid, service)


# --- links ---------------------------------------------------------------------------------------

def get(ks: KeySpace, uid: str, service: str) -> Op[Link | None]:
    key = ks.link(names.uid(uid), names.service(service))
    raw, pttl = yield script("link_get", [key], [])
    if raw is None:
        return None
    return Link(ks.namespace, uid, service, _pod_of(raw, key), None if pttl < 0 else int(pttl))


def set_link(ks: KeySpace, uid: str, service: str, pod: int, ttl_ms: int | None = None) -> Op[int | None]:
    """Force the link; the previous pod or None."""
    keys = link_keys(ks, uid, service)
    reply = yield script("link_set", keys, [service, names.pod(pod), _ttl_arg(ttl_ms)])
    return _optional_pod(reply, keys[0])


def try_set(ks: KeySpace, uid: str, service: str, pod: int, ttl_ms: int | None = None) -> Op[tuple[bool, int]]:
    """Set unless a persistent link to another pod exists: (ok, pod in force)."""
    keys = link_keys(ks, uid, service)
    ok, current = yield script("link_try_set", keys, [service, names.pod(pod), _ttl_arg(ttl_ms)])
    return bool(ok), _pod_of(current, keys[0])


def set_if_absent(ks: KeySpace, uid: str, service: str, pod: int, ttl_ms: int | None = None) -> Op[SetIfAbsent]:
    keys = link_keys(ks, uid, service)
    reply = yield script("link_set_if_absent", keys, [service, names.pod(pod), _ttl_arg(ttl_ms)])
    return _set_if_absent_reply(reply, keys[0])


def set_if_absent_many(ks: KeySpace, service: str, wanted: Iterable[tuple[str, int]],
                       ttl_ms: int | None = None) -> Op[list[SetIfAbsent | CorruptData]]:
    """set_if_absent for many (uid, pod) pairs in one round trip; a uid whose
    keys hold bad data gets its CorruptData in its place (nothing was written
    for it), the others their results."""
    names.service(service)
    ttl = _ttl_arg(ttl_ms)
    wanted = list(wanted)
    names.uids([uid for uid, _ in wanted])
    calls = [script("link_set_if_absent", ks.link_keys(uid, service), [service, names.pod(pod), ttl])
             for uid, pod in wanted]
    if not calls:
        return []
    replies = yield calls
    return [_corrupt_or_raise(r) if isinstance(r, Exception) else _set_if_absent_reply(r, call.key)
            for r, call in zip(replies, calls)]


def move(ks: KeySpace, uid: str, service: str, expected: int, new: int) -> Op[tuple[bool, int | None]]:
    """Compare-and-set: (moved, pod in force)."""
    keys = link_keys(ks, uid, service)
    moved, current = yield script("link_move", keys, [service, names.pod(expected), names.pod(new)])
    return bool(moved), _optional_pod(current, keys[0])


def remove(ks: KeySpace, uid: str, service: str, *, after_ms: int = 0,
           if_pod: int | None = None) -> Op[tuple[bool, int | None]]:
    """Remove now (after_ms=0) or after a delay, fenced by if_pod: (removed, pod it held).

    (True, None): the key held a value that is no pod index, and was removed."""
    keys = link_keys(ks, uid, service)
    expected = "" if if_pod is None else names.pod(if_pod)
    if isinstance(after_ms, bool) or not isinstance(after_ms, int) or not 0 <= after_ms <= _TTL_MAX_MS:
        raise InvalidInput(f"invalid delay {after_ms!r} ms: must be a whole number of milliseconds "
                           f"from 0 to {_TTL_MAX_MS} (10 years)")
    removed, current = yield script("link_remove", keys, [service, after_ms, expected])
    if removed and current is not None:
        try:
            return True, _pod_of(current, keys[0])
        except CorruptData:
            return True, None  # an unfenced removal deletes a value that is no pod index too
    return bool(removed), _optional_pod(current, keys[0])


def links_of(ks: KeySpace, uid: str, *, bad: BadKeys | None = None) -> Op[dict[str, int]]:
    """Every persistent link of one user: {service: pod}. A field that is no
    pod index goes to `bad` (as 'KEY field SVC'), or raises CorruptData."""
    key = ks.index(names.uid(uid))
    try:
        flat = yield Command(("HGETALL", key), key)
    except StoreError as exc:
        raise (yield from _not_a_hash(exc, key)) from None
    raw = flat if isinstance(flat, dict) else _pairs(flat)
    out = {}
    for svc, value in sorted(raw.items()):
        pod = _POD_TEXT.get(value)
        if pod is None:
            try:
                pod = _pod_of(value, key)
            except CorruptData:
                _report(bad, f"{key} field {svc}", _not_a_pod(value))
                continue
        out[svc] = pod
    return out


def batch_values(ks: KeySpace, uids: list[str], service: str, *,
                 cluster: bool) -> Op[tuple[list[str], list[Any]]]:
    """The link keys of uids and their raw values (None for a missing key or
    one of another type). Not tracked: nothing caches a batch's answers."""
    names.service(service)
    names.uids(uids)
    keys = ks.links(uids, service)
    if not keys:
        return [], []
    if cluster:  # uids hash to many slots: a GET each, one pipeline per node
        values = yield [Command(("GET", key), key, untracked=True) for key in keys]
        for value in values:
            if isinstance(value, Exception) and "WRONGTYPE" not in str(value):
                raise value
        return keys, [None if isinstance(v, Exception) else v for v in values]  # another type reads as missing
    chunks = yield [Command(("MGET", *keys[i:i + _MGET_CHUNK]), None, untracked=True)
                    for i in range(0, len(keys), _MGET_CHUNK)]
    for chunk in chunks:
        if isinstance(chunk, Exception):
            raise chunk
    return keys, [v for chunk in chunks for v in chunk]


def batch_pods(ks: KeySpace, uids: list[str], service: str, *, cluster: bool) -> Op[list[int | None]]:
    """The pods of many uids of one service, in the order of uids (None: no
    link). A value that is no pod index raises CorruptData."""
    keys, values = yield from batch_values(ks, uids, service, cluster=cluster)
    known = _POD_TEXT
    return [None if raw is None else known[raw] if raw in known else _pod_of(raw, key)
            for key, raw in zip(keys, values)]


# --- pod states ----------------------------------------------------------------------------------

def snapshot(ks: KeySpace, service: str, *, expire_ms: int, gateway: str | None = None,
             gateway_expire_ms: int = 0) -> Op["Snapshot"]:
    """The service's pod states. A client driver that places users names
    itself (`gateway`): it is registered among the service's live gateways
    for `gateway_expire_ms`, and the snapshot says how many there are."""
    names.service(service)
    keys = [ks.state(service), ks.control(service), ks.notes(service), ks.gateways(service)]
    try:
        states, controls, secs, micros, notes, gateways = yield _shared(script(
            "state_snapshot", keys, [gateway or "", int(gateway_expire_ms)]))
    except StoreError as exc:
        raise (yield from wrong_type(exc, keys[:2], "hash", f"the pod states of service {service!r}")) from None
    now_ms = int(secs) * 1000 + int(micros) // 1000
    from stroute.podstate import Snapshot

    return Snapshot.build(service, _pairs(states), _pairs(controls), now_ms, expire_ms,
                          notes=_pairs(notes), gateways=int(gateways))


def leave_gateways(ks: KeySpace, services: list[str], gateway: str) -> Op[None]:
    """Take a client driver out of the live gateways of these services at once
    (a driver that closes), instead of when its registration expires."""
    for service in services:
        key = ks.gateways(names.service(service))
        yield Command(("ZREM", key, gateway), key)


def publish_state(ks: KeySpace, service: str, pod: int, *, load: int, state: "RoutingState", epoch: int | None,
                  expire_ms: int, summarize: bool = False, register: bool = True, claim: str = "force",
                  reason: str | None | bool = False, cluster: bool) -> Op[Published]:
    """One heartbeat: the pod's state field (one EVALSHA), with register also
    the services registry in the same round trip (a second one on a cluster,
    where the registry is in another slot); with summarize (pod 0) the
    workload summary too, in one more.

    `claim` is "start", "continue" or "force" (state_publish.lua says what
    each refuses); a refused heartbeat writes nothing and returns
    `written=False` with the field it found. `reason`: a text to note beside
    the field, None to remove the note, False to leave it as is."""
    if claim not in CLAIMS:
        raise InvalidInput(f"invalid claim {claim!r}: must be one of {', '.join(CLAIMS)}")
    names.service(service)
    keys = [ks.state(service), ks.control(service), ks.notes(service)]
    note = ("keep", "") if reason is False else ("clear", "") if reason is None else ("set", str(reason))
    from stroute.podstate import EPOCH_HISTORY, PodState, Snapshot

    args = [names.pod(pod), names.load(load), int(state), "" if epoch is None else int(epoch), int(summarize),
            claim, int(expire_ms), *note, EPOCH_HISTORY]
    beat = script("state_publish", keys, args)
    registry = Command(("SADD", ks.services(), service), ks.services())
    if register and not cluster:
        replies = yield [beat, registry]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        reply = replies[0]
    else:
        reply = yield beat
        if register:
            yield registry
    millis, control, states, controls, previous, written = reply
    before = PodState.decode(previous) if isinstance(previous, str) else None
    if not written:
        return Published(int(millis), False, None, before, False)
    snap = None
    if summarize:
        snap = Snapshot.build(service, _pairs(states), _pairs(controls), int(millis), expire_ms)
        # The workload key expires with the heartbeat, so a dead pod 0 does
        # not leave a READY summary behind.
        yield Command(("SET", ks.workload(service), snap.workload, "PX", expire_ms), ks.workload(service))
    return Published(int(millis), control == "cordon", snap, before, True)


def remove_state(ks: KeySpace, service: str, pod: int) -> Op[bool]:
    service, pod = names.service(service), names.pod(pod)
    removed = yield Command(("HDEL", ks.state(service), pod), ks.state(service))
    # The notes only explain the field: without it they mean nothing.
    yield Command(("HDEL", ks.notes(service), f"{pod}:reason", f"{pod}:epochs"), ks.notes(service))
    return bool(removed)


# --- tags ----------------------------------------------------------------------------------------

def get_tag(ks: KeySpace, tag: str) -> Op[str | None]:
    key = ks.tag(names.tag(tag))
    try:
        return (yield Command(("GET", key), key))
    except StoreError as exc:
        raise (yield from wrong_type(exc, [key], "string", f"tag {tag!r}")) from None


# --- errors --------------------------------------------------------------------------------------

def wrong_type(exc: StoreError, keys: list[str], wanted: str, what: str) -> Op[StoreError]:
    """`exc` as CorruptData naming the keys of another type, when that is what
    Redis refused (WRONGTYPE); else `exc` itself. Costs a TYPE per key."""
    if type(exc) is not StoreError or "WRONGTYPE" not in str(exc):
        return exc
    kinds = {}
    for key in keys:
        kinds[key] = yield Command(("TYPE", key), key)
    wrong = [key for key in keys if kinds[key] not in (wanted, "none")]
    if not wrong:
        return exc
    shown = " and ".join(f"{key!r} is a {kinds[key]}" for key in wrong)
    return CorruptData(
        f"{what} cannot be read: {shown}, not a {wanted}",
        keys=tuple(wrong),
        hint="another program wrote there; 'stroute doctor' checks the namespace's data, and deleting "
             "the key (redis-cli DEL) lets stroute write it again",
    )


def _not_a_hash(exc: StoreError, key: str) -> Op[StoreError]:
    """A read of a user's index hash refused: another type there is CorruptData naming the key."""
    if "WRONGTYPE" not in exc.message:
        return exc
    kind = yield Command(("TYPE", key), key)
    return CorruptData(f"key {key!r} is a {kind}, not a link index (a hash)", keys=(key,), hint=_REPAIR)


def _corrupt_or_raise(reply: Exception) -> CorruptData:
    """A pipelined script's error: a CORRUPT refusal stands in its place, anything else ends the batch."""
    if isinstance(reply, CorruptData):
        return reply
    raise reply


def translate(exc: BaseException, where: str) -> StoreError | None:
    """A redis-py exception as stroute's own (None: not one of redis-py's).

    `where` is the redacted URL the messages name. A link script's CORRUPT
    refusal (see link_set.lua: nothing was written) is CorruptData."""
    import redis

    from stroute.errors import PermissionDenied, RedisUnavailable

    if isinstance(exc, redis.AuthenticationError):
        return RedisUnavailable(
            f"Redis at {where} refused the credentials: {_reason(exc)}",
            hint="check the username and password (URL, STROUTE_REDIS_PASSWORD or redis.password_file)",
        )
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return PermissionDenied(
            f"Redis at {where} denied a command: {_reason(exc)}",
            reason=str(exc).strip() or "NOPERM",
            hint="the Redis user's ACL does not allow what stroute needs",
        )
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return RedisUnavailable(
            f"Redis at {where} is unreachable: {_reason(exc)}",
            hint="check that Redis is running and the URL, password and socket timeout are right",
        )
    if isinstance(exc, redis.RedisError):
        text = str(exc)
        if text.startswith("CORRUPT "):
            key, _, problem = text[len("CORRUPT "):].partition(" ")
            problem = problem.split(" script: ")[0]  # Redis 6 appends where the error came from
            return CorruptData(f"key {key!r} {problem}; nothing was written", keys=(key,), hint=_REPAIR)
        return StoreError(f"Redis at {where} answered with an error: {_reason(exc)}")
    if isinstance(exc, redis.exceptions.RedisClusterException):  # not a RedisError: no node could serve it
        return RedisUnavailable(
            f"Redis Cluster at {where} cannot serve the command: {_reason(exc)}",
            hint="check that the cluster's nodes are running and every slot is covered",
        )
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# --- running an operation ------------------------------------------------------------------------

def run(op: Op[T], execute) -> T:
    """Run an operation with a synchronous `execute(step) -> reply`, which
    raises a translated error for a single command."""
    try:
        step = next(op)
        while True:
            try:
                reply = execute(step)
            except StoreError as exc:
                step = op.throw(exc)
            else:
                step = op.send(reply)
    except StopIteration as stop:
        return stop.value

