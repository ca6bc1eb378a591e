"""`stroute config show|validate`: the effective configuration, checked.

No password is ever printed, logged or put in a message: the table shows
'***'; `-o yaml` and `-o json` leave it out (null, and the URL without it)
and say where it came from, so their output is a config file safe to keep.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Optional

import typer

from stroute.cli.context import Globals
from stroute.cli.help import command, examples
from stroute.cli.output import emit, new_table

app = typer.Typer(
    name="config",
    help="Show and check the configuration.",
    no_args_is_help=True,
)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _origins(g: Globals, config: Any) -> dict[str, str]:
    """Where each key's value came from: flag, environment, file or default.

    Compares unredacted values internally; only the labels leave this function.
    """
    from stroute import config as config_module

    flags = {"redis.url": ("--redis-url", g.redis_url), "namespace": ("--namespace", g.namespace)}
    actual = _flatten(config.to_dict(redact=False))
    default = _flatten(config_module.Config().to_dict(redact=False))
    origins: dict[str, str] = {}
    for key in config_module.keys():
        flag, flag_value = flags.get(key, (None, None))
        env = config_module.env_name(key)
        if flag_value is not None:
            origins[key] = f"flag {flag}"
        elif os.environ.get(env):
            origins[key] = f"env {env}"
        elif key == "redis.password" and actual[key] is not None and config.redis.password_file:
            origins[key] = "redis.password_file"
        elif actual[key] != default[key]:
            origins[key] = "file"
        else:
            origins[key] = "default"
    return origins


@examples("stroute config show", "stroute --config prod.yaml config show -o yaml > copy.yaml")
def show(ctx: typer.Context) -> None:
    """The effective config and where each value came from.

    The file, then the STROUTE_* environment, then flags.

    With -o yaml or -o json the output is a config file: passwords are left
    out (null, and the URL without them) and a note says where each came from.
    """
    import sys

    from stroute.cli.output import info

    g: Globals = ctx.obj
    config = g.config()
    origins = _origins(g, config)
    if g.for_people:
        emit({"tree": config.to_dict(redact=True), "origins": origins, "source": config.source,
              "effective_url": config.redis_url if config.url_defaulted else None}, g.output, _show_table,
             schema="config")
        return
    notes = [_left_out(key, origins[key], config.source) for key in config.secrets_set()]
    if g.output == "yaml":  # comments keep the note with the file it is saved as
        sys.stdout.write("".join(f"# {note}\n" for note in notes))
    for note in notes:
        info(f"note: {note}")
    emit(config.to_dict(omit_secrets=True), g.output, schema="config")


_GIVE_IT_IN = {
    "redis.password": "STROUTE_REDIS_PASSWORD or redis.password_file",
    "redis.sentinel_password": "STROUTE_REDIS_SENTINEL_PASSWORD",
    "redis.url": "STROUTE_REDIS_PASSWORD (or put it back in the URL)",
}


def _left_out(key: str, origin: str, source: str | None) -> str:
    """Where a left-out secret came from, and where to give it to a copy of this output."""
    what = "the password in redis.url" if key == "redis.url" else key
    if origin == "redis.password_file":
        return f"{what} left out: it is read from the file redis.password_file names"
    origin = f"the config file {source}" if origin == "file" and source else origin
    return f"{what} left out (it came from {origin}); to use this as a config file, give it in {_GIVE_IT_IN[key]}"


def _show_table(data: dict):
    source = data["source"] or "no config file"
    table = new_table("Key", "Value", "From", title=f"stroute config ({source})")
    table.columns[0].no_wrap = True  # a key must stay whole; values and origins may wrap
    table.columns[1].overflow = table.columns[2].overflow = "fold"
    for key, value in _flatten(data["tree"]).items():
        text = "-" if value is None else str(value)
        if key == "redis.url" and data["effective_url"]:
            text = f"- (using {data['effective_url']})"
        table.add_row(key, text, data["origins"][key])
    return table


@examples("stroute config validate stroute.yaml", "stroute config validate")
def validate(
    ctx: typer.Context,
    file: Annotated[
        Optional[str],
        typer.Argument(metavar="FILE", help="Config file to check alone (environment ignored); "
                       "default: the effective config.", show_default=False),
    ] = None,
) -> None:
    """Check a config file, or the effective config.

    Exit 0 if it is valid, 2 if not.
    """
    from stroute import backends
    from stroute import config as config_module
    from stroute.errors import ConfigError

    g: Globals = ctx.obj
    try:
        config = config_module.load(file, env={}) if file else g.config()
        if config.redis.url:
            backends.check(config.redis.url, config.connect_options())  # what connecting checks first
    except ConfigError as exc:
        if not g.for_people:
            emit({"file": file, "valid": False, "error": exc.message}, g.output, schema="config-validate")
        raise
    data = {"file": file or config.source, "valid": True, "error": None}
    emit(data, g.output, _validate_table, schema="config-validate")


def _validate_table(data: dict):
    from rich.text import Text

    what = f"config file {data['file']}" if data["file"] else "the effective config (no file, defaults and environment)"
    return Text(f"{what} is valid")


command(app, "show", show)
command(app, "validate", validate)
