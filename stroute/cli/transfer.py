"""`stroute export` and `stroute import`: links as JSON lines, for backups and moves."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from stroute.cli import inputs
from stroute.cli import link as link_cli
from stroute.cli.context import Globals
from stroute.cli.help import examples
from stroute.cli.output import emit, info, silence_stdout

# Rejected lines listed on stderr; the JSON lists up to transfer.MAX_ERRORS_KEPT.
_SHOWN_REJECTIONS = 20


@examples("stroute export > links.jsonl", "stroute export -s lobby --kind persistent > lobby.jsonl")
def export(
    ctx: typer.Context,
    service: inputs.ServiceFilter = None,
    pod: inputs.PodFilter = None,
    uid_pattern: link_cli.UidPattern = None,
    kind: link_cli.Kind = None,
    ttl_below: link_cli.TtlBelow = None,
) -> None:
    """Write the namespace's links to stdout as JSON lines.

    One link per line.
    Each line is an object with schema ("stroute/export/v1"), namespace, uid,
    service, pod, persistent and ttl_s; ttl_s is the seconds a temporary link has left
    (null when persistent). The output is
    always JSON lines, whatever -o says. Every line imports again: a key that
    is no readable link is left out and named on stderr (exit 7).
    """
    from stroute.cli.progress import Counter
    from stroute.errors import InvalidInput
    from stroute.store import BadKeys
    from stroute.transfer import dumps, export_links

    g: Globals = ctx.obj
    if g.output == "yaml":
        raise InvalidInput("export writes JSON lines; -o yaml does not apply", hint="leave out -o")
    filters = link_cli.link_filters(service, pod, uid_pattern, kind, ttl_below)
    ns = g.config().namespace
    # A count on stderr, unless the lines go to the terminal too: it would draw over them.
    counter = Counter("exporting links", enabled=not sys.stdout.isatty())
    n = 0
    out = sys.stdout
    bad = BadKeys()
    try:
        for rec in export_links(g.store(), ns, bad=bad, **filters):
            out.write(dumps(rec) + "\n")
            n += 1
            counter.tick(n)
        out.flush()
    except BrokenPipeError:  # the reader stopped early (| head): its choice, not an error
        silence_stdout()
        return
    finally:
        counter.done()
    info(f"exported {n} link{'' if n == 1 else 's'} of namespace {ns!r}")
    error = bad.error(ns)
    if error is not None:
        raise error


@examples("stroute import links.jsonl --dry-run", "stroute import links.jsonl",
          "stroute export | stroute -n staging import -")
def import_(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(metavar="FILE|-", help="Export lines to import; '-' reads stdin.", show_default=False)
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and compare with Redis; write nothing.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace links that exist with another pod or kind (default: keep them).")
    ] = False,
) -> None:
    """Import links from 'stroute export' lines; safe to run again.

    Every line is validated first: a bad one is rejected with its line number
    and nothing of it is written, and the good lines are still imported (exit 2
    when any line was rejected: fix them and import the file again). A link
    already there with the same pod and kind is unchanged; one there with
    another pod or kind is kept unless --overwrite. Temporary links get the TTL
    they had when exported. A key in Redis that holds what is no link is never
    written over: its lines are counted in bad_keys (exit 7 when no line was
    rejected).
    """
    from stroute.cli.progress import Bar, Counter, file_size
    from stroute.errors import InvalidInput
    from stroute.transfer import import_links

    g: Globals = ctx.obj
    ns = g.config().namespace
    if file == "-":
        stream, close = sys.stdin.buffer, False
    else:
        try:
            stream, close = open(file, "rb"), True
        except OSError as exc:
            raise InvalidInput(f"cannot read {file!r}: {exc.strerror or exc}") from None
    what = "checking links" if dry_run else "importing links"
    size = file_size(stream)
    read = [0]  # bytes of the lines read so far
    if size is None:  # a pipe: no total to measure against
        counter = Counter(what, unit="lines")
        on_progress = lambda r: counter.tick(r.lines)  # noqa: E731
        stop = counter.done
    else:
        bar = Bar(what, unit="B")
        on_progress = lambda r: bar.update(size, read[0], f"{r.lines} lines")  # noqa: E731
        stop = bar.stop
    try:
        report = import_links(g.store(), ns, _read_lines(stream, file, read), overwrite=overwrite, dry_run=dry_run,
                              on_progress=on_progress)
    finally:
        stop()
        if close:
            stream.close()
    emit(report.to_dict(), g.output, _import_text, schema="import")
    for rejection in report.errors[:_SHOWN_REJECTIONS]:
        sys.stderr.write(f"stroute: line {rejection.line}: {rejection.error}\n")
    if report.rejected > _SHOWN_REJECTIONS:
        sys.stderr.write(f"stroute: ... and {report.rejected - _SHOWN_REJECTIONS} more rejected lines\n")
    if report.kept:
        info(f"note: {report.kept} link{'' if report.kept == 1 else 's'} already exist with another pod or kind "
             "and were kept; --overwrite replaces them")
    bad = report.bad_keys.error(ns)
    if report.rejected:
        if bad is not None:
            sys.stderr.write(f"stroute: {bad.message}\n")
        done = "checked" if dry_run else "imported"
        raise InvalidInput(
            f"{report.rejected} of {report.lines} lines rejected; nothing of them was written, "
            f"the other lines were {done}",
            hint="fix the lines named above and import the file again: lines already imported stay unchanged",
        )
    if bad is not None:
        raise bad


def _read_lines(stream, file: str, read: list[int]):
    """The stream's lines, adding their bytes to read[0]; a read that fails (a
    file that opens but cannot be read, as /proc/self/mem) is exit 2 naming
    the file, not exit 1."""
    from stroute.errors import InvalidInput

    name = "stdin" if file == "-" else repr(file)
    number = 0
    try:
        for number, line in enumerate(stream, 1):
            read[0] += len(line)
            yield line
    except OSError as exc:
        where = f"line {number + 1}" if number else "its first line"
        raise InvalidInput(
            f"cannot read {name} at {where}: {exc.strerror or exc}",
            hint="the lines before it may have been imported; an import is safe to run again" if number else None,
        ) from None


def _import_text(data: dict):
    from rich.text import Text

    verb = "would import" if data["dry_run"] else "imported"
    head = "dry run, nothing changed: " if data["dry_run"] else ""
    return Text(f"{head}{verb} {data['imported']}, unchanged {data['unchanged']}, kept {data['kept']}, "
                f"rejected {data['rejected']} (namespace {data['namespace']!r})")
