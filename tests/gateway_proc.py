"""A gateway process for the process-level coherence tests: one long-lived
ClientDriver with a warm cache, answering routing questions on stdin/stdout.

Run as `python tests/gateway_proc.py`; the configuration comes from the
environment (STROUTE_REDIS_URL, STROUTE_STATE_EXPIRE, ...), as for any
embedding application. One request per line, one JSON reply per line,
flushed:

    place SVC UID [UID ...]  -> {"answers": [{"uid", "t", "pod", "source"} | {"uid", "t", "error"}]}
    get SVC UID [UID ...]    -> {"answers": [{"uid", "t", "pod"}]}  (get_linked_pod; pod null: no link)
    both SVC UID [UID ...]   -> place, then get_linked_pod, each answer timed on its own
    routable SVC             -> {"t", "routable": [pods]}
    stats                    -> {"stats": {...}, "state": "coherent" | ...}
    wait                     -> {"coherent": bool}  (wait_coherent)
    quit                     -> exits 0 (so does end of input)

"t" is time.monotonic() when the lookup began. On Linux that is
CLOCK_MONOTONIC, one clock for every process of the machine, so the test
compares it with the times it took itself: an answer that began after
"move done + bound" must not name the old pod.
"""

from __future__ import annotations

import json
import sys
import time

from stroute import config as config_module
from stroute.client import ClientDriver


def _answer(uid: str, lookup) -> dict:
    began = time.monotonic()
    try:
        return {"uid": uid, "t": began, **lookup(uid)}
    except Exception as exc:  # reported, never fatal (a failover makes some): the test counts them
        return {"uid": uid, "t": began, "error": f"{type(exc).__name__}: {exc}"}


def handle(driver: ClientDriver, words: list[str]) -> dict:
    op, args = words[0], words[1:]
    ns = driver.namespace

    def place(service):
        def lookup(uid):
            placed = driver.place(uid, service)
            return {"pod": placed.pod, "source": placed.source}
        return lookup

    def get(service):
        return lambda uid: {"pod": driver.get_linked_pod(ns, uid, service)}

    if op in ("place", "get") and len(args) >= 2:
        lookup = place(args[0]) if op == "place" else get(args[0])
        return {"answers": [_answer(uid, lookup) for uid in args[1:]]}
    if op == "both" and len(args) >= 2:
        answers = []
        for uid in args[1:]:
            answers.append({**_answer(uid, place(args[0])), "op": "place"})
            answers.append({**_answer(uid, get(args[0])), "op": "get"})
        return {"answers": answers}
    if op == "routable" and len(args) == 1:
        began = time.monotonic()
        return {"t": began, "routable": sorted(view.pod for view in driver.snapshot(args[0]).routable())}
    if op == "stats":
        return {"stats": driver.stats(), "state": driver.cache_state()}
    if op == "wait":
        return {"coherent": driver.wait_coherent(timeout=10.0)}
    return {"error": f"unknown request {' '.join(words)!r}"}


def main() -> int:
    config = config_module.load()
    with ClientDriver(config) as driver:
        coherent = driver.wait_coherent(timeout=10.0)
        print(json.dumps({"ready": True, "t": time.monotonic(), "coherent": coherent,
                          "state": driver.cache_state()}), flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            print(json.dumps(handle(driver, words)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
