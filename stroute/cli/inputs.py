"""Command-line values checked by the core's own rules, before anything runs.

Pods and durations are read as text and checked with `stroute.names`, so a
bad value gets the same one-line message (naming the value and the rule) and
exit 2 as everywhere else, instead of a usage box that omits the value.
"""

from __future__ import annotations

import sys
from typing import Annotated, Iterable, Optional

import typer

from stroute import names
from stroute.cli import complete
from stroute.errors import InvalidInput

# The service a command works on (link, place).
Service = Annotated[str, typer.Option("-s", "--service", metavar="SVC", help="Service name.", show_default=False,
                                      autocompletion=complete.services)]

# The filters of the commands that walk the namespace's links (list, export).
ServiceFilter = Annotated[
    Optional[str], typer.Option("-s", "--service", metavar="SVC", help="Only this service.", show_default=False,
                                autocompletion=complete.services)
]
PodFilter = Annotated[
    Optional[str], typer.Option("--pod", metavar="N", help="Only links to pod N.", show_default=False,
                                autocompletion=complete.pods)
]


def pod(value: str | None) -> int | None:
    return None if value is None else names.pod(value)


def ttl_ms(value: str | None, kind: str = "ttl") -> int | None:
    return None if value is None else names.ttl_ms(value, kind=kind)


def seconds(ms: int | None) -> int | float | None:
    """Milliseconds as seconds for output: an int when whole."""
    if ms is None:
        return None
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def uids(args: Iterable[str]) -> list[str]:
    """The uids given, with '-' replaced by the whitespace-separated uids on stdin.

    Every uid is checked before any is used; duplicates are kept once, in order.
    A byte order mark opening stdin (editors on Windows write one) is no part
    of the first uid, as `import` reads it too.
    """
    out: list[str] = []
    for arg in args:
        if arg == "-":
            out.extend(sys.stdin.read().removeprefix("\ufeff").split())
        else:
            out.append(arg)
    return list(dict.fromkeys(names.uids(out)))


def require(values: list[str], what: str) -> list[str]:
    if not values:
        raise InvalidInput(f"no {what} given: name at least one, or '-' to read them from stdin")
    return values
