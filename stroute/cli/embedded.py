"""`stroute embedded status|stop`: the embedded Redis server a command started."""

from __future__ import annotations

import typer

from stroute.cli.context import Globals
from stroute.cli.help import command, examples
from stroute.cli.output import emit, new_table

app = typer.Typer(
    name="embedded",
    help="Show or stop the embedded Redis server.\n\nembedded:// is the default when no Redis URL is configured.",
    no_args_is_help=True,
)


def _server(g: Globals):
    """The configured embedded:// server, else the default one (a leftover can be stopped either way)."""
    from stroute import backends
    from stroute.embedded import EmbeddedServer, data_file_for

    url = g.config().redis_url
    parsed = backends.parse(url)
    if parsed.scheme == "embedded":
        return EmbeddedServer(parsed.parts["data_file"], idle=parsed.parts["idle"])
    return EmbeddedServer(data_file_for(""))


@examples("stroute embedded status", "stroute embedded status -o json")
def status(ctx: typer.Context) -> None:
    """Whether the embedded server runs, and where its data lives.

    Also its clients and uptime. Exit 3 if it is not running.
    """
    from stroute.errors import NotFound

    g: Globals = ctx.obj
    server = _server(g)
    data = {**server.status(), "idle_stop_s": server.idle or None}
    emit(data, g.output, _table, schema="embedded-status")
    if not data["running"]:
        raise NotFound(f"no embedded Redis server runs for {data['data_file']!r}",
                       hint="any stroute command starts it when no Redis URL is configured")


@examples("stroute embedded stop")
def stop(ctx: typer.Context) -> None:
    """Save the data and stop the embedded server.

    Exit 3 if it was not running.
    """
    from stroute.errors import NotFound, RedisUnavailable

    g: Globals = ctx.obj
    server = _server(g)
    was_running = server.is_running()
    stopped = server.stop() if was_running else False
    emit({"data_file": str(server.data_file), "stopped": stopped}, g.output, _stopped_table, schema="embedded-stop")
    if not was_running:
        raise NotFound(f"no embedded Redis server runs for {str(server.data_file)!r}")
    if not stopped:
        raise RedisUnavailable(f"the embedded Redis server for {str(server.data_file)!r} did not stop",
                               hint=f"see {server.log_path}")


def _table(data: dict):
    table = new_table("Key", "Value", title="embedded Redis server")
    for key in ("running", "data_file", "socket", "log", "pid", "version", "clients", "uptime_s", "idle_stop_s"):
        if key in data:
            value = data[key]
            table.add_row(key, "-" if value is None else str(value))
    return table


def _stopped_table(data: dict) -> str:
    return f"stopped the embedded Redis server (data saved in {data['data_file']})" if data["stopped"] else ""


command(app, "status", status)
command(app, "stop", stop)
