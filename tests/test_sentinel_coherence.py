"""A gateway process keeps the right answers across a Sentinel failover.

The master, replica and sentinel of tests/test_sentinel.py (its SentinelSet,
one set for this module). A gateway process (tests/gateway_proc.py) with a
warm cache is asked about its users all through `SENTINEL FAILOVER`. Its
cached links were replicated, so they stay right; links written on the new
master once the sentinel names it are followed within the bound after the
write (the gateway cannot know of the new master before the sentinel does);
and afterwards the cache is trusted again, with the old cache dropped.
"""

from __future__ import annotations

import time

import pytest

from cli.ops_support import isolated, put_state, wait_until  # noqa: F401  (isolated: a fixture)
from coherence_support import BOUND, Gateway, Mover, Watch, link_key, watch_move
from test_sentinel import SENTINEL_PASSWORD, sentinels  # noqa: F401  (sentinels: the module's fixture)

pytestmark = [pytest.mark.realserver, pytest.mark.usefixtures("isolated")]

SERVICE = "game"


def test_a_gateway_stays_right_across_a_sentinel_failover(tmp_path, sentinels):
    env = {"STROUTE_REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD, "STROUTE_REDIS_SOCKET_TIMEOUT": "2"}
    old, new = sentinels.master(), sentinels.replica()
    old_client, new_client = sentinels.client(old), sentinels.client(new)
    old_client.flushall()
    for pod in range(3):
        put_state(old_client, SERVICE, pod, load=0)
    uids = [f"f{i}" for i in range(8)]
    for i, uid in enumerate(uids):
        old_client.set(link_key(uid, SERVICE), str(i % 3))  # persistent: a lookup never rewrites it
    assert old_client.wait(1, 5000) == 1  # the replica has it all

    with Gateway(tmp_path, sentinels.url(), **env) as gateway:
        gateway.wait_ready()
        first = gateway.warm(SERVICE, uids)
        assert first == {uid: i % 3 for i, uid in enumerate(uids)}
        flushes = gateway.stats()["stats"]["cache_flushes"]

        moved = uids[::2]  # written on the new master as soon as the sentinel names it
        watch = Watch({uid: first[uid] for uid in moved})
        watch.final = {uid: (first[uid] + 1) % 3 for uid in moved}
        kept: list[dict] = []  # answers about the users that no one moves
        failover = Mover(sentinels.failover).start()
        started = time.monotonic()
        switched = None
        deadline = started + 60
        while True:
            if switched is None and sentinels.sentinel.master_port() == new.port:
                switched = time.monotonic()
                for uid in moved:
                    new_client.set(link_key(uid, SERVICE), str(watch.final[uid]))
                    watch.done[uid] = time.monotonic()
            answers = gateway.answers("both", SERVICE, uids)
            watch.answers.extend(a for a in answers if a["uid"] in watch.old)
            kept.extend(a for a in answers if a["uid"] not in watch.old)
            if any(watch.is_stale(a) for a in answers if a["uid"] in watch.old):
                break  # failed: asserted below, with the answer
            if switched is not None and time.monotonic() > switched + BOUND + 0.5:
                recent = watch.answers[-2 * len(moved):]
                if all(a.get("pod", "-") == watch.final[a["uid"]] for a in recent):
                    break
            assert time.monotonic() < deadline, (switched, watch.answers[-4:], gateway.stderr)
            time.sleep(0.005)
        failover.join()

        errors = watch.errors() + [a for a in kept if "error" in a]
        lag = watch.lag()
        print(f"\nsentinel failover: switch seen {switched - started:.2f} s after SENTINEL FAILOVER; "
              f"{len(watch.answers) + len(kept)} answers, {len(errors)} errors during the switch; the last answer "
              f"naming a moved user's old pod began {max(lag.values()) * 1000:.1f} ms after the write")
        # The users no one moved kept their (replicated) links throughout.
        assert all(a["pod"] == first[a["uid"]] for a in kept if "error" not in a), \
            [a for a in kept if "error" not in a and a["pod"] != first[a["uid"]]][:3]
        assert not watch.stale(), f"stale answers: {watch.stale()[:3]} (written at {watch.done})"
        assert not watch.flip_backs(), watch.flip_backs()[:3]

        # The cache is trusted again, was dropped once at least, and listens to the new master.
        wait_until(lambda: gateway.stats()["state"] == "coherent", timeout=10, what="the cache trusted again")
        assert gateway.stats()["stats"]["cache_flushes"] > flushes
        listeners = [c for c in new_client.client_list() if c["name"] == "stroute-invalidations"]
        assert listeners, new_client.client_list()
        again = gateway.warm(SERVICE, uids)
        assert again == {uid: watch.final.get(uid, first[uid]) for uid in uids}
        # A write on the new master reaches the re-made cache by invalidation.
        before = gateway.stats()["stats"]["invalidations"]
        target = {uid: (again[uid] + 1) % 3 for uid in uids}

        def move():
            for uid in uids:
                new_client.set(link_key(uid, SERVICE), str(target[uid]))

        after = watch_move(gateway, new_client, SERVICE, again, "both", Mover(move))
        assert after.final == target
        assert not after.stale() and not after.errors(), (after.stale()[:3], after.errors()[:3])
        assert gateway.stats()["stats"]["invalidations"] - before >= len(uids)
