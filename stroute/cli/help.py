"""How every command's help reads, in one place.

Placeholders are capitals (UID, SVC, N, SECONDS), never click's `<str>` or
the braces Typer puts around a required argument in the usage line; a
command's help ends with Examples, kept as written (a `\\b` block is not
re-wrapped); and a group lists each command by the first sentence of its
docstring, which is kept short enough not to be cut with "..." at 80 columns.
"""

from __future__ import annotations

from typing import Any, Callable

import typer
from typer.core import TyperCommand


class Command(TyperCommand):
    """A command whose usage line names its arguments as its Arguments section does."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument" or getattr(param, "hidden", False):
                continue
            name = param.make_metavar(ctx)  # the metavar as written, without Typer's usage braces
            pieces.append(name if param.required or name.startswith("[") else f"[{name}]")
        return pieces


def examples(*lines: str) -> Callable[[Callable], Callable]:
    """Give a command function its Examples (real invocations, shown last in its help)."""

    def attach(fn: Callable) -> Callable:
        fn.examples = "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)
        return fn

    return attach


def command(app: typer.Typer, name: str, fn: Callable) -> None:
    """Register fn (wrapped by errors.guarded) as `name` on app, with its Examples as the epilog."""
    from stroute.cli.errors import guarded

    app.command(name, cls=Command, epilog=getattr(fn, "examples", None))(guarded(fn))
