"""Shell completion of the names Redis holds: services, pods, tags.

A completion runs on every Tab, inside the user's prompt. So it reads only
(SMEMBERS of the services registry, HKEYS of a state hash, a SCAN of the tag
keys), waits at most TIMEOUT_S per call and SCAN_BUDGET_S in all, prints
nothing of its own, and any failure (no config, no server, a refused
password) completes nothing. It never starts the embedded server: with no
URL configured and that server not running there is nothing to read.
"""

from __future__ import annotations

import time
from typing import Any

TIMEOUT_S = 0.5  # connect and read, per call
SCAN_BUDGET_S = 1.0  # the tag SCAN stops after this, with what it found


def _open(ctx: Any):
    """(store, namespace) for the command line being completed, or None."""
    import dataclasses

    from stroute import backends
    from stroute.cli.context import Globals
    from stroute.store import Store

    params = ctx.find_root().params
    # The config the command itself would load: file, STROUTE_*, then these flags.
    config = Globals(config_file=params.get("config"), redis_url=params.get("redis_url"),
                     namespace=params.get("namespace")).config()
    parsed = backends.parse(config.redis_url)
    if parsed.scheme == "embedded":
        from stroute.embedded import EmbeddedServer

        server = EmbeddedServer(parsed.parts["data_file"], idle=parsed.parts["idle"])
        if server.pid() is None or not server.is_running():
            return None
        return Store(server.client(timeout=TIMEOUT_S), prefix=config.prefix), config.namespace
    options = dataclasses.replace(config.connect_options(), socket_timeout=TIMEOUT_S)
    return Store.from_url(config.redis_url, prefix=config.prefix, options=options), config.namespace


def _complete(ctx: Any, incomplete: str, read) -> list[str]:
    """The names `read(store, namespace)` gives that start with what was typed; [] on any failure."""
    try:
        opened = _open(ctx)
        if opened is None:
            return []
        store, namespace = opened
        try:
            found = read(store, namespace)
        finally:
            store.close()
    except Exception:  # a prompt shows no error: nothing to complete
        return []
    return [name for name in found if name.startswith(incomplete or "")]


def services(ctx: Any, incomplete: str) -> list[str]:
    """Service names from the namespace's services registry."""
    return _complete(ctx, incomplete, lambda store, ns: store.services(ns))


def _service_typed(ctx: Any) -> str | None:
    params = ctx.params if ctx is not None else {}
    return params.get("service") or params.get("service_arg")


def pods(ctx: Any, incomplete: str) -> list[str]:
    """The pods of the service already typed (-s SVC) that published a state."""
    service = _service_typed(ctx)
    if not service:
        return []
    return _complete(ctx, incomplete, lambda store, ns: [str(p) for p in store.state_pods(ns, service)])


def tags(ctx: Any, incomplete: str) -> list[str]:
    """The namespace's tags (a SCAN, cut at SCAN_BUDGET_S)."""

    def read(store, ns) -> list[str]:
        found: list[str] = []
        deadline = time.monotonic() + SCAN_BUDGET_S
        for batch in store.tags(ns):
            found.extend(batch)
            if time.monotonic() > deadline:
                break
        return sorted(set(found))

    return _complete(ctx, incomplete, read)
