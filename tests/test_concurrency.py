"""Separate processes placing the same users at the same time agree with each other and with Redis."""

from __future__ import annotations

import json
import sys
import textwrap
from collections import Counter

import pytest

from stroute.config import Config
from stroute.podstate import RoutingState

from support import check_invariant, put_state, run_in_lockstep

PROCESSES = 8
UIDS = [f"user-{i}" for i in range(200)]

# One client process: warm up, say "ready", wait for "go" on stdin, place every uid
# (in its own random order, every other uid persistent), print {uid: pod}.
WORKER = textwrap.dedent(
    """
    import json, random, sys
    from stroute.client import ClientDriver
    from stroute.config import Config

    url, seed = sys.argv[1], int(sys.argv[2])
    uids = json.loads(sys.stdin.readline())
    config = Config().with_overrides(**{"redis.url": url, "state.expire": 60, "state.refresh": 60})
    client = ClientDriver(config)
    client.snapshot("lobby")
    random.Random(seed).shuffle(uids)
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    placed = {uid: client.compute_linked_pod("default", uid, "lobby", persist=int(uid.split("-")[1]) % 2 == 0)
              for uid in uids}
    print(json.dumps(placed), flush=True)
    """
)


@pytest.mark.realserver
def test_processes_placing_the_same_users_agree(real_url, redis_server):
    raw = redis_server.client()
    for pod in range(4):
        put_state(raw, "lobby", pod, state=RoutingState.READY)
    put_state(raw, "lobby", 4, state=RoutingState.DRAINING)

    results, _ = run_in_lockstep(
        [[sys.executable, "-c", WORKER, real_url, str(seed)] for seed in range(PROCESSES)], json.dumps(UIDS)
    )

    first = results[0]
    assert sorted(first) == sorted(UIDS)
    for other in results[1:]:
        assert other == first
    assert set(first.values()) <= {0, 1, 2, 3}  # never the draining pod
    assert len(Counter(first.values())) == 4

    keys = [f"sf:{{default:lk:{uid}}}lobby" for uid in UIDS]
    held = dict(zip(UIDS, (int(v) for v in raw.mget(keys))))
    assert held == first
    for uid in UIDS:  # every other uid was asked persistent by every process
        persistent = raw.pttl(f"sf:{{default:lk:{uid}}}lobby") == -1
        assert persistent == (int(uid.split("-")[1]) % 2 == 0), uid
    check_invariant(raw)
    config = Config().with_overrides(**{"redis.url": real_url})
    store = config.open_store()
    assert store.batch_get("default", UIDS, "lobby") == first
    store.close()
    raw.close()
