"""`stroute demo`: the whole system on an in-process store."""

from __future__ import annotations

from typing import Annotated

import typer

from stroute.cli.context import Globals
from stroute.cli.help import examples
from stroute.cli.output import emit, new_table


@examples("stroute demo", "stroute demo --users 100 -o json")
def demo(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(metavar="N", min=1, max=100_000, help="Users to place.")] = 1000,
    redis_url: Annotated[
        str, typer.Option("--demo-url", metavar="URL", help="Store to run on (default: in-process memory://).")
    ] = "memory://demo",
) -> None:
    """Run four pods (one DRAINING) and place users on them.

    On an in-process store, unless --demo-url names another.
    """
    from stroute import demo as core_demo

    g: Globals = ctx.obj
    config = g.config(**{"redis.url": redis_url})
    result = core_demo.run(config, users=users)
    data = {
        "namespace": result.namespace,
        "service": result.service,
        "strategy": result.strategy,
        "users": result.users,
        "elapsed_s": round(result.seconds, 3),
        "pods": [
            {"pod": r.pod, "state": r.state, "load": r.load, "users_placed": r.users} for r in result.rows
        ],
    }
    emit(data, g.output, _table, schema="demo")


def _table(data: dict):
    from rich.console import Group
    from rich.text import Text

    table = new_table("Pod", "State", "Load", "Users placed",
                      title=f"stroute demo: service {data['service']!r}, strategy {data['strategy']}")
    for row in data["pods"]:
        table.add_row(str(row["pod"]), row["state"], str(row["load"]), str(row["users_placed"]))
    placed = sum(r["users_placed"] for r in data["pods"])
    taking = sum(1 for r in data["pods"] if r["state"] == "READY")
    others = ", ".join(
        f"pod {r['pod']} ({r['state']}) got {r['users_placed']}" for r in data["pods"] if r["state"] != "READY"
    )
    summary = Text(
        f"{placed} users placed on {taking} READY pods in {data['elapsed_s']:.2f} s"
        + (f"; {others}." if others else ".")
    )
    return Group(table, summary)
