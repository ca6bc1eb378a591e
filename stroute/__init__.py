"""stroute: stateful routing with Redis.

    from stroute import ClientDriver, ServerDriver, load_config

Importing the package is cheap: the drivers, redis-py and the rest load on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ClientDriver": "stroute.client",
    "Placement": "stroute.client",
    "BatchLinks": "stroute.client",
    "ServerDriver": "stroute.server",
    "Store": "stroute.store",
    "Link": "stroute.store",
    "Config": "stroute.config",
    "load_config": "stroute.config",
    "RoutingState": "stroute.podstate",
    "Snapshot": "stroute.podstate",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from stroute.client import BatchLinks, ClientDriver, Placement
    from stroute.config import Config
    from stroute.config import load as load_config
    from stroute.podstate import RoutingState, Snapshot
    from stroute.server import ServerDriver
    from stroute.store import Link, Store


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'stroute' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(module_name)
    value = getattr(module, "load" if name == "load_config" else name)
    globals()[name] = value
    return value
