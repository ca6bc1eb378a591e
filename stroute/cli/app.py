"""The root `stroute` command: global options, command groups, error mapping."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from stroute.cli.context import Globals
from stroute.cli.errors import guarded, report
from stroute.cli.output import FORMATS
from stroute.errors import StrouteError


app = typer.Typer(
    name="stroute",
    help="Stateful routing with Redis: which pod holds each user's state.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # usage errors as plain lines, for people and for CI logs
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _output_format(value: str) -> str:
    if value not in FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(FORMATS)}")
    return value


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Optional[str], typer.Option("--config", envvar="STROUTE_CONFIG", help="Config file (YAML).")
    ] = None,
    redis_url: Annotated[
        Optional[str],
        typer.Option("--redis-url", help="Redis URL (redis://, rediss://, unix://, redis+cluster://, redis+sentinel://, embedded://, memory://). "
                     "Env: STROUTE_REDIS_URL.", show_default=False),
    ] = None,
    namespace: Annotated[
        Optional[str], typer.Option("-n", "--namespace", help="Namespace. Env: STROUTE_NAMESPACE.")
    ] = None,
    output: Annotated[
        str, typer.Option("-o", "--output", callback=_output_format, help="table, json or yaml.")
    ] = "table",
) -> None:
    g = Globals(config_file=config, redis_url=redis_url, namespace=namespace, output=output)
    ctx.obj = g
    ctx.call_on_close(g.close)


def _register() -> None:
    from stroute.cli.demo import demo

    app.command("demo")(guarded(demo))

    # pods / top / pod / serve / doctor
    from stroute.cli import pod
    from stroute.cli.doctor import doctor
    from stroute.cli.pods import pods, top
    from stroute.cli.serve import serve

    app.command("pods")(guarded(pods))
    app.command("top")(guarded(top))
    app.add_typer(pod.app, name="pod")
    app.command("serve")(guarded(serve))
    app.command("doctor")(guarded(doctor))

    # link / place / tag / config
    from stroute.cli import config_cmd, link, tag
    from stroute.cli.place import place

    app.add_typer(link.app, name="link")
    app.command("place")(guarded(place))
    app.add_typer(tag.app, name="tag")
    app.add_typer(config_cmd.app, name="config")

    # acl
    from stroute.cli.acl import acl

    app.command("acl")(guarded(acl))

    # export / import
    from stroute.cli.transfer import export, import_

    app.command("export")(guarded(export))
    app.command("import")(guarded(import_))


_register()


def main() -> None:
    try:
        app(prog_name="stroute")
    except StrouteError as exc:  # raised outside a command (should not happen)
        sys.exit(report(exc))
