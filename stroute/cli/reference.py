"""Write docs/reference.md, the CLI reference, from the command definitions.

    python -m stroute.cli.reference > docs/reference.md

Every command and group, in the order `stroute --help` lists them: its usage
line, its whole help text, and each argument and option as `--help` prints it
(metavar, help, default, environment variable, required). A test regenerates
it and fails when the file in the repository differs, so the reference is the
help the code gives, never an older copy.
"""

from __future__ import annotations

import inspect
import sys

from typing import Any

import typer

_HEADER = """\
# stroute: CLI reference

Generated from the command definitions by `python -m stroute.cli.reference >
docs/reference.md`; do not edit it by hand (a test fails when it drifts from
the code). The same text is in `stroute COMMAND --help`. For examples with
real output, see [cli.md](cli.md).
"""


def _commands(group: Any, ctx: typer.Context) -> list[tuple[str, Any]]:
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            found.append((name, command))
    return found


def _anchor(path: str) -> str:
    return path.lower().replace(" ", "-")


def _summary(command: Any) -> str:
    # Whole, never cut with "...": the table of contents is read, not fitted to a terminal.
    return command.get_short_help_str(limit=10_000)


def _help_markdown(text: str) -> list[str]:
    """A help text as Markdown: prose paragraphs as they are, indented or \\b blocks as code."""
    lines: list[str] = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        rows = paragraph.splitlines()
        if not rows:
            continue
        verbatim = rows[0].strip() == "\b"
        if verbatim:
            rows = rows[1:]
        if verbatim or all(row.startswith((" ", "\t")) for row in rows):
            body = inspect.cleandoc("\n".join(rows))
            lines += ["```text", *body.splitlines(), "```", ""]
        else:
            lines += [*rows, ""]
    return lines


def _params(command: Any, ctx: typer.Context, kind: str) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        if param.param_type_name != kind:
            continue
        record = param.get_help_record(ctx)
        if record is None:  # hidden
            continue
        name, text = record
        rows.append(f"- `{name}`" + (f": {' '.join(text.split())}" if text else ""))
    return rows


def _section(name: str, command: Any, parent: typer.Context | None, out: list[str]) -> None:
    # The command's context settings give `-h, --help` as `--help` shows it.
    ctx = typer.Context(command, info_name=name, parent=parent, **command.context_settings)
    path = ctx.command_path
    out += [f"## {path}", "", "```text", " ".join([path, *command.collect_usage_pieces(ctx)]), "```", ""]
    if command.help:
        out += _help_markdown(command.help)
    for kind, title in (("argument", "Arguments"), ("option", "Options")):
        rows = _params(command, ctx, kind)
        if rows:
            out += [f"{title}:", "", *rows, ""]
    if hasattr(command, "list_commands"):  # a group
        children = _commands(command, ctx)
        out += ["Commands:", ""]
        out += [f"- [`{child}`](#{_anchor(f'{path} {child}')}): {_summary(sub)}" for child, sub in children]
        out += [""]
        for child, sub in children:
            _section(child, sub, ctx, out)


def render(app: typer.Typer | None = None) -> str:
    """The reference as Markdown text."""
    if app is None:
        from stroute.cli.app import app
    root = typer.main.get_command(app)
    out = [_HEADER]
    _section("stroute", root, None, out)
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
