"""Render results: a Rich table for people, columns for pipes, JSON or YAML for scripts.

Data goes to stdout, logs and progress to stderr. `-o json` prints exactly
one JSON document. Rich is imported only when a table is drawn.

A table goes to a terminal as a Rich table. When stdout is not a terminal,
or with --no-headers, it is printed as plain columns instead, the way
`kubectl get` does: an upper-case header row (unless --no-headers), cells
separated by at least two spaces and padded to the widest cell, ASCII only,
no borders, nothing cut, no colour; an empty cell shows as "-" so every line
has the same number of fields. There a table's title and caption go to
stderr: stdout carries only the rows. On a terminal too narrow for a table, its
low-priority columns are dropped (a footnote names them) and the rest fold,
never cut. `-o wide` adds the columns a command keeps for it, and `-o name`
prints one identifier per line (a uid, or service/pod).

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
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, get_args

# -o's choices, in the order help and completion list them.
OutputFormat = Literal["table", "wide", "name", "json", "yaml"]
FORMATS = get_args(OutputFormat)
# The formats drawn for people (the rest are documents for programs).
PEOPLE = ("table", "wide", "name")

# Set for the invocation by the root command (and by -o / --no-headers after
# the subcommand): read by every table a command builds.
_no_headers = False
_wide = False


def configure(*, output: str | None = None, no_headers: bool | None = None) -> None:
    global _no_headers, _wide
    if output is not None:
        _wide = output == "wide"
    if no_headers is not None:
        _no_headers = bool(no_headers)


def columns_wanted() -> bool:
    """Tables as plain columns: stdout is not a terminal, or --no-headers."""
    return _no_headers or not sys.stdout.isatty()


def headers_wanted() -> bool:
    return not _no_headers


def wide_wanted() -> bool:
    return _wide


@dataclass(frozen=True)
class Column:
    """A table column. `drop`: dropped to fit a narrow terminal, highest first
    (0: never); `wide`: shown only with -o wide."""

    header: str
    drop: int = 0
    wide: bool = False


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


def emit(data: dict[str, Any], fmt: str, table: Callable[[Any], Any] | None = None,
         names: Callable[[Any], Iterable[str]] | None = None, *, schema: str, stream: bool = False) -> None:
    """Print data as fmt, named by its schema (stroute.contract); `table` builds
    the Rich renderable for 'table' and 'wide', `names` the identifiers for
    'name'. `stream`: one document of many (a watch): JSON on one line
    (NDJSON), YAML after a '---' line."""
    from stroute.contract import document

    if fmt == "name":
        if names is None:
            raise _no_names()
        write_lines(printable(name) for name in names(data))
        return
    data = document(schema, data)
    if fmt == "json" or (table is None and fmt in PEOPLE):
        indent = 2 if fmt != "json" and not stream else None
        sys.stdout.write(json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
    elif fmt == "yaml":
        import yaml

        sys.stdout.write(("---\n" if stream else "") + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    elif columns_wanted():
        print_columns(_safe(table(data)))
    else:
        out = console()
        print_fitted(out, _safe(table(data)))
    if stream:
        sys.stdout.flush()  # a reader of the stream sees each refresh as it is taken


def _no_names():
    from stroute.errors import InvalidInput

    return InvalidInput("-o name applies to commands that list things (link list, link get, link batch-get, "
                        "link count, pods, top)", hint="use -o table, wide, json or yaml")


def check_names(supported: bool) -> None:
    """Refuse -o name before a command that has no identifiers to print runs."""
    if not supported:
        raise _no_names()


def write_lines(lines: Iterable[str]) -> None:
    sys.stdout.write("".join(line + "\n" for line in lines))


# --- plain columns --------------------------------------------------------------


def plain_cell(text: str) -> str:
    """A cell as one printable ASCII field: "-" when empty; a line break as a space;
    what is not ASCII as an escape."""
    if not text:
        return "-"
    text = printable(text.replace("\n", " "))
    return text if text.isascii() else text.encode("ascii", "backslashreplace").decode("ascii")


def plain_header(header: str) -> str:
    """A header as kubectl writes them: upper case; spaces as "_", so the header
    row splits into as many fields as a row."""
    return (header or "-").upper().replace(" ", "_")


def format_rows(rows: list[list[str]], widths: list[int]) -> str:
    """Rows as aligned lines: each cell padded to its column's width, two spaces
    between columns; a cell wider than its column is printed whole and pushes
    the rest of its line right."""
    last = len(widths) - 1
    out = []
    for row in rows:
        out.append("  ".join(cell if i == last else cell.ljust(widths[i]) for i, cell in enumerate(row)))
    return "\n".join(out) + "\n" if out else ""


def column_widths(rows: list[list[str]], headers: list[str] | None) -> list[int]:
    every = ([headers] if headers else []) + rows
    return [max(map(len, cells)) for cells in zip(*every)] if every else []


def print_columns(renderable: Any) -> None:
    """A Rich table (or a group of them, and lines of text) as plain columns on
    stdout; its title and caption go to stderr."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if isinstance(renderable, Group):
        for part in renderable.renderables:
            print_columns(part)
        return
    if isinstance(renderable, Table):
        columns = renderable.columns
        headers = [plain_header(_text(c.header)) for c in columns]
        cells = [[plain_cell(_text(cell)) for cell in column.cells] for column in columns]
        rows = [list(row) for row in zip(*cells)]
        shown = headers if headers_wanted() else None
        sys.stdout.write(format_rows(([shown] if shown else []) + rows, column_widths(rows, shown)))
        for note in (renderable.title, renderable.caption):  # context and notes: no rows
            if note:
                info(_text(note))
        return
    text = _text(renderable) if isinstance(renderable, (str, Text)) else str(renderable)
    if text:
        write_lines(plain_cell(line) for line in text.split("\n"))


def _text(value: Any) -> str:
    from rich.text import Text

    if isinstance(value, Text):
        return value.plain
    return "" if value is None else str(value)


# --- tables on a terminal ----------------------------------------------------------


def print_fitted(out: Any, renderable: Any) -> None:
    """Print a table on a terminal, with columns it has no room for dropped
    (lowest priority first) and a footnote naming them."""
    from rich.console import Group

    if isinstance(renderable, Group):
        renderable = Group(*(fit(out, r) for r in renderable.renderables))
    else:
        renderable = fit(out, renderable)
    out.print(renderable)


def fit(out: Any, table: Any) -> Any:
    """The table with its droppable columns removed until it fits the terminal
    (and a footnote if any was); every cell folds rather than being cut."""
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    if not isinstance(table, Table):
        return table
    for column in table.columns:
        column.overflow = "fold"
    dropped = []
    priorities = {} if _wide else getattr(table, "drop_priority", {})  # -o wide: every column, folded
    while True:
        width = Measurement.get(out, out.options.update_width(1 << 16), table).maximum  # unclamped
        candidates = [c for c in table.columns if priorities.get(id(c), 0) > 0]
        if width <= out.width or not candidates:
            break
        victim = max(candidates, key=lambda c: (priorities[id(c)], table.columns.index(c)))
        table.columns.remove(victim)
        dropped.append(_text(victim.header) or "bar")
    if dropped:
        note = (f"{len(dropped)} column{'s' if len(dropped) > 1 else ''} hidden to fit {out.width} columns: "
                f"{', '.join(reversed(dropped))} (a wider terminal, or a pipe, shows every column)")
        caption = table.caption
        table.caption = Text(note if caption is None else f"{_text(caption)}\n{note}")
        table.caption_justify = "left"
    return table


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


def new_table(*columns: str | Column, title: str | None = None, wide: bool | None = None):
    """A table for people. A column given as a Column may be dropped on a
    narrow terminal (`drop`) or kept for -o wide (`wide`: left out unless -o wide)."""
    from rich import box

    wide = _wide if wide is None else wide
    table = _safe_table_class()(title=title, box=box.ASCII if plain() else box.ROUNDED, title_justify="left")
    table.drop_priority = {}
    for column in columns:
        spec = column if isinstance(column, Column) else Column(column)
        if spec.wide and not wide:
            continue
        table.add_column(spec.header, justify="right" if spec.header.lower() in _NUMERIC else "left")
        if spec.drop:
            table.drop_priority[id(table.columns[-1])] = spec.drop
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


_NUMERIC = {"pod", "load", "users", "users placed", "heartbeat age", "ttl", "links", "persistent", "temporary",
            "total"}


def silence_stdout() -> None:
    """Point stdout at /dev/null after its reader went away (`| head`), so the
    interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (a test runner's buffer)
        pass


def info(message: str) -> None:
    """A message for people, on stderr (made printable: it may quote data from Redis)."""
    sys.stderr.write(f"stroute: {printable_lines(message)}\n")


class RowStream:
    """Rows printed as they come: a listing that prints while it scans, in
    memory that does not grow with it.

    No width is known before the last row, so the widths come from the first
    batch (a SCAN page) and are kept: a longer cell later is printed whole and
    pushes the rest of its line right, as `kubectl get --watch` does. On a
    terminal the header is bold and the rows are the same aligned columns (a
    bordered table needs every row before its first line: `--sort`, which
    buffers anyway, draws one); when the first batch does not fit the
    terminal, droppable columns are left out and a note on stderr names them.
    With -o wide, the Column.wide columns are added.
    """

    def __init__(self, columns: list[Column]) -> None:
        shown = [i for i, c in enumerate(columns) if _wide or not c.wide]
        self.columns = [columns[i] for i in shown]
        self.keep: list[int] | None = None  # indexes of the columns printed, set by the first batch
        self._shown = shown  # what -o wide leaves out is dropped like a column that does not fit
        self.widths: list[int] = []
        self.tty = not columns_wanted()
        self.rows = 0

    def add(self, rows: list[list[str]]) -> None:
        """A batch of rows, each a cell per column (all of them, -o wide's included)."""
        if not rows:
            return
        if self.keep is None:
            self._start([[row[i] for i in self._shown] for row in rows])
            self.keep = [self._shown[i] for i in self.keep]
        keep = self.keep
        if len(keep) < len(rows[0]):
            rows = [[row[i] for i in keep] for row in rows]
        self.rows += len(rows)
        sys.stdout.write(format_rows([[plain_cell(c) for c in row] for row in rows], self.widths))

    def _start(self, rows: list[list[str]]) -> None:
        cells = [[plain_cell(c) for c in row] for row in rows]
        headers = [plain_header(c.header) for c in self.columns]
        widths = column_widths(cells, headers if headers_wanted() else None)
        keep = list(range(len(self.columns)))
        if self.tty and not _wide:
            room = console().width
            dropped = []
            while sum(widths[i] for i in keep) + 2 * (len(keep) - 1) > room:
                droppable = [i for i in keep if self.columns[i].drop]
                if not droppable:
                    break
                victim = max(droppable, key=lambda i: (self.columns[i].drop, i))
                keep.remove(victim)
                dropped.append(self.columns[victim].header)
            if dropped:
                info(f"{', '.join(dropped)} column{'s' if len(dropped) > 1 else ''} hidden to fit {room} columns "
                     "(a wider terminal, or a pipe, shows every column)")
        self.keep = keep
        self.widths = [widths[i] for i in keep]
        if headers_wanted():
            line = format_rows([[headers[i] for i in keep]], self.widths)
            if self.tty and not plain():
                sys.stdout.write(f"\x1b[1m{line.rstrip()}\x1b[0m\n")
            else:
                sys.stdout.write(line)
