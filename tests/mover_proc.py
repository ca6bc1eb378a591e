"""The mover of the coherence soak: moves random users among pods, at a bounded
rate, for a bounded time, and says when each move was made.

Run as `python tests/mover_proc.py SERVICE PODS RATE SECONDS SEED UID...`;
the Redis URL and the rest come from the environment (STROUTE_*). Before the
first move it prints {"ready": true}; after each move one JSON line, flushed:
{"uid", "pod", "t0", "t1"}, t0/t1 the time.monotonic() (CLOCK_MONOTONIC,
shared by every process) just before the write was sent and just after its
reply came back; at the end {"done": true, "moves": N}. Moves are made one at
a time, so a record whose t0 is later than T tells the reader that every move
begun before T has been reported.

The writes vary as the writers of a real deployment do: `Store.set`
(persistent, then temporary), and a raw SET of the link key as redis-cli or
another service would make. Pods also heartbeat (load only) 4 times a
second, so the gateways' state snapshots are invalidated all along.
"""

from __future__ import annotations

import json
import random
import sys
import time

from stroute import config as config_module
from stroute.podstate import PodState, RoutingState


def main(argv: list[str]) -> int:
    service, pods, rate, seconds, seed = argv[0], int(argv[1]), float(argv[2]), float(argv[3]), int(argv[4])
    uids = argv[5:]
    rng = random.Random(seed)
    config = config_module.load()
    store = config.open_store()
    keys = store.keys(config.namespace)
    client = store.client
    current = {}
    for uid in uids:
        link = store.get(config.namespace, uid, service)
        current[uid] = None if link is None else link.pod
    print(json.dumps({"ready": True}), flush=True)

    def heartbeat() -> None:
        secs, micros = client.time()
        now_ms = int(secs) * 1000 + int(micros) // 1000
        client.hset(keys.state(service), mapping={
            str(pod): PodState(rng.randrange(100), now_ms, RoutingState.READY, None).encode() for pod in range(pods)
        })

    start = time.monotonic()
    next_beat = start
    moves = 0
    try:
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            if now >= next_beat:
                heartbeat()
                next_beat = now + 0.25
            uid = rng.choice(uids)
            pod = rng.choice([p for p in range(pods) if p != current[uid]])
            kind = moves % 3
            t0 = time.monotonic()
            if kind == 0:
                store.set(config.namespace, uid, service, pod)
            elif kind == 1:
                store.set(config.namespace, uid, service, pod, 300_000)
            else:
                client.set(keys.link(uid, service), str(pod))
            t1 = time.monotonic()
            current[uid] = pod
            moves += 1
            print(json.dumps({"uid": uid, "pod": pod, "t0": t0, "t1": t1}), flush=True)
            pause = start + moves / rate - time.monotonic()  # at most `rate` moves a second
            if pause > 0:
                time.sleep(pause)
    finally:
        store.close()
    print(json.dumps({"done": True, "moves": moves}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
