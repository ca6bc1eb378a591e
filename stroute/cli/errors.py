"""One table from exceptions to exit codes and one-line messages.

The core's exceptions carry their SPEC exit code; anything else is exit 1.
No traceback unless STROUTE_DEBUG=1, and never locals (Redis URLs carry
passwords).
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from typing import Annotated, Optional

import typer

from stroute.cli.output import FORMATS, OutputFormat, check_names, configure, printable_lines
from stroute.errors import StoreError, StrouteError

# The other codes travel with the core's exceptions (StrouteError.exit_code).
EXIT_OTHER = StrouteError.exit_code
EXIT_REDIS = StoreError.exit_code


def debug_enabled() -> bool:
    return os.environ.get("STROUTE_DEBUG", "") not in ("", "0", "false", "no")


def report(exc: BaseException, secrets: list[str] = ()) -> int:
    """Print one line (and a hint) for exc on stderr; return the exit code.

    Every one of `secrets` found in what is printed (the traceback too) is
    replaced by '***': the core redacts its own messages, and this catches
    what it did not write (a library's message quoting a URL).
    """
    if isinstance(exc, StrouteError):
        code, message, hint = exc.exit_code, exc.message, exc.hint
    else:
        code, message, hint = EXIT_OTHER, f"unexpected {type(exc).__name__}: {exc}", (
            "run again with STROUTE_DEBUG=1 for a traceback"
        )

    def hidden(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    if debug_enabled():
        import traceback

        sys.stderr.write(hidden("".join(traceback.format_exception(exc))))
    # A message may quote data read from Redis: never let it drive the terminal.
    sys.stderr.write(f"stroute: error: {printable_lines(hidden(message))}\n")
    if hint:
        sys.stderr.write(f"stroute: hint: {printable_lines(hidden(hint))}\n")
    return code


def check_output_format(value: str) -> str:
    if value not in FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(FORMATS)}")
    return value


def _set_output(ctx: typer.Context, value: Optional[str]) -> Optional[str]:
    if value is not None:
        ctx.find_root().obj.output = check_output_format(value)
        configure(output=value)
    return value


def _set_no_headers(ctx: typer.Context, value: bool) -> bool:
    if value:
        configure(no_headers=True)
    return value


_OUTPUT_OPTION = Annotated[
    Optional[OutputFormat],
    typer.Option("-o", "--output", callback=_set_output, is_eager=True, show_default=False, metavar="FORMAT",
                 help="table, wide, name, json or yaml (also accepted before the command)."),
]

_NO_HEADERS_OPTION = Annotated[
    bool,
    typer.Option("--no-headers", callback=_set_no_headers, is_eager=True,
                 help="Tables as plain columns without the header row (also accepted before the command)."),
]


def _acl_refusal(exc: Exception, ctx) -> Exception | None:
    """A command Redis's ACL refused, told with the namespace it was for (see stroute.acl)."""
    from stroute.acl import explain_refusal, refusal

    if refusal(exc) is None:
        return None  # not a refusal: no need to load the config again
    g = ctx.find_root().obj if ctx is not None else None
    try:
        namespace = g.config().namespace if g is not None else None
    except Exception:  # the config did not load: then nothing reached Redis either
        namespace = None
    return explain_refusal(exc, namespace)


def _secrets(ctx) -> list[str]:
    g = ctx.find_root().obj if ctx is not None else None
    try:
        return g.secrets() if g is not None else []
    except Exception:  # reporting an error must not fail on it
        return []


def guarded(fn):
    """Wrap a command: a stroute error becomes its exit code and one line.

    Also gives every command its own `-o/--output` and `--no-headers`, so
    scripts may put them after the subcommand (`stroute link get 42 -s lobby
    -o json`) as well as before it; the later one wins. A command that lists
    identifiers says so with a `lists_names` attribute: -o name is refused
    (exit 2) before any other command runs.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        kwargs.pop("_output", None)
        kwargs.pop("_no_headers", None)
        try:
            g = kwargs[context].find_root().obj if context is not None else None
            if g is not None and g.output == "name":
                check_names(getattr(fn, "lists_names", False))  # before anything is written
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:  # one line, never a traceback with locals
            ctx = kwargs.get(context)
            raise typer.Exit(report(_acl_refusal(exc, ctx) or exc, _secrets(ctx))) from None

    signature = inspect.signature(fn, eval_str=True)
    params = list(signature.parameters.values())
    context = next((p.name for p in params if p.annotation is typer.Context), None)
    extra = [inspect.Parameter("_output", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=_OUTPUT_OPTION),
             inspect.Parameter("_no_headers", inspect.Parameter.KEYWORD_ONLY, default=False,
                               annotation=_NO_HEADERS_OPTION)]
    wrapper.__signature__ = signature.replace(parameters=[*params, *extra])
    wrapper.__annotations__ = {**{p.name: p.annotation for p in params}, "_output": _OUTPUT_OPTION,
                               "_no_headers": _NO_HEADERS_OPTION}
    return wrapper
