"""`stroute version` (and `stroute --version`): what is installed, and the server's version when one is configured."""

from __future__ import annotations

import typer

from stroute.cli.context import Globals
from stroute.cli.help import examples
from stroute.cli.output import emit, new_table


def versions() -> dict[str, str | None]:
    """stroute's, and the libraries it talks to Redis with."""
    from importlib import metadata

    import stroute

    out: dict[str, str | None] = {"stroute": stroute.__version__}
    for key, package in (("redis_py", "redis"), ("hiredis", "hiredis")):
        try:
            out[key] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


@examples("stroute version", "stroute --redis-url redis://127.0.0.1:6379 version -o json")
def version(ctx: typer.Context) -> None:
    """The versions of stroute, redis-py, hiredis and the Redis server.

    The server's when a URL is configured (with none, the embedded server is
    not started for this).
    """
    g: Globals = ctx.obj
    data = {**versions(), "server": None}
    config = g.config()
    if not config.url_defaulted:
        data["server"] = _server_version(g)
    emit(data, g.output, _table, schema="version")


def _server_version(g: Globals) -> str | None:
    """The server's version (its name and number), or None when it cannot be asked."""
    from stroute.cli.output import info as note
    from stroute.errors import StrouteError

    try:
        store = g.store()
        info = store._call(store.client.info, "server")
    except StrouteError as exc:
        note(f"server version unknown: {exc}")
        return None
    if info and "redis_version" not in info:  # a cluster answers per node
        info = next((v for v in info.values() if isinstance(v, dict)), {})
    if not info or "redis_version" not in info:
        return None
    name = "valkey" if info.get("server_name") == "valkey" or "valkey_version" in info else "redis"
    return f"{name} {info.get('valkey_version') or info['redis_version']}"


def _table(data: dict):
    table = new_table("Component", "Version")
    for key, value in data.items():
        table.add_row(key, "-" if value is None else str(value))
    return table


def print_version(value: bool) -> None:
    """The root --version flag: one line, then exit."""
    if value:
        found = versions()
        typer.echo(f"stroute {found['stroute']} (redis-py {found['redis_py']}, hiredis {found['hiredis'] or 'none'})")
        raise typer.Exit()
