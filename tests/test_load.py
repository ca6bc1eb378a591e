"""Load on a real redis-server and on a real Redis Cluster: many processes
place the same users at once.

Eight client processes start together (each has connected and read the pod
states first) and place the same 1,000 uids, each in its own order; half
place them one at a time (one EVALSHA each), half in pipelined batches of
100 (`place_many`, what `stroute place -` does). Every process must report
the same pod for every uid, that pod must be the one Redis holds, and no
placement may fail. The test prints the throughput.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections import Counter

import pytest

from stroute.podstate import RoutingState
from support import check_invariant, put_state, run_in_lockstep

PROCESSES = 8
UIDS = [f"load-{i}" for i in range(1000)]
BATCH = 100

WORKER = textwrap.dedent(
    """
    import json, random, sys, time
    from stroute.client import ClientDriver
    from stroute.config import Config

    url, seed, batched = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    uids = json.loads(sys.stdin.readline())
    config = Config().with_overrides(**{"redis.url": url, "state.expire": 60, "state.refresh": 60})
    client = ClientDriver(config)
    client.snapshot("lobby")  # connected, states read: the clock starts at "go"
    random.Random(seed).shuffle(uids)
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    placed, errors = {}, []
    if batched:
        for start in range(0, len(uids), %(batch)d):
            for uid, result in client.place_many(uids[start:start + %(batch)d], "lobby").items():
                if isinstance(result, Exception):
                    errors.append(f"{uid}: {result}")
                else:
                    placed[uid] = result.pod
    else:
        for uid in uids:
            try:
                placed[uid] = client.place(uid, "lobby").pod
            except Exception as exc:
                errors.append(f"{uid}: {exc}")
    done = time.monotonic()
    print(json.dumps({"placed": placed, "errors": errors, "done": done}), flush=True)
    """
) % {"batch": BATCH}


@pytest.fixture(params=["server", pytest.param("cluster", marks=pytest.mark.cluster)])
def target(request):
    """(url, a raw client of it, raw clients of each node for the invariant check)."""
    from stroute.backends import connect

    if request.param == "server":
        server = request.getfixturevalue("redis_server")
        url = request.getfixturevalue("real_url")
        nodes = [server.client()]
        yield url, nodes[0], nodes, "one redis-server"
    else:
        cluster = request.getfixturevalue("redis_cluster")
        url = request.getfixturevalue("cluster_url")
        nodes = [node.client() for node in cluster.nodes]
        raw = connect(url)
        yield url, raw, nodes, "a 3-primary Redis Cluster"
        raw.close()
    for node in nodes:
        node.close()


@pytest.mark.realserver
def test_processes_placing_the_same_thousand_users_agree(target):
    real_url, raw, nodes, where = target
    for pod, load in enumerate((10, 20, 30, 40)):
        put_state(raw, "lobby", pod, load=load, state=RoutingState.READY)
    put_state(raw, "lobby", 4, state=RoutingState.DRAINING)

    reports, go = run_in_lockstep(
        [[sys.executable, "-c", WORKER, real_url, str(seed), str(seed % 2)] for seed in range(PROCESSES)],
        json.dumps(UIDS),
    )
    elapsed = max(r["done"] for r in reports) - go

    assert [r["errors"] for r in reports] == [[]] * PROCESSES
    first = reports[0]["placed"]
    assert sorted(first) == sorted(UIDS)
    for report in reports[1:]:
        disagree = [uid for uid in UIDS if report["placed"][uid] != first[uid]]
        assert not disagree, f"{len(disagree)} uids placed differently, e.g. {disagree[:5]}"
    keys = [f"sf:{{default:lk:{uid}}}lobby" for uid in UIDS]
    values = raw.mget_nonatomic(keys) if hasattr(raw, "mget_nonatomic") else raw.mget(keys)
    held = dict(zip(UIDS, (int(v) for v in values)))
    assert held == first  # exactly one link per uid, the pod every process reported
    spread = Counter(first.values())
    assert set(spread) <= {0, 1, 2, 3}  # never the draining pod
    for node in nodes:  # a link and its index share a slot, so each node holds whole pairs
        check_invariant(node)

    total = PROCESSES * len(UIDS)
    print(f"\nload: {PROCESSES} processes x {len(UIDS)} uids = {total} placements in {elapsed:.2f} s: "
          f"{total / elapsed:,.0f} placements/s on {where}; users per pod {dict(sorted(spread.items()))}")
