"""`stroute tag ...`: names that resolve to a service (`lobby` -> `lobby-v2`)."""

from __future__ import annotations

from typing import Annotated

import typer

from stroute.cli.context import Globals
from stroute.cli import complete
from stroute.cli.help import command, examples
from stroute.cli.output import emit, new_table

app = typer.Typer(
    name="tag",
    help="Names that resolve to a service (lobby -> lobby-v2).",
    no_args_is_help=True,
)

Tag = Annotated[str, typer.Argument(metavar="TAG", help="Tag name.", show_default=False,
                                    autocompletion=complete.tags)]


@examples("stroute tag get lobby", "stroute tag get lobby -o json")
def get(ctx: typer.Context, tag: Tag) -> None:
    """The service TAG points at.

    Exit 3 if the tag is not set.
    """
    from stroute.errors import NotFound

    g: Globals = ctx.obj
    ns = g.config().namespace
    service = g.store().get_tag(ns, tag)
    data = {"namespace": ns, "tag": tag, "service": service}
    if service is not None or not g.for_people:
        emit(data, g.output, _table, schema="tag-get")
    if service is None:
        raise NotFound(f"tag {tag!r} is not set in namespace {ns!r}", hint="set it with: stroute tag set TAG SVC")


@examples("stroute tag set lobby lobby-v2")
def set_(
    ctx: typer.Context,
    tag: Tag,
    service: Annotated[str, typer.Argument(metavar="SVC", help="Service the tag points at.", show_default=False,
                                           autocompletion=complete.services)],
) -> None:
    """Point TAG at service SVC.

    Shows the service it pointed at before.
    """
    from stroute import names

    g: Globals = ctx.obj
    names.tag(tag)
    names.service(service)
    ns = g.config().namespace
    previous = g.store().set_tag(ns, tag, service)
    emit({"namespace": ns, "tag": tag, "service": service, "previous": previous}, g.output, _table, schema="tag-set")


def _table(data: dict):
    columns = ["Tag", "Service"] + (["Previous"] if "previous" in data else [])
    table = new_table(*columns)
    row = [data["tag"], data["service"]]
    if "previous" in data:
        row.append(data["previous"] or "-")
    table.add_row(*row)
    return table


command(app, "get", get)
command(app, "set", set_)
