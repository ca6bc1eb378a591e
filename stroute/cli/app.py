"""The root `stroute` command: global options, command groups, error mapping."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from stroute.cli.context import Globals
from stroute.cli.errors import check_output_format, report
from stroute.cli.help import command
from stroute.cli.output import OutputFormat
from stroute.errors import StrouteError


_SETTINGS = dict(
    name="stroute",
    help="Stateful routing with Redis: which pod holds each user's state.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # usage errors as plain lines, for people and for CI logs
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from stroute.cli.version import print_version

        print_version(value)


def root(
    ctx: typer.Context,
    config: Annotated[
        Optional[str], typer.Option("--config", envvar="STROUTE_CONFIG", metavar="FILE", help="Config file (YAML).")
    ] = None,
    redis_url: Annotated[
        Optional[str],
        typer.Option("--redis-url", metavar="URL", help="Redis URL (redis://, rediss://, unix://, redis+cluster://, redis+sentinel://, embedded://, memory://). "
                     "Env: STROUTE_REDIS_URL.", show_default=False),
    ] = None,
    namespace: Annotated[
        Optional[str], typer.Option("-n", "--namespace", metavar="NAMESPACE", help="Namespace. Env: STROUTE_NAMESPACE.")
    ] = None,
    layout: Annotated[
        Optional[str], typer.Option("--layout", metavar="LAYOUT", autocompletion=lambda: ["homo-go", "homo-java"],
                                    help="Key layout: homo-go (the default) or homo-java, the original "
                                    "Go or Java driver's key names. Env: STROUTE_LAYOUT.", show_default=False)
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("-o", "--output", callback=check_output_format, metavar="FORMAT",
                          help="table, wide (every column), name (one identifier per line), json or yaml.")
    ] = "table",
    no_headers: Annotated[
        bool, typer.Option("--no-headers", help="Tables as plain columns, without the header row.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")
    ] = False,
) -> None:
    from stroute.cli.output import configure

    configure(output=output, no_headers=no_headers)
    g = Globals(config_file=config, redis_url=redis_url, namespace=namespace, output=output, layout=layout)
    ctx.obj = g
    ctx.call_on_close(g.close)


# Command name -> (module, attribute). A Typer attribute is a command group.
# Modules load only for the command being run: `stroute link get -o json`
# pays for neither Rich tables nor the serve, doctor or transfer modules.
_COMMANDS = {
    "link": ("stroute.cli.link", "app"),
    "place": ("stroute.cli.place", "place"),
    "pods": ("stroute.cli.pods", "pods"),
    "top": ("stroute.cli.pods", "top"),
    "pod": ("stroute.cli.pod", "app"),
    "serve": ("stroute.cli.serve", "serve"),
    "tag": ("stroute.cli.tag", "app"),
    "config": ("stroute.cli.config_cmd", "app"),
    "doctor": ("stroute.cli.doctor", "doctor"),
    "acl": ("stroute.cli.acl", "acl"),
    "export": ("stroute.cli.transfer", "export"),
    "import": ("stroute.cli.transfer", "import_"),
    "demo": ("stroute.cli.demo", "demo"),
    "embedded": ("stroute.cli.embedded", "app"),
    "version": ("stroute.cli.version", "version"),
}
# Root options that take a value (so the word after them is no command name).
_VALUE_OPTIONS = {"--config", "--redis-url", "-n", "--namespace", "-o", "--output"}


def build(only: str | None = None) -> typer.Typer:
    """The root app with every command, or with just `only` when it names one."""
    import importlib

    root_app = typer.Typer(**_SETTINGS)
    root_app.callback()(root)
    for name in [only] if only in _COMMANDS else list(_COMMANDS):
        module, attribute = _COMMANDS[name]
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            root_app.add_typer(target, name=name)
        else:
            command(root_app, name, target)
    return root_app


def command_name(argv: list[str]) -> str | None:
    """The command word of a command line (after the root options), if any."""
    words = iter(argv)
    for word in words:
        if word in _VALUE_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def __getattr__(name: str):
    if name == "app":  # the whole app, for tests and tools that import it
        whole = globals()["app"] = build()
        return whole
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # Tools that look for an app by listing the module (`typer stroute.cli.app
    # utils docs`) see `app` too, though it is built only when asked for.
    return sorted({*globals(), "app"})


def main() -> None:
    try:
        build(command_name(sys.argv[1:]))(prog_name="stroute")
    except StrouteError as exc:  # raised outside a command (should not happen)
        sys.exit(report(exc))
