"""The whole system in one process: four pods, one client, 1,000 users.

Runs on `memory://` (or any URL): four server drivers publish their load
(a base load plus the users placed on them, as a real pod's load grows),
pod 3 is DRAINING, and one client driver places the users. Used by
`stroute demo`; rendering lives in the command line.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

from stroute.client import ClientDriver
from stroute.config import Config
from stroute.podstate import RoutingState
from stroute.server import ServerDriver

BASE_LOADS = (120, 40, 80, 10)
DRAINING_POD = 3
SERVICE = "game"


@dataclass(frozen=True)
class DemoRow:
    pod: int
    state: str
    load: int
    users: int


@dataclass(frozen=True)
class DemoResult:
    namespace: str
    service: str
    strategy: str
    rows: list[DemoRow]
    users: int
    seconds: float


def run(config: Config, *, users: int = 1000, timeout: float = 10.0) -> DemoResult:
    config = config.with_overrides(**{"state.period": 0.1, "state.expire": 2, "state.refresh": 0.05})
    started = time.monotonic()
    placed: Counter[int] = Counter()
    lock = threading.Lock()

    def load_of(pod: int):
        def load() -> int:
            with lock:
                return BASE_LOADS[pod] + placed[pod]

        return load

    client = ClientDriver(config)
    servers = [
        ServerDriver(SERVICE, pod, config, store=client.store, load_source=load_of(pod))
        for pod in range(len(BASE_LOADS))
    ]
    try:
        servers[DRAINING_POD].set_routing_state(RoutingState.DRAINING)
        for server in servers:
            server.start()
        _wait_for_pods(client, len(servers), started + timeout)

        for i in range(users):
            result = client.place(f"user-{i:04d}", SERVICE)
            if result.source in ("new", "moved"):
                with lock:
                    placed[result.pod] += 1

        snap = client.snapshot(SERVICE, refresh=True)
        rows = [
            DemoRow(view.pod, view.display_state, view.load, placed[view.pod]) for view in snap.pods.values()
        ]
    finally:
        for server in servers:
            server.stop(0)
        client.close()
    return DemoResult(
        namespace=config.namespace,
        service=SERVICE,
        strategy=config.placement.strategy,
        rows=rows,
        users=users,
        seconds=time.monotonic() - started,
    )


def _wait_for_pods(client: ClientDriver, count: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if len(client.snapshot(SERVICE, refresh=True).pods) >= count:
            return
        time.sleep(0.01)
    raise TimeoutError(f"the demo's {count} pods did not publish their state in time")
