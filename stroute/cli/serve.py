"""`stroute serve`: the server driver as a foreground daemon (a sidecar).

This module parses flags and calls ServerDriver.run_until_signalled(),
which owns the lifecycle (signals, drain window, stop budget, takeover
checks), so an application that embeds the driver gets the same behaviour.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from stroute.cli import complete
from stroute.cli.context import Globals
from stroute.cli.help import examples
from stroute.cli.output import emit

log = logging.getLogger("stroute.serve")


@examples("stroute serve -s lobby --pod 0 --load 120", "stroute serve -s lobby --load-file /run/load --http 0.0.0.0:9090",
          "stroute serve -s lobby --pod 0 --once -o json")
def serve(
    ctx: typer.Context,
    service: Annotated[
        Optional[str],
        typer.Option("-s", "--service", envvar="STROUTE_SERVICE", metavar="SVC", help="Service this pod belongs to.",
                     show_default=False, autocompletion=complete.services),
    ] = None,
    pod: Annotated[
        Optional[str],
        typer.Option("--pod", envvar="STROUTE_POD", metavar="N", show_default=False,
                     help="Pod index. Default: the ordinal of POD_NAME, else HOSTNAME ('lobby-3' -> 3)."),
    ] = None,
    load: Annotated[
        Optional[str], typer.Option("--load", metavar="N", show_default=False, help="Publish this fixed load.")
    ] = None,
    load_file: Annotated[
        Optional[Path],
        typer.Option("--load-file", metavar="FILE", show_default=False,
                     help="Publish the integer in this regular file, re-read every period."),
    ] = None,
    load_cmd: Annotated[
        Optional[str],
        typer.Option("--load-cmd", metavar="CMD", show_default=False,
                     help="Publish what this shell command prints, run every period."),
    ] = None,
    load_timeout: Annotated[
        Optional[float],
        typer.Option("--load-timeout", metavar="SECONDS", show_default=False,
                     help="Seconds --load-cmd may run (server.load_timeout; default 5, at most half the period)."),
    ] = None,
    period: Annotated[
        Optional[float], typer.Option("--period", metavar="SECONDS", show_default=False,
                                      help="Heartbeat period (state.period).")
    ] = None,
    expire: Annotated[
        Optional[float], typer.Option("--expire", metavar="SECONDS", show_default=False,
                                      help="Stale after (state.expire).")
    ] = None,
    drain_seconds: Annotated[
        Optional[float],
        typer.Option("--drain-seconds", metavar="SECONDS", show_default=False,
                     help="Drain window on stop (server.drain_seconds)."),
    ] = None,
    takeover: Annotated[
        bool,
        typer.Option("--takeover", help="Publish even if another instance holds this pod alive (it then stops)."),
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="Publish one heartbeat and exit.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log every heartbeat.")] = False,
    http: Annotated[
        Optional[str],
        typer.Option("--http", metavar="HOST:PORT", show_default=False,
                     help="Serve /healthz, /readyz and /metrics (Prometheus) on HOST:PORT; port 0 takes a free one."),
    ] = None,
) -> None:
    """Publish this pod's load and routing state until stopped.

    The server driver, in the foreground (a sidecar).

    Without a load option the load is the host's CPU use times server.cpu_factor.
    """
    from stroute import identity, names
    from stroute.errors import InvalidInput

    g: Globals = ctx.obj
    chosen = [flag for flag, value in (("--load", load), ("--load-file", load_file), ("--load-cmd", load_cmd))
              if value is not None]
    if len(chosen) > 1:
        raise InvalidInput(f"{' and '.join(chosen)} cannot be combined: give one source of load")
    if service is None:
        raise InvalidInput("serve needs a service name: pass -s SVC (or set STROUTE_SERVICE)")
    names.service(service)
    fixed = None if load is None else names.load(load)
    http_address = None
    if http is not None:
        from stroute.httpd import parse_address

        if once:
            raise InvalidInput("--http serves while the daemon runs and cannot be used with --once")
        http_address = parse_address(http)
    if pod is not None:
        index, origin = names.pod(pod), "from --pod"
    else:
        index, origin = identity.pod_from_env(os.environ)
        origin = f"from {origin}"

    # The config rules check these values (and name the key), as for a file.
    config = g.config().with_overrides("the command line", **{
        "state.period": period, "state.expire": expire, "server.drain_seconds": drain_seconds,
        "server.load_timeout": load_timeout,
    })
    source, described = _load_source(config, fixed, load_file, load_cmd)
    handler = _log_to_stderr(logging.DEBUG if verbose else logging.INFO)
    try:
        _serve(g, config, service, index, origin, fixed, source, described, once, takeover,
               http_address=http_address)
    finally:
        _unlog(handler)


def _load_source(config, fixed: int | None, load_file: Path | None, load_cmd: str | None):
    from stroute.loadsources import CommandLoad, FileLoad

    if load_file is not None:
        return FileLoad(load_file), f"load from file {str(load_file)!r}"
    if load_cmd is not None:
        return (CommandLoad(load_cmd, timeout=config.load_timeout),
                f"load from command {load_cmd!r} (timeout {config.load_timeout:g} s)")
    return None, f"load {fixed}" if fixed is not None else f"load from CPU use x {config.server.cpu_factor:g}"


def _serve(g: Globals, config, service: str, index: int, origin: str, fixed: int | None, source, described: str,
           once: bool, takeover: bool, http_address: tuple[str, int] | None = None) -> None:
    from stroute.server import ServerDriver

    store = g.store()
    driver = ServerDriver(service, index, config, store=store, load_source=source)
    if fixed is not None:
        driver.set_load_state(fixed)
    if once:
        _once(g, driver, takeover)
        return
    endpoints = None
    if http_address is not None:
        from stroute.httpd import HttpEndpoints

        endpoints = HttpEndpoints(driver, *http_address)  # a busy or bad address: exit 2, before any heartbeat
    log.info(
        "serving pod %d (%s) of %r in namespace %r on %s: period %g s, expire %g s, drain %g s, %s",
        index, origin, service, config.namespace, store.where,
        config.state.period, config.state.expire, config.server.drain_seconds, described,
    )
    try:
        if endpoints is not None:
            endpoints.start()
            log.info("HTTP on %s: /healthz, /readyz, /metrics", endpoints.url)
        driver.run_until_signalled(takeover=takeover)
    finally:
        if endpoints is not None:
            endpoints.close()


def _once(g: Globals, driver, takeover: bool) -> None:
    published = driver.publish(takeover=takeover)  # a Redis failure raises: exit 6; another instance's pod: exit 4
    state, reason = driver.publishing()
    data = {
        "namespace": driver.namespace,
        "service": driver.service,
        "pod": driver.pod,
        "state": state.name,
        "load": driver.last_load,
        "heartbeat_at_ms": published.heartbeat_ms,
        "cordoned": published.cordoned,
        "reason": reason,
    }
    emit(data, g.output, _once_text, schema="serve")


def _once_text(data: dict):
    from rich.text import Text

    cordon = ", cordoned by an operator" if data["cordoned"] else ""
    why = f" ({data['reason']})" if data["reason"] else ""
    return Text(f"published pod {data['pod']} of {data['service']!r}: {data['state']}, load {data['load']}{cordon}{why}")


def _log_to_stderr(level: int) -> logging.Handler:
    """One line per event on stderr (the stream of this invocation)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logger = logging.getLogger("stroute")
    handler._stroute_previous_level = logger.level  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def _unlog(handler: logging.Handler) -> None:
    logger = logging.getLogger("stroute")
    logger.removeHandler(handler)
    logger.setLevel(getattr(handler, "_stroute_previous_level", logging.NOTSET))
    handler.flush()
