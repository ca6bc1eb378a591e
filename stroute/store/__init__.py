"""The Redis store, written once for the sync and asyncio drivers.

- `stroute.store.domain`: what each operation sends and what the replies
  mean (keys, script arguments, validation, reply parsing), with no I/O;
- `stroute.store.sync`: `Store`, which runs them on kept connections
  (`stroute.direct`; per node on a Redis Cluster), and the command line's
  walks over many keys (listings, counts, imports);
- `stroute.store.aio`: `AsyncStore`, which runs the drivers' operations as
  coroutines over automatic pipelining (`stroute.autopipeline`).
"""

from stroute.store.domain import (
    CLAIMS,
    LINK_KINDS,
    MAX_BAD_KEYS_KEPT,
    SCRIPTS,
    BadKeys,
    BatchLinks,
    Link,
    LinkCounts,
    Published,
    Registry,
    SetIfAbsent,
    parse_pod,
    script_sha,
    script_source,
)
from stroute.store.sync import Store

__all__ = [
    "CLAIMS", "LINK_KINDS", "MAX_BAD_KEYS_KEPT", "SCRIPTS", "BadKeys", "BatchLinks", "Link", "LinkCounts",
    "Published", "Registry", "SetIfAbsent", "Store", "parse_pod", "script_sha", "script_source",
]
