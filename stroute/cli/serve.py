"""`stroute serve`: the server driver as a foreground daemon (a sidecar).

First SIGTERM/SIGINT: warm stop (DRAINING at once, the drain window, DOWN,
exit 0). A second one cuts the drain short (DOWN now, exit 0).

The signal handlers only record the signal: they take no lock, because a
handler runs in the main thread between two bytecodes, possibly while that
thread holds the very lock (an Event's) the handler would take. The main
thread polls the record and stops the driver itself; a second signal ends
the drain window through a short-lived thread for the same reason.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from stroute.cli.context import Globals
from stroute.cli.output import emit

log = logging.getLogger("stroute.serve")

_POLL_S = 0.05  # how soon the main thread notices a signal


def serve(
    ctx: typer.Context,
    service: Annotated[
        Optional[str],
        typer.Option("-s", "--service", envvar="STROUTE_SERVICE", help="Service this pod belongs to.",
                     show_default=False),
    ] = None,
    pod: Annotated[
        Optional[str],
        typer.Option("--pod", envvar="STROUTE_POD", show_default=False,
                     help="Pod index. Default: the ordinal of POD_NAME, else HOSTNAME ('lobby-3' -> 3)."),
    ] = None,
    load: Annotated[
        Optional[str], typer.Option("--load", show_default=False, help="Publish this fixed load.")
    ] = None,
    load_file: Annotated[
        Optional[Path],
        typer.Option("--load-file", show_default=False,
                     help="Publish the integer in this file, re-read every period."),
    ] = None,
    load_cmd: Annotated[
        Optional[str],
        typer.Option("--load-cmd", show_default=False,
                     help="Publish what this shell command prints, run every period."),
    ] = None,
    load_timeout: Annotated[
        float, typer.Option("--load-timeout", help="Seconds --load-cmd may take.")
    ] = 5.0,
    period: Annotated[
        Optional[float], typer.Option("--period", show_default=False, help="Heartbeat period (state.period).")
    ] = None,
    expire: Annotated[
        Optional[float], typer.Option("--expire", show_default=False, help="Stale after (state.expire).")
    ] = None,
    drain_seconds: Annotated[
        Optional[float],
        typer.Option("--drain-seconds", show_default=False, help="Drain window on stop (server.drain_seconds)."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Publish one heartbeat and exit.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log every heartbeat.")] = False,
    http: Annotated[
        Optional[str],
        typer.Option("--http", metavar="HOST:PORT", show_default=False,
                     help="Serve /healthz, /readyz and /metrics (Prometheus) on HOST:PORT; port 0 takes a free one."),
    ] = None,
) -> None:
    """Publish this pod's load and routing state until SIGTERM (the server driver, in the foreground).

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
    for flag, value, low, rule in (
        ("--period", period, 0, "greater than 0"),
        ("--expire", expire, 0, "greater than 0"),
        ("--load-timeout", load_timeout, 0, "greater than 0"),
    ):
        if value is not None and not value > low:
            raise InvalidInput(f"invalid {flag} {value!r}: must be a number of seconds {rule}")
    http_address = None
    if http is not None:
        from stroute.httpd import parse_address

        if once:
            raise InvalidInput("--http serves while the daemon runs and cannot be used with --once")
        http_address = parse_address(http)
    if drain_seconds is not None and not drain_seconds >= 0:
        raise InvalidInput(f"invalid --drain-seconds {drain_seconds!r}: must be a number of seconds, 0 or more")
    if pod is not None:
        index, origin = names.pod(pod), "from --pod"
    else:
        index, origin = identity.pod_from_env(os.environ)
        origin = f"from {origin}"

    config = g.config(**{"state.period": period, "state.expire": expire, "server.drain_seconds": drain_seconds})
    handler = _log_to_stderr(logging.DEBUG if verbose else logging.INFO)
    try:
        _serve(g, config, service, index, origin, fixed, load_file, load_cmd, load_timeout, once,
               http_address=http_address)
    finally:
        _unlog(handler)


def _serve(g: Globals, config, service: str, index: int, origin: str, fixed: int | None,
           load_file: Path | None, load_cmd: str | None, load_timeout: float, once: bool,
           http_address: tuple[str, int] | None = None) -> None:
    from stroute.loadsources import CommandLoad, FileLoad
    from stroute.server import ServerDriver

    if load_file is not None:
        source, described = FileLoad(load_file), f"load from file {str(load_file)!r}"
    elif load_cmd is not None:
        source, described = CommandLoad(load_cmd, timeout=load_timeout), f"load from command {load_cmd!r}"
    else:
        source = None
        described = f"load {fixed}" if fixed is not None else f"load from CPU use x {config.server.cpu_factor:g}"
    store = g.store()
    driver = ServerDriver(service, index, config, store=store, load_source=source)
    if fixed is not None:
        driver.set_load_state(fixed)
    if once:
        _once(g, driver)
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
    if endpoints is None:
        _run_until_signalled(driver, config.server.drain_seconds)
        return
    try:
        endpoints.start()
        log.info("HTTP on %s: /healthz, /readyz, /metrics", endpoints.url)
        _run_until_signalled(driver, config.server.drain_seconds)
    finally:
        endpoints.close()


def _once(g: Globals, driver) -> None:
    load = driver.get_load_state()
    driver.set_load_state(load)
    published = driver.publish()  # a Redis failure raises: exit 6
    data = {
        "namespace": driver.namespace,
        "service": driver.service,
        "pod": driver.pod,
        "state": driver.get_routing_state().name,
        "load": load,
        "heartbeat_ms": published.heartbeat_ms,
        "cordoned": published.cordoned,
    }
    emit(data, g.output, _once_text)


def _once_text(data: dict):
    from rich.text import Text

    cordon = ", cordoned by an operator" if data["cordoned"] else ""
    return Text(f"published pod {data['pod']} of {data['service']!r}: {data['state']}, load {data['load']}{cordon}")


def _run_until_signalled(driver, drain: float) -> None:
    import signal
    import threading

    received: list[int] = []

    def on_signal(signum, frame):  # record only: see the module docstring
        received.append(signum)
        if len(received) == 2:
            threading.Thread(target=driver.stop_now, name="stroute-stop-now", daemon=True).start()

    wanted = [signal.SIGTERM, signal.SIGINT]
    previous = {sig: signal.signal(sig, on_signal) for sig in wanted}
    try:
        driver.start()
        while not received:
            time.sleep(_POLL_S)
        name = signal.Signals(received[0]).name
        if drain > 0:
            log.info("%s: draining for %g s, then DOWN (send it again to stop at once)", name, drain)
        else:
            log.info("%s: stopping", name)
        started = time.monotonic()
        driver.stop(drain)
        if len(received) > 1:
            log.info("%s again: drain cut short after %.1f s", signal.Signals(received[1]).name,
                     time.monotonic() - started)
        log.info("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
