"""Coherent caches across processes, on a real redis-server.

A gateway process (tests/gateway_proc.py: a long-lived ClientDriver with a
warm cache) answers "which pod for this user" while other processes change
links: the `stroute` CLI (link set, pod drain --migrate, link clear, import
--overwrite, pod cordon) and redis-cli. Each answer is stamped with the time
its lookup began, on the clock every process shares, and no answer that
began more than the coherence bound (1 s) after a write was done may give
the value from before it. The soak runs 4 gateways and a mover for 60 s
(STROUTE_SOAK_SECONDS) and checks, at every sample, that every gateway gives
Redis's answer for each user whose last move is older than the bound.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time

import pytest

from cli.ops_support import isolated, put_state, run_bin, wait_until  # noqa: F401  (isolated: a fixture)
from coherence_support import BOUND, MOVER, NS, Gateway, LineProcess, Mover, link_key, watch_move
from stroute.config import Config
from stroute.testing import cli_binary

pytestmark = [pytest.mark.realserver, pytest.mark.usefixtures("isolated")]

SERVICE = "game"


@pytest.fixture
def raw(redis_server, real_url):
    client = redis_server.client()
    for pod in range(3):
        put_state(client, SERVICE, pod, load=0)
    yield client
    client.close()


@pytest.fixture
def store(real_url):
    s = Config().with_overrides(**{"redis.url": real_url}).open_store()
    yield s
    s.close()


@pytest.fixture
def gateway(tmp_path, real_url, raw):
    with Gateway(tmp_path, real_url) as gw:
        gw.wait_ready()
        yield gw


def stroute(tmp_path, url, *args: str, **env: str) -> subprocess.CompletedProcess:
    return run_bin(tmp_path, "--redis-url", url, "-o", "json", *args, timeout=60, **env)


def ok(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, (done.args, done.stdout, done.stderr)
    return json.loads(done.stdout)


# --- 1. the CLI and redis-cli move links under a running gateway ------------------------------------------


def _prepare(kind: str, gateway: Gateway, store, tmp_path, url: str, port: int):
    """Users with a warm cache in the gateway, and the move: (uid -> old pod, the op to ask, the
    function that makes the move, uid -> the pod expected after it or None when the mover picks it)."""
    if kind == "link set":
        uids = [f"ls{i}" for i in range(3)]
        old = gateway.warm(SERVICE, uids)

        def run():
            return [stroute(tmp_path, url, "link", "set", uid, "-s", SERVICE, "--pod", str((pod + 1) % 3))
                    for uid, pod in old.items()]
        return old, "both", run, lambda uid: (old[uid] + 1) % 3

    if kind == "pod drain --migrate":
        uids = [f"dr{i}" for i in range(6)]
        for uid in uids:  # temporary links on pod 1: what a drain migrates
            store.set(NS, uid, SERVICE, 1, 300_000)
        old = gateway.warm(SERVICE, uids)
        assert set(old.values()) == {1}

        def run():
            return [stroute(tmp_path, url, "pod", "drain", "-s", SERVICE, "--pod", "1", "--migrate",
                            STROUTE_STATE_REFRESH="0.5")]
        return old, "both", run, None  # the drain picks the new pods

    if kind == "link clear":
        uids = [f"cl{i}" for i in range(4)]
        for uid in uids:
            store.set(NS, uid, SERVICE, 2)
        old = gateway.warm(SERVICE, uids)
        assert set(old.values()) == {2}
        # get_linked_pod only: a placement after the clear would make a new link.
        assert {a["pod"] for a in gateway.answers("get", SERVICE, uids)} == {2}

        def run():
            return [stroute(tmp_path, url, "link", "clear", "-s", SERVICE, "--pod", "2", "--force")]
        return old, "get", run, lambda uid: None

    if kind == "import --overwrite":
        uids = [f"im{i}" for i in range(4)]
        old = gateway.warm(SERVICE, uids)
        lines = [json.dumps({"namespace": NS, "uid": uid, "service": SERVICE, "pod": (pod + 2) % 3,
                             "persistent": True, "ttl": None}) for uid, pod in old.items()]
        (tmp_path / "moves.jsonl").write_text("\n".join(lines) + "\n")

        def run():
            return [stroute(tmp_path, url, "import", "--overwrite", "moves.jsonl")]
        return old, "both", run, lambda uid: (old[uid] + 2) % 3

    if kind == "redis-cli SET":
        uids = [f"rc{i}" for i in range(4)]
        old = gateway.warm(SERVICE, uids)
        commands = "".join(f"SET {link_key(uid, SERVICE)} {(pod + 1) % 3}\n" for uid, pod in old.items())

        def run():
            return [subprocess.run([cli_binary(), "-h", "127.0.0.1", "-p", str(port)], input=commands,
                                   capture_output=True, text=True, timeout=30)]
        return old, "both", run, lambda uid: (old[uid] + 1) % 3

    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["link set", "pod drain --migrate", "link clear", "import --overwrite",
                                  "redis-cli SET"])
def test_a_gateway_follows_a_move_made_by_another_process(kind, tmp_path, real_url, redis_server, raw, store,
                                                          gateway):
    old, op, run, expected = _prepare(kind, gateway, store, tmp_path, real_url, redis_server.port)
    before = gateway.stats()["stats"]
    watch = watch_move(gateway, raw, SERVICE, old, op, Mover(run))

    for done in watch.result:
        assert done.returncode == 0, (done.args, done.stdout, done.stderr)
    report = json.loads(watch.result[-1].stdout) if kind != "redis-cli SET" else None
    if kind == "pod drain --migrate":
        assert (report["moved"], report["remaining"]) == (len(old), 0), report
    elif kind == "link clear":
        assert (report["found"], report["removed"]) == (len(old), len(old)), report
    elif kind == "import --overwrite":
        assert (report["imported"], report["rejected"]) == (len(old), 0), report
    if expected is not None:
        assert watch.final == {uid: expected(uid) for uid in old}, watch.final
    else:  # the drain moved every link off pod 1, to routable pods
        assert all(pod in (0, 2) for pod in watch.final.values()), watch.final
    assert set(watch.done) == set(old), "a write was never seen in Redis"
    assert not watch.errors(), watch.errors()[:5]
    lag = watch.lag()
    print(f"\n{kind}: {len(watch.answers)} answers; the last answer naming the old pod began "
          f"{max(lag.values()) * 1000:.1f} ms after the write was done (bound {BOUND * 1000:.0f} ms)")
    assert not watch.stale(), f"stale answers later than done + {BOUND} s: {watch.stale()[:5]} (done {watch.done})"
    assert not watch.flip_backs(), watch.flip_backs()[:5]

    # Redis told the gateway (an invalidation per user), or the channel was re-made (a flush): no guess.
    after = gateway.stats()["stats"]
    assert (after["invalidations"] - before["invalidations"] >= len(old)
            or after["cache_flushes"] > before["cache_flushes"]), (before, after)
    if op == "both":  # the new links are cached again, and served from the cache
        wait_until(lambda: all(a["source"] == "cache" and a["pod"] == watch.final[a["uid"]]
                               for a in gateway.answers("place", SERVICE, list(old))),
                   timeout=10, what="the new links served from the cache")


def test_gateways_sharing_a_temporary_user_serve_it_from_their_caches(tmp_path, real_url, raw, gateway):
    """A lookup slides a temporary link's TTL only when less than half is left,
    so one gateway's lookup is no write that takes the user out of another's cache."""
    pod = gateway.warm(SERVICE, ["shared"])["shared"]
    with Gateway(tmp_path, real_url, name="gateway2") as other:
        other.wait_ready()
        # Requests of one user reach either gateway, as behind a load balancer: the other one looks it up.
        (first,) = other.answers("place", SERVICE, ["shared"])
        assert (first["pod"], first["source"]) == (pod, "existing")
        # That lookup changed no link, so this gateway's entry stands: a change would reach it within the bound.
        sources = []
        deadline = time.monotonic() + BOUND + 0.5
        while time.monotonic() < deadline:
            (answer,) = gateway.answers("place", SERVICE, ["shared"])
            assert answer["pod"] == pod
            sources.append(answer["source"])
            time.sleep(0.01)
        assert set(sources) == {"cache"}, sources


# --- 2. a cordon made by another process ------------------------------------------------------------------


def _placements_across(gateway: Gateway, mover: Mover, raw, *, pod: int, cordoned: bool, prefix: str):
    """Place new users (and read the routable pods) until the bound has passed
    since the mover's write by half a second; (write done, routables, placements)."""
    control = f"sf:{{{NS}:state:{SERVICE}}}:ctl"
    routables, placements = [], []
    done = None
    mover.start()
    n = 0
    deadline = time.monotonic() + 60
    while done is None or time.monotonic() < done + BOUND + 0.5:
        seen = raw.hget(control, str(pod)) is not None
        read = time.monotonic()
        if done is None and seen == cordoned:
            done = read
        if mover.finished() and done is not None:
            done = min(done, mover.ended)
        routables.append(gateway.ask("routable", SERVICE))
        uids = [f"{prefix}{n + i}" for i in range(3)]
        n += 3
        placements.extend(gateway.answers("place", SERVICE, uids))
        assert time.monotonic() < deadline, "the cordon was never written"
        time.sleep(0.003)
    assert ok(mover.join())
    return done, routables, placements


def test_a_cordon_by_another_process_stops_new_placements_within_the_bound(tmp_path, real_url, raw, gateway):
    # Before: pod 1 takes its share of new users (so the check below could fail).
    before = gateway.answers("place", SERVICE, [f"pre{i}" for i in range(30)])
    assert 1 in {a["pod"] for a in before}, before

    cordon = Mover(lambda: stroute(tmp_path, real_url, "pod", "cordon", "-s", SERVICE, "--pod", "1"))
    done, routables, placements = _placements_across(gateway, cordon, raw, pod=1, cordoned=True, prefix="c")
    assert not [a for a in placements if "error" in a]
    late = [a for a in placements if a["t"] > done + BOUND]
    assert len(late) >= 30, "too few placements after the bound to tell"
    stale_routable = [r for r in routables if 1 in r["routable"] and r["t"] > done + BOUND]
    stale_placed = [a for a in late if a["pod"] == 1]
    last_seen = max((r["t"] for r in routables if 1 in r["routable"]), default=done)
    print(f"\ncordon: {len(placements)} placements, {len(late)} after the bound; pod 1 last seen routable "
          f"{max(0.0, last_seen - done) * 1000:.1f} ms after the cordon was written")
    assert not stale_routable, stale_routable[:3]
    assert not stale_placed, stale_placed[:3]

    # And the uncordon reaches it the same way: pod 1 takes new users again.
    uncordon = Mover(lambda: stroute(tmp_path, real_url, "pod", "uncordon", "-s", SERVICE, "--pod", "1"))
    done, routables, placements = _placements_across(gateway, uncordon, raw, pod=1, cordoned=False, prefix="u")
    stale_routable = [r for r in routables if 1 not in r["routable"] and r["t"] > done + BOUND]
    assert not stale_routable, stale_routable[:3]
    assert 1 in {a["pod"] for a in placements if a["t"] > done + BOUND}


# --- 4. the soak: 4 gateways, 1 mover, an invariant checker -----------------------------------------------

SOAK_SECONDS = float(os.environ.get("STROUTE_SOAK_SECONDS", "60"))
SOAK_USERS = 200
SOAK_SAMPLE = 20  # users asked of every gateway at each sample
SOAK_RATE = 20  # moves a second


def test_soak_four_gateways_agree_with_redis_after_the_bound(tmp_path, real_url, raw, store):
    uids = [f"s{i}" for i in range(SOAK_USERS)]
    for i, uid in enumerate(uids):
        store.set(NS, uid, SERVICE, i % 3)
    keys = [link_key(uid, SERVICE) for uid in uids]
    initial = {uid: i % 3 for i, uid in enumerate(uids)}
    gateways = [Gateway(tmp_path, real_url, name=f"gateway{i}") for i in range(4)]
    mover = None
    try:
        for gw in gateways:
            gw.wait_ready()
        for gw in gateways:
            assert gw.warm(SERVICE, uids) == initial
        mover = LineProcess(tmp_path, "mover", [MOVER, SERVICE, "3", str(SOAK_RATE), str(SOAK_SECONDS), "7", *uids],
                            {"STROUTE_REDIS_URL": real_url})
        assert mover.receive()["ready"]
        report = _check_until_the_mover_ends(gateways, mover, raw, uids, keys, initial)
        stats = [gw.stats() for gw in gateways]
    finally:
        if mover is not None:
            mover.close()
        for gw in gateways:
            gw.close()

    cache = sum(s["stats"]["cache"] for s in stats)
    looked_up = sum(s["stats"][k] for s in stats for k in ("cache", "existing", "new", "moved"))
    print(f"\nsoak {SOAK_SECONDS:g} s: {report['samples']} samples, {report['moves']} moves, "
          f"{report['checked']} answers checked after the bound ({report['unsettled']} within it), "
          f"disagreements within the bound {report['within']}, after the bound {len(report['after'])}; "
          f"cache hits {cache} of {looked_up} lookups; per gateway: "
          + "; ".join(f"invalidations {s['stats']['invalidations']}, flushes {s['stats']['cache_flushes']}, "
                      f"untrusted {s['stats']['untrusted_seconds']} s" for s in stats))
    assert report["moves"] >= SOAK_RATE * SOAK_SECONDS * 0.5, report["moves"]
    assert report["samples"] >= SOAK_SECONDS * 5, report["samples"]  # a sample at least every 200 ms
    assert not report["errors"], report["errors"][:5]
    assert not report["redis_mismatch"], report["redis_mismatch"][:5]
    assert not report["after"], f"gateways disagreed with Redis after the bound: {report['after'][:5]}"
    # The cache was in use all along: the agreement is not that of a driver reading Redis every time.
    assert cache >= 0.5 * looked_up, (cache, looked_up)
    assert all(s["stats"]["invalidations"] > 0 for s in stats), stats


def _check_until_the_mover_ends(gateways, mover, raw, uids, keys, initial) -> dict:
    """Every 50 ms: ask every gateway about SOAK_SAMPLE random users (placing them
    and reading their links, in turn), then read
    them from Redis. A sample is judged once the mover has reported every move
    begun before it ended (a move begun later is reported after them, in order)."""
    rng = random.Random(11)
    moves: dict[str, list[dict]] = {uid: [] for uid in uids}
    pending: list[dict] = []
    report = {"samples": 0, "moves": 0, "checked": 0, "unsettled": 0, "within": 0, "after": [], "errors": [],
              "redis_mismatch": []}
    last_t0 = float("-inf")
    ended = False

    def read_mover(block: bool) -> None:
        nonlocal last_t0, ended
        while not ended:
            try:
                record = mover.receive(timeout=30 if block else 0)
            except AssertionError:
                if block:
                    raise
                return
            if record.get("done"):
                ended = True
                assert record["moves"] == report["moves"], record
                return
            moves[record["uid"]].append(record)
            report["moves"] += 1
            last_t0 = record["t0"]

    def judge(sample: dict) -> None:
        for gw_index, answers in enumerate(sample["answers"]):
            for a in answers:
                uid = a["uid"]
                if "error" in a:
                    report["errors"].append(a)
                    continue
                begun = [m for m in moves[uid] if m["t0"] <= sample["end"]]
                expected = begun[-1]["pod"] if begun else initial[uid]
                redis_value = sample["redis"][uid]
                settled = not begun or begun[-1]["t1"] < a["t"] - BOUND
                if settled:
                    report["checked"] += 1
                    if redis_value != expected:  # the checker's own bookkeeping, checked too
                        report["redis_mismatch"].append((uid, redis_value, expected))
                    if a["pod"] != redis_value:
                        report["after"].append({"gateway": gw_index, **a, "redis": redis_value,
                                                "last_move": begun[-1] if begun else None})
                else:
                    report["unsettled"] += 1
                    if a["pod"] != redis_value:
                        report["within"] += 1

    next_sample = time.monotonic()
    while not ended:
        read_mover(block=False)
        now = time.monotonic()
        if now >= next_sample and not ended:
            sample_uids = rng.sample(uids, SOAK_SAMPLE)
            op = ("place", "get")[report["samples"] % 2]  # compute_linked_pod, then get_linked_pod
            for gw in gateways:
                gw.send(op, SERVICE, *sample_uids)
            answers = [gw.receive()["answers"] for gw in gateways]
            values = raw.mget([keys[uids.index(uid)] for uid in sample_uids])
            pending.append({"answers": answers, "end": time.monotonic(),
                            "redis": {uid: int(v) for uid, v in zip(sample_uids, values)}})
            report["samples"] += 1
            next_sample = now + 0.05
        while pending and (pending[0]["end"] < last_t0):
            judge(pending.pop(0))
        time.sleep(max(0.0, min(0.005, next_sample - time.monotonic())))
    read_mover(block=True)
    for sample in pending:  # the mover has ended: every move is known
        judge(sample)
    return report
