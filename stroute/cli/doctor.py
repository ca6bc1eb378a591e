"""`stroute doctor`: diagnose connectivity and data health (checks in stroute.diagnose)."""

from __future__ import annotations

from typing import Annotated

import typer

from stroute.cli.context import Globals
from stroute.cli.help import examples
from stroute.cli.output import emit


@examples("stroute doctor", "stroute doctor --sample 10000 -o json")
def doctor(
    ctx: typer.Context,
    sample: Annotated[
        int, typer.Option("--sample", metavar="N", min=1, max=1_000_000,
                          help="Links and index hashes to check, at most.")
    ] = 1000,
) -> None:
    """Check Redis, the scripts, the pods and a sample of links.

    Redis: its memory, and a write probe (one key with a 10 s TTL under the
    namespace's hash tag, deleted at once); also the clocks.

    Exit 0 when nothing fails (warnings allowed), 1 when a check fails,
    6 when Redis cannot be reached at all.
    """
    from stroute import diagnose
    from stroute.cli.errors import EXIT_OTHER, EXIT_REDIS

    g: Globals = ctx.obj
    config = g.config()
    report = diagnose.run(g.store(), config, sample=sample)
    emit(report.to_dict(), g.output, _table, schema="doctor")
    if report.unreachable:
        raise typer.Exit(EXIT_REDIS)
    if report.failed:
        raise typer.Exit(EXIT_OTHER)


_STYLES = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red"}


def _table(data: dict):
    from rich.console import Group
    from rich.text import Text

    from stroute.cli.output import new_table, plain

    table = new_table("Check", "Status", "Detail", title=f"stroute doctor: namespace {data['namespace']!r}")
    for check in data["checks"]:
        status = Text(check["status"], style="" if plain() else _STYLES.get(check["status"], ""))
        table.add_row(check["name"], status, Text(check["detail"]))
    s = data["summary"]
    verdict = "FAIL" if s["fail"] else ("WARN" if s["warn"] else "PASS")
    return Group(table, Text(f"{verdict}: {s['pass']} passed, {s['warn']} warnings, {s['fail']} failed"))
