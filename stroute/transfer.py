"""Export and import links as JSON lines, one link per line:

    {"schema": "stroute/export/v1", "namespace": "default", "uid": "42", "service": "game", "pod": 1,
     "persistent": true, "ttl_s": null}

`ttl_s` is the seconds a temporary link had left when it was exported
(millisecond resolution), `null` for a persistent one; an import gives the
link that TTL again, so the clock restarts at import time. An export is a
SCAN, not a point-in-time snapshot: links written while it runs may or may
not be in it.

An import is idempotent. Each line is validated before anything of it is
written (by the rules of `stroute.names`, the same as the command line's);
a bad line is rejected with its line number and the others still go in. A
link that already exists with the same pod and kind is left as it is
("unchanged"); one that exists with another pod or kind is kept too
("kept": the live data is newer than the file) unless `overwrite`. A key in
Redis that holds what is no link is never written over: its line is counted
in `bad_keys`. Writes go through one Lua script per link (link_import.lua),
pipelined by batch.

Export writes only what import accepts: a key whose name, value or TTL
breaks the rules (a uid with '}', a value that is no pod index, a TTL past
names.TTL_MAX_S) is left out and counted in `bad_keys` instead.

Import also reads the lines of an export made before the JSON contract (no
"schema", "ttl" for "ttl_s"), so older backups still restore. A SCAN may
return a key twice: import takes a repeated line of the same link (same pod
and kind) as unchanged, and rejects one that contradicts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from stroute import names
from stroute.contract import schema_id
from stroute.errors import CorruptData, InvalidInput
from stroute.keys import any_namespace
from stroute.store import BadKeys, Link, Store, parse_pod

SCHEMA = schema_id("export")
FIELDS = ("schema", "namespace", "uid", "service", "pod", "persistent", "ttl_s")
# A line of an export made before the contract had no schema, and "ttl".
LEGACY_FIELDS = ("namespace", "uid", "service", "pod", "persistent", "ttl")
# Rejections listed one by one in a report; the count goes on past it.
MAX_ERRORS_KEPT = 100
_BATCH = 500

# What link_import answered for one line; BAD: the key holds what is no link.
WRITTEN, UNCHANGED, KEPT, BAD = 0, 1, 2, 3


# --- export ----------------------------------------------------------------------------


def record(link: Link) -> dict[str, Any]:
    """One link as its export line's object."""
    ttl: int | float | None = None
    if link.ttl_ms is not None:
        ttl = link.ttl_ms // 1000 if link.ttl_ms % 1000 == 0 else link.ttl_ms / 1000
    return {
        "schema": SCHEMA,
        "namespace": link.namespace,
        "uid": link.uid,
        "service": link.service,
        "pod": link.pod,
        "persistent": link.persistent,
        "ttl_s": ttl,
    }


def export_links(
    store: Store, namespace: str, *, service: str | None = None, pod: int | None = None,
    bad: BadKeys | None = None, **filters: Any,
) -> Iterator[dict[str, Any]]:
    """Every link of the namespace (optionally one service, one pod, and the
    other filters of Store.scan_links) as export records, each one a line
    import accepts; the keys left out go to `bad` (without one, the first
    raises CorruptData)."""
    ks = store.keys(namespace)
    for link in store.scan_links(namespace, service=service, pod=pod, bad=bad, **filters):
        if link.ttl_ms is not None and link.ttl_ms > names.TTL_MAX_S * 1000:
            problem = (f"has a TTL of {link.ttl_ms // 1000} s, past the {names.TTL_MAX_S} s (10 years) "
                       "that import accepts")
            key = ks.link(link.uid, link.service)
            if bad is None:
                raise CorruptData(f"key {key!r} {problem}", keys=(key,))
            bad.add(key, problem)
            continue
        yield record(link)


def dumps(rec: dict[str, Any]) -> str:
    return json.dumps(rec, ensure_ascii=False, separators=(", ", ": "))


# --- import: one line ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One validated line: the link to write."""

    line: int
    uid: str
    service: str
    pod: int
    ttl_ms: int | None  # None = persistent


def parse_line(text: str, namespace: str, line: int = 0) -> Entry:
    """Validate one line against the export format; InvalidInput names what is wrong."""
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON at column {exc.colno}: {exc.msg.removesuffix(' at')}") from None
    except RecursionError:
        raise InvalidInput("not valid JSON: nested too deeply") from None
    except ValueError as exc:  # an integer past Python's digit limit, NaN/Infinity, a repeated field
        raise InvalidInput(str(exc) if isinstance(exc, InvalidInput) else f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidInput(f"expected a JSON object with fields {', '.join(FIELDS)}, got {_json_kind(obj)}")
    if "schema" in obj:
        if obj["schema"] != SCHEMA:
            raise InvalidInput(f"schema {names.show(obj['schema'])} is not {SCHEMA!r}, the export format "
                               "this stroute reads")
        fields, ttl_key, legacy = FIELDS, "ttl_s", ""
    else:
        fields, ttl_key = LEGACY_FIELDS, "ttl"
        legacy = f' (a line without "schema": {SCHEMA!r} is read as an export made before it)'
    missing = [f for f in fields if f not in obj]
    if missing:
        raise InvalidInput(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}{legacy}")
    unknown = [f for f in obj if f not in fields]
    if unknown:
        raise InvalidInput(f"unknown field{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(names.show(f) for f in unknown[:5])}: the fields are "
                           f"{', '.join(fields)}{legacy}")
    for key in ("namespace", "uid", "service"):
        if not isinstance(obj[key], str):
            raise InvalidInput(f"invalid {key} {names.show(obj[key])}: must be a JSON string")
    ns = obj["namespace"] if obj["namespace"] == namespace else any_namespace(obj["namespace"])
    if ns != namespace:
        raise InvalidInput(f"namespace {ns!r} is not the namespace being imported into ({namespace!r}); "
                           f"import it with -n {ns}")
    uid = names.uid(obj["uid"])
    service = names.service(obj["service"])
    pod = obj["pod"]
    if not isinstance(pod, int) or isinstance(pod, bool):
        raise InvalidInput(f"invalid pod {names.show(pod)}: must be {names.POD_RULE} (a JSON number)")
    names.pod(pod)
    persistent = obj["persistent"]
    if not isinstance(persistent, bool):
        raise InvalidInput(f"invalid persistent {names.show(persistent)}: must be true or false")
    ttl = obj[ttl_key]
    if persistent:
        if ttl is not None:
            raise InvalidInput(f"invalid {ttl_key} {names.show(ttl)}: a persistent link has \"{ttl_key}\": null")
        return Entry(line, uid, service, pod, None)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise InvalidInput(f"invalid {ttl_key} {names.show(ttl)}: must be {names.TTL_RULE} "
                           "(a JSON number: a temporary link needs one)")
    return Entry(line, uid, service, pod, names.ttl_ms(ttl, kind=ttl_key))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a field given twice (json.loads would keep the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidInput(f"field {names.show(twice)} is given twice")
    return obj


def _no_constant(name: str) -> Any:
    """NaN, Infinity and -Infinity: json.loads takes them, JSON does not."""
    raise InvalidInput(f"not valid JSON: {name} is no JSON number")


def _json_kind(obj: Any) -> str:
    if isinstance(obj, list):
        return "an array"
    if isinstance(obj, str):
        return "a string"
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    return "a number"


# --- import: the file ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    error: str


@dataclass
class ImportReport:
    namespace: str
    dry_run: bool = False
    lines: int = 0  # non-blank lines read
    imported: int = 0  # written (with dry_run: would be)
    unchanged: int = 0  # already there: same pod, same kind
    kept: int = 0  # a different link exists and was not overwritten
    rejected: int = 0
    errors: list[Rejection] = field(default_factory=list)  # the first MAX_ERRORS_KEPT rejections
    bad_keys: BadKeys = field(default_factory=BadKeys)  # keys in Redis holding what is no link: not written

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "imported": self.imported,
            "unchanged": self.unchanged,
            "kept": self.kept,
            "rejected": self.rejected,
            "errors": [{"line": r.line, "error": r.error} for r in self.errors],
            "dry_run": self.dry_run,
            "bad_keys": self.bad_keys.to_dict(),
        }

    def reject(self, line: int, error: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(Rejection(line, error))


def import_links(
    store: Store,
    namespace: str,
    lines: Iterable[str | bytes],
    *,
    overwrite: bool = False,
    dry_run: bool = False,
    on_progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import export lines (str or UTF-8 bytes, numbered from 1); blank lines are skipped."""
    namespace = store.keys(namespace).namespace
    report = ImportReport(namespace, dry_run=dry_run)
    writer = _Writer(store, namespace, overwrite=overwrite, dry_run=dry_run)
    seen: dict[tuple[str, str], tuple[int, int, bool]] = {}  # (uid, service) -> (line, pod, persistent)
    batch: list[Entry] = []
    for number, raw in enumerate(lines, 1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report.lines += 1
                report.reject(number, f"not valid UTF-8 (byte {exc.start + 1})")
                continue
        if number == 1:
            raw = raw.removeprefix("\ufeff")
        if not raw.strip():
            continue
        report.lines += 1
        try:
            entry = parse_line(raw, namespace, number)
        except InvalidInput as exc:
            report.reject(number, exc.message)
            continue
        first, pod, persistent = seen.setdefault((entry.uid, entry.service),
                                                 (number, entry.pod, entry.ttl_ms is None))
        if first != number:
            if (pod, persistent) == (entry.pod, entry.ttl_ms is None):
                report.unchanged += 1  # the same link again (a SCAN may return a key twice)
            else:
                report.reject(number, f"uid {entry.uid!r} of service {entry.service!r} is already on line "
                                      f"{first} with another pod or kind")
            continue
        batch.append(entry)
        if len(batch) >= _BATCH:
            _tally(report, batch, writer.write(batch))
            batch = []
            if on_progress is not None:
                on_progress(report)
    if batch:
        _tally(report, batch, writer.write(batch))
    if on_progress is not None:
        on_progress(report)
    return report


def _tally(report: ImportReport, batch: list[Entry], outcomes: list[int | CorruptData]) -> None:
    for entry, outcome in zip(batch, outcomes):
        if outcome == WRITTEN:
            report.imported += 1
        elif outcome == UNCHANGED:
            report.unchanged += 1
        elif outcome == KEPT:
            report.kept += 1
        else:
            key, problem = outcome.keys[0], outcome.message.removeprefix(f"key {outcome.keys[0]!r} ")
            report.bad_keys.add(key, f"{problem} (line {entry.line})")


class _Writer:
    """Runs link_import for a batch in one pipelined round trip (a pipeline
    per node on a cluster). A dry run reads instead."""

    def __init__(self, store: Store, namespace: str, *, overwrite: bool, dry_run: bool) -> None:
        self.store = store
        self.keys = store.keys(namespace)
        self.overwrite = overwrite
        self.dry_run = dry_run

    def _calls(self, batch: list[Entry]) -> list[tuple[list[str], list[Any]]]:
        flag = "1" if self.overwrite else "0"
        return [(self.keys.link_keys(e.uid, e.service), [e.service, e.pod, e.ttl_ms or 0, flag]) for e in batch]

    def write(self, batch: list[Entry]) -> list[int | CorruptData]:
        if self.dry_run:
            return self._classify(batch)
        replies = self.store.run_script_many("link_import", self._calls(batch), keep_corrupt=True)
        return [r if isinstance(r, CorruptData) else int(r) for r in replies]

    def _classify(self, batch: list[Entry]) -> list[int | CorruptData]:
        """What link_import would answer, read with GET, PTTL and HGET of the index (nothing written)."""
        pipe = self.store.client.pipeline(transaction=False)
        for e in batch:
            key = self.keys.link(e.uid, e.service)
            pipe.get(key)
            pipe.pttl(key)
            pipe.hget(self.keys.index(e.uid), e.service)  # fails on an index of another type
        replies = self.store._call(pipe.execute, raise_on_error=False)
        out: list[int | CorruptData] = []
        for i, e in enumerate(batch):
            current, pttl, index = replies[3 * i:3 * i + 3]
            key = self.keys.link(e.uid, e.service)
            if isinstance(current, Exception):  # WRONGTYPE: another type under the link's name
                out.append(CorruptData(f"key {key!r} is a {self.store._call(self.store.client.type, key)}, "
                                       "not a link (a string)", keys=(key,)))
                continue
            if current is None:
                outcome = WRITTEN
            elif parse_pod(current) is None:
                out.append(CorruptData(f"key {key!r} holds {names.show(current)}, not a pod index", keys=(key,)))
                continue
            elif current == str(e.pod) and (pttl == -1) == (e.ttl_ms is None):
                outcome = UNCHANGED
            else:
                outcome = WRITTEN if self.overwrite else KEPT
            if outcome == WRITTEN and isinstance(index, Exception):
                index_key = self.keys.index(e.uid)
                kind = self.store._call(self.store.client.type, index_key)
                out.append(CorruptData(f"key {index_key!r} is a {kind}, not a link index (a hash)",
                                       keys=(index_key,)))
                continue
            out.append(outcome)
        return out
