"""Export and import links as JSON lines, one link per line:

    {"namespace": "default", "uid": "42", "service": "game", "pod": 1, "persistent": true, "ttl": null}

`ttl` is the seconds a temporary link had left when it was exported
(millisecond resolution), `null` for a persistent one; an import gives the
link that TTL again, so the clock restarts at import time. An export is a
SCAN, not a point-in-time snapshot: links written while it runs may or may
not be in it.

An import is idempotent. Each line is validated before anything of it is
written; a bad line is rejected with its line number and the others still
go in. A link that already exists with the same pod and kind is left as it
is ("unchanged"); one that exists with another pod or kind is kept too
("kept": the live data is newer than the file) unless `overwrite`. Writes
go through one Lua script per link (link_import.lua), pipelined by batch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from stroute import names
from stroute.errors import InvalidInput
from stroute.store import Link, Store

FIELDS = ("namespace", "uid", "service", "pod", "persistent", "ttl")
# Rejections listed one by one in a report; the count goes on past it.
MAX_ERRORS_KEPT = 100
# A TTL Redis accepts however long the link lives: 100 years.
TTL_MAX_S = 100 * 365 * 86400
_BATCH = 500

WRITTEN, UNCHANGED, KEPT = 0, 1, 2


# --- export ----------------------------------------------------------------------------


def record(link: Link) -> dict[str, Any]:
    """One link as its export line's object."""
    ttl: int | float | None = None
    if link.ttl_ms is not None:
        ttl = link.ttl_ms // 1000 if link.ttl_ms % 1000 == 0 else link.ttl_ms / 1000
    return {
        "namespace": link.namespace,
        "uid": link.uid,
        "service": link.service,
        "pod": link.pod,
        "persistent": link.persistent,
        "ttl": ttl,
    }


def export_links(
    store: Store, namespace: str, *, service: str | None = None, pod: int | None = None
) -> Iterator[dict[str, Any]]:
    """Every link of the namespace (optionally one service, one pod) as export records."""
    for link in store.scan_links(names.namespace(namespace), service=service, pod=pod):
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
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON at column {exc.colno}: {exc.msg.removesuffix(' at')}") from None
    except RecursionError:
        raise InvalidInput("not valid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise InvalidInput(f"expected a JSON object with fields {', '.join(FIELDS)}, got {_json_kind(obj)}")
    missing = [f for f in FIELDS if f not in obj]
    if missing:
        raise InvalidInput(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    unknown = [f for f in obj if f not in FIELDS]
    if unknown:
        raise InvalidInput(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                           f"the fields are {', '.join(FIELDS)}")
    for key in ("namespace", "uid", "service"):
        if not isinstance(obj[key], str):
            raise InvalidInput(f"invalid {key} {obj[key]!r}: must be a JSON string")
    ns = names.namespace(obj["namespace"])
    if ns != namespace:
        raise InvalidInput(f"namespace {ns!r} is not the namespace being imported into ({namespace!r}); "
                           f"import it with -n {ns}")
    uid = names.uid(obj["uid"])
    service = names.service(obj["service"])
    pod = obj["pod"]
    if not isinstance(pod, int) or isinstance(pod, bool):
        raise InvalidInput(f"invalid pod {pod!r}: must be {names.POD_RULE} (a JSON number)")
    names.pod(pod)
    persistent = obj["persistent"]
    if not isinstance(persistent, bool):
        raise InvalidInput(f"invalid persistent {persistent!r}: must be true or false")
    ttl = obj["ttl"]
    if persistent:
        if ttl is not None:
            raise InvalidInput(f"invalid ttl {ttl!r}: a persistent link has \"ttl\": null")
        return Entry(line, uid, service, pod, None)
    rule = f"a number of seconds greater than 0 and at most {TTL_MAX_S} (a temporary link needs one)"
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) \
            or not 0 < ttl <= TTL_MAX_S:
        raise InvalidInput(f"invalid ttl {ttl!r}: must be {rule}")
    return Entry(line, uid, service, pod, max(1, round(ttl * 1000)))


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "imported": self.imported,
            "unchanged": self.unchanged,
            "kept": self.kept,
            "rejected": self.rejected,
            "errors": [{"line": r.line, "error": r.error} for r in self.errors],
            "dry_run": self.dry_run,
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
    namespace = names.namespace(namespace)
    report = ImportReport(namespace, dry_run=dry_run)
    writer = _Writer(store, namespace, overwrite=overwrite, dry_run=dry_run)
    seen: dict[tuple[str, str], int] = {}
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
        first = seen.setdefault((entry.uid, entry.service), number)
        if first != number:
            report.reject(number, f"uid {entry.uid!r} of service {entry.service!r} is already on line {first}")
            continue
        batch.append(entry)
        if len(batch) >= _BATCH:
            _tally(report, writer.write(batch))
            batch = []
            if on_progress is not None:
                on_progress(report)
    if batch:
        _tally(report, writer.write(batch))
    if on_progress is not None:
        on_progress(report)
    return report


def _tally(report: ImportReport, outcomes: list[int]) -> None:
    for outcome in outcomes:
        if outcome == WRITTEN:
            report.imported += 1
        elif outcome == UNCHANGED:
            report.unchanged += 1
        else:
            report.kept += 1


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

    def write(self, batch: list[Entry]) -> list[int]:
        if self.dry_run:
            return self._classify(batch)
        return [int(r) for r in self.store.run_script_many("link_import", self._calls(batch))]

    def _classify(self, batch: list[Entry]) -> list[int]:
        """What link_import would answer, read with GET and PTTL (nothing written)."""
        pipe = self.store.client.pipeline(transaction=False)
        for e in batch:
            key = self.keys.link(e.uid, e.service)
            pipe.get(key)
            pipe.pttl(key)
        replies = self.store._call(pipe.execute)
        out = []
        for i, e in enumerate(batch):
            current, pttl = replies[2 * i], replies[2 * i + 1]
            if current is None:
                out.append(WRITTEN)
            elif current == str(e.pod) and (pttl == -1) == (e.ttl_ms is None):
                out.append(UNCHANGED)
            else:
                out.append(WRITTEN if self.overwrite else KEPT)
        return out

