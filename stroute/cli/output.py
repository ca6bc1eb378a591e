"""Render results: a Rich table for people, JSON or YAML for scripts.

Data goes to stdout, logs and progress to stderr. `-o json` prints exactly
one JSON document. Rich is imported only when a table is drawn.

Text read from Redis (a tag's service, a key name, a state field) can hold
anything. Everything drawn for people goes through `printable()` here, the
one place: a control or invisible character shows as an escape (`\x1b`,
`\u200b`) instead of reaching the terminal, and a cell is plain text, never
Rich markup or an emoji code. JSON escapes control characters itself.
"""

from __future__ import annotations

import functools
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


def printable(text: str) -> str:
    """text with each character a terminal would act on, or not show, as an escape.

    Control characters (ESC, BEL, CR, C1 controls...), invisible format
    characters (U+200B, U+202E) and separators other than the space.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable_lines(text: str) -> str:
    """printable() of each line: a message's own line breaks are kept."""
    return "\n".join(printable(line) for line in text.split("\n"))


def emit(data: dict[str, Any], fmt: str, table: Callable[[Any], Any] | None = None, *, schema: str,
         stream: bool = False) -> None:
    """Print data as fmt, named by its schema (stroute.contract); `table` builds
    the Rich renderable for 'table'. `stream`: one document of many (a watch):
    JSON on one line (NDJSON), YAML after a '---' line."""
    from stroute.contract import document

    data = document(schema, data)
    if fmt == "json" or (fmt == "table" and table is None):
        indent = 2 if fmt == "table" and not stream else None
        sys.stdout.write(json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
    elif fmt == "yaml":
        import yaml

        sys.stdout.write(("---\n" if stream else "") + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        console().print(_safe(table(data)))
    if stream:
        sys.stdout.flush()  # a reader of the stream sees each refresh as it is taken


def _safe(renderable: Any) -> Any:
    """The renderable with its text made printable (a table's cells are, as they are added)."""
    from rich.console import Group
    from rich.text import Text

    if isinstance(renderable, str):
        return Text(printable_lines(renderable))
    if isinstance(renderable, Text):
        if renderable.plain.replace("\n", "").isprintable():
            return renderable
        return Text(printable_lines(renderable.plain), style=renderable.style, justify=renderable.justify)
    if isinstance(renderable, Group):
        return Group(*(_safe(r) for r in renderable.renderables))
    return renderable


def new_table(*columns: str, title: str | None = None):
    from rich import box

    table = _safe_table_class()(title=title, box=box.ASCII if plain() else box.ROUNDED, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column.lower() in _NUMERIC else "left")
    return table


@functools.cache
def _safe_table_class():
    from rich.table import Table

    class SafeTable(Table):
        """A Rich table whose cells, title and caption are plain, printable text."""

        def add_row(self, *cells: Any, **kwargs: Any) -> None:
            super().add_row(*(_safe(cell) for cell in cells), **kwargs)

        def __setattr__(self, name: str, value: Any) -> None:
            if name in ("title", "caption") and value is not None:
                value = _safe(value)
            super().__setattr__(name, value)

    return SafeTable


_NUMERIC = {"pod", "load", "users", "users placed", "heartbeat age", "ttl"}


def info(message: str) -> None:
    """A message for people, on stderr (made printable: it may quote data from Redis)."""
    sys.stderr.write(f"stroute: {printable_lines(message)}\n")
