"""Render results: a Rich table for people, JSON or YAML for scripts.

Data goes to stdout, logs and progress to stderr. `-o json` prints exactly
one JSON document. Rich is imported only when a table is drawn.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

FORMATS = ("table", "json", "yaml")


def plain() -> bool:
    """No colour or box drawing: stdout is not a terminal, or NO_COLOR is set."""
    return bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, no_color=plain(), highlight=False, soft_wrap=True)


def emit(data: Any, fmt: str, table: Callable[[Any], Any] | None = None) -> None:
    """Print data as fmt; `table` builds the Rich renderable for 'table'."""
    if fmt == "json" or (fmt == "table" and table is None):
        sys.stdout.write(json.dumps(data, indent=2 if fmt == "table" else None, ensure_ascii=False) + "\n")
    elif fmt == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        console().print(table(data))


def new_table(*columns: str, title: str | None = None):
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.ASCII if plain() else box.ROUNDED, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column.lower() in _NUMERIC else "left")
    return table


_NUMERIC = {"pod", "load", "users", "users placed", "heartbeat age", "ttl"}


def info(message: str) -> None:
    """A message for people, on stderr."""
    sys.stderr.write(f"stroute: {message}\n")
