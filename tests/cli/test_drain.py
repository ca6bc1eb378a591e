"""`stroute pod drain -s SVC --pod N`: cordon, migrate by compare-and-set, dry run, rate, deadline.

In-process CliRunner tests run on every backend of the `url` fixture; the
drain under load runs the installed entry point as a child process against
a real redis-server while other processes keep placing users.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from ops_support import bin_env, cli, cli_json, error_lines, isolated, put_state, stroute_bin  # noqa: F401
from stroute.errors import DrainIncomplete, InvalidInput, NoAvailablePod
from stroute.operations import Drain
from stroute.podstate import RoutingState
from support import all_keys, check_invariant

pytestmark = pytest.mark.usefixtures("isolated")

FIELDS = ["schema", "namespace", "service", "pod", "links_before", "moved", "skipped", "remaining", "bad_keys"]
NO_BAD_KEYS = {"count": 0, "keys": []}
STALE_MS = 120_000  # the CLI runs with the default expiry, 60 s
# Clients see a cordon within state.refresh: 0 makes a drain's settle wait 0.5 s.
FAST = {"STROUTE_STATE_REFRESH": "0"}


def drain(url, *args, env=None):
    return cli_json("--redis-url", url, "pod", "drain", *args, env={**FAST, **(env or {})})


def pods_of(store, service="game"):
    """uid -> (pod, persistent) of every link of the service."""
    return {link.uid: (link.pod, link.persistent) for link in store.scan_links("default", service=service)}


def setup_service(store, *, temporary=6, persistent=2, ttl_ms=600_000):
    """Pods 0 and 4 routable; 1 to drain; 2 cordoned, 3 stale, 5 DRAINING, 6 DOWN."""
    client = store.client
    for pod, kwargs in {
        0: {"load": 10}, 1: {"load": 1}, 4: {"load": 10}, 2: {"load": 0}, 3: {"load": 0, "age_ms": STALE_MS},
        5: {"load": 0, "state": RoutingState.DRAINING}, 6: {"load": 0, "state": RoutingState.DOWN},
    }.items():
        put_state(client, "game", pod, **kwargs)
    store.set_cordon("default", "game", 2, True)
    for i in range(temporary):
        store.set("default", f"t{i}", "game", 1, ttl_ms)
    for i in range(persistent):
        store.set("default", f"p{i}", "game", 1)
    store.set("default", "other", "game", 0, ttl_ms)
    store.set("default", "t0", "chat", 1, ttl_ms)  # another service: never touched


# --- JSON shape and the basic effects ---------------------------------------------------------


def test_drain_without_migrate_cordons_and_counts(url, store):
    setup_service(store)
    code, data, stderr = drain(url, "game", "1")
    assert code == 0, stderr
    assert list(data) == FIELDS
    assert data == {"schema": "stroute/pod-drain/v1", "namespace": "default", "service": "game", "pod": 1,
                    "links_before": 8, "moved": 0,
                    "skipped": 0, "remaining": 8, "bad_keys": NO_BAD_KEYS}
    assert store.client.hget("sf:{default:state:game}:ctl", "1") == "cordon"
    assert "8 links stay on pod 1, still served" in stderr
    assert not error_lines(stderr)


def test_migrate_moves_temporary_links_to_routable_pods_only(url, store):
    setup_service(store)
    before = {f"t{i}": store.get("default", f"t{i}", "game").ttl_ms for i in range(6)}
    code, data, stderr = drain(url, "game", "1", "--migrate")
    assert code == 0, stderr
    assert data == {"schema": "stroute/pod-drain/v1", "namespace": "default", "service": "game", "pod": 1,
                    "links_before": 8, "moved": 6,
                    "skipped": 0, "remaining": 2, "bad_keys": NO_BAD_KEYS}
    links = pods_of(store)
    for i in range(6):
        pod, persistent = links[f"t{i}"]
        assert pod in (0, 4) and not persistent  # never the cordoned, stale, DRAINING or DOWN pods
        ttl_ms = store.get("default", f"t{i}", "game").ttl_ms
        assert before[f"t{i}"] - 5_000 < ttl_ms <= before[f"t{i}"]  # the remaining TTL is kept
    assert links["p0"] == (1, True) and links["p1"] == (1, True)
    assert links["other"] == (0, False)
    assert store.get("default", "t0", "chat").pod == 1
    assert "2 persistent links stay on pod 1" in stderr and "--include-persistent" in stderr
    check_invariant(store.client)


def test_include_persistent_moves_them_with_their_index(url, store):
    setup_service(store)
    code, data, stderr = drain(url, "game", "1", "--migrate", "--include-persistent")
    assert code == 0, stderr
    assert (data["moved"], data["remaining"]) == (8, 0)
    for uid in ("p0", "p1"):
        pod = store.get("default", uid, "game")
        assert pod.persistent and pod.pod in (0, 4)
        assert store.links_of("default", uid) == {"game": pod.pod}
    check_invariant(store.client)


def test_table_output(url, store):
    setup_service(store, persistent=0)
    result = cli("--redis-url", url, "pod", "drain", "-s", "game", "--pod", "1", "--migrate", env=FAST)
    assert result.exit_code == 0, result.stderr
    assert "pod 1 of 'game' cordoned (namespace 'default'): 6 links before" in result.stdout
    assert "moved 6 (pod 0: " in result.stdout or "moved 6 (pod 4: " in result.stdout
    assert "skipped 0 (changed meanwhile), 0 remaining" in result.stdout
    again = cli("--redis-url", url, "pod", "drain", "-s", "game", "--pod", "1", env=FAST)
    assert "was already cordoned" in again.stdout


def test_drain_spreads_links_by_effective_load(url, config, store):
    """The strategy counts the drain's own moves, as a client counts its placements."""
    put_state(store.client, "game", 0, load=0)
    put_state(store.client, "game", 1, load=0)
    put_state(store.client, "game", 2, load=0)
    for i in range(40):
        store.set("default", f"u{i}", "game", 2, 600_000)
    clock = FakeClock()  # the snapshot is re-read every 60 s of this clock: never, here
    report = Drain(store, config.with_overrides(**{"state.refresh": 60}), "game", 2, migrate=True,
                   clock=clock, sleep=clock.sleep).run()
    assert report.moved == 40
    counts = {0: 0, 1: 0}
    for pod, _ in pods_of(store).values():
        counts[pod] += 1
    assert abs(counts[0] - counts[1]) <= 2, counts


# --- dry run ------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [(), ("--migrate",), ("--migrate", "--include-persistent")])
def test_dry_run_changes_nothing_not_even_the_cordon(url, store, extra):
    setup_service(store)
    before = all_keys(store.client)
    code, data, stderr = drain(url, "game", "1", "--dry-run", *extra)
    assert code == 0, stderr
    assert all_keys(store.client) == before
    moved = {(): 0, ("--migrate",): 6, ("--migrate", "--include-persistent"): 8}[extra]
    assert data == {"schema": "stroute/pod-drain/v1", "namespace": "default", "service": "game", "pod": 1,
                    "links_before": 8, "moved": moved,
                    "skipped": 0, "remaining": 8 - moved, "bad_keys": NO_BAD_KEYS}


def test_dry_run_table_says_what_it_would_do(url, store):
    setup_service(store)
    result = cli("--redis-url", url, "pod", "drain", "-s", "game", "--pod", "1", "--migrate", "--dry-run", env=FAST)
    assert result.exit_code == 0
    assert "dry run, nothing changed: would cordon pod 1 of 'game'" in result.stdout
    assert "would move 6 of its 8 links" in result.stdout and "2 would stay" in result.stdout


# --- refusals -----------------------------------------------------------------------------------


def test_no_routable_target_is_exit_5_and_changes_nothing(url, store):
    put_state(store.client, "game", 1)
    put_state(store.client, "game", 2, state=RoutingState.DRAINING)
    store.set("default", "u", "game", 1, 600_000)
    before = all_keys(store.client)
    code, data, stderr = drain(url, "game", "1", "--migrate")
    assert (code, data) == (5, None)
    assert "no other routable pod" in stderr and "nothing changed" in stderr
    assert len(error_lines(stderr)) == 1
    assert all_keys(store.client) == before


@pytest.mark.parametrize("args, message", [
    (("--include-persistent",), "--include-persistent only applies with --migrate"),
    (("--migrate", "--rate", "0"), "invalid --rate '0'"),
    (("--migrate", "--rate", "fast"), "invalid --rate 'fast'"),
    (("--deadline", "-1"), "invalid --deadline '-1'"),
    (("--deadline", "inf"), "invalid --deadline 'inf'"),
])
def test_bad_options_are_exit_2_and_change_nothing(url, store, args, message):
    setup_service(store)
    before = all_keys(store.client)
    code, _, stderr = drain(url, "game", "1", *args)
    assert code == 2 and message in stderr, stderr
    assert all_keys(store.client) == before


@pytest.mark.parametrize("svc, pod, message", [("bad:svc", "1", "invalid service"), ("game", "70000", "invalid pod"), ("game", "x", "invalid pod")])
def test_bad_names_are_exit_2(url, svc, pod, message):
    code, _, stderr = drain(url, svc, pod)
    assert code == 2 and message in stderr


# --- compare-and-set: a link that changed meanwhile is skipped ----------------------------------


class ChangesAfterScan:
    """A store whose first scan is followed by another writer's change."""

    def __init__(self, store, change):
        self._store = store
        self._change = change
        self._done = False

    def __getattr__(self, name):
        return getattr(self._store, name)

    def scan_links(self, *args, **kwargs):
        links = list(self._store.scan_links(*args, **kwargs))
        if not self._done:
            self._done = True
            self._change(self._store)
        return iter(links)


def test_a_link_that_changed_meanwhile_is_skipped_not_overwritten(url, config, store):
    setup_service(store, persistent=0)

    def change(s):
        s.set("default", "t0", "game", 5, 600_000)  # the user moved elsewhere
        s.remove("default", "t1", "game")  # the user left

    report = Drain(ChangesAfterScan(store, change), config, "game", 1, migrate=True).run()
    assert (report.links_before, report.moved, report.skipped, report.remaining) == (6, 4, 2, 0)
    assert store.get("default", "t0", "game").pod == 5
    assert store.get("default", "t1", "game") is None
    check_invariant(store.client)


def test_links_that_arrive_during_the_drain_are_moved_by_a_later_pass(url, config, store):
    setup_service(store, persistent=0)

    def arrive(s):
        s.set("default", "late", "game", 1, 600_000)  # placed by a client with an old snapshot

    report = Drain(ChangesAfterScan(store, arrive), config, "game", 1, migrate=True).run()
    assert (report.links_before, report.moved, report.remaining) == (6, 7, 0)
    assert store.get("default", "late", "game").pod in (0, 4)


def test_targets_running_out_mid_drain_stops_with_the_report(url, config, store, monkeypatch):
    import stroute.operations

    monkeypatch.setattr(stroute.operations, "BATCH", 2)
    setup_service(store, persistent=0)
    batches = []

    class Cordons:
        def __getattr__(self, name):
            return getattr(store, name)

        def move_many(self, namespace, service, moves):
            batches.append(moves)
            replies = store.move_many(namespace, service, moves)
            if len(batches) == 1:  # an operator cordons both targets meanwhile
                store.set_cordon("default", "game", 0, True)
                store.set_cordon("default", "game", 4, True)
            return replies

    report = Drain(Cordons(), config, "game", 1, migrate=True).run()
    assert isinstance(report.error, NoAvailablePod)
    assert (report.moved, report.remaining) == (2, 4)


# --- rate and deadline --------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_rate_paces_the_moves(url, config, store):
    setup_service(store, temporary=10, persistent=0)
    clock = FakeClock()
    times = []

    class Timed:
        def __getattr__(self, name):
            return getattr(store, name)

        def move_many(self, namespace, service, moves):
            times.extend(clock.now for _ in moves)
            return store.move_many(namespace, service, moves)

    report = Drain(Timed(), config, "game", 1, migrate=True, rate=4, clock=clock, sleep=clock.sleep).run()
    assert report.moved == 10
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(gap >= 0.25 - 1e-9 for gap in gaps), gaps
    assert times[-1] - times[0] == pytest.approx(9 * 0.25)


def test_deadline_stops_the_moves(url, config, store):
    setup_service(store, temporary=10, persistent=0)
    clock = FakeClock()
    report = Drain(store, config, "game", 1, migrate=True, rate=4, deadline=1.0, clock=clock,
                   sleep=clock.sleep).run()
    assert report.deadline_reached and isinstance(report.error, DrainIncomplete)
    assert report.moved == 4  # at 0, 0.25, 0.5 and 0.75 s
    assert report.remaining == 6 and report.to_move == 6
    assert clock.now == pytest.approx(1001.0)


def test_rate_and_deadline_from_the_command_line(url, store):
    setup_service(store, temporary=20, persistent=0)
    started = time.monotonic()
    code, data, stderr = drain(url, "game", "1", "--migrate", "--rate", "20", "--deadline", "0.4")
    elapsed = time.monotonic() - started
    assert code == 1, stderr
    assert 0 < data["moved"] < 20 and data["moved"] + data["remaining"] == 20
    assert f"deadline of 0.4 s reached with {data['remaining']} links still to move off pod 1" in stderr
    assert len(error_lines(stderr)) == 1
    assert elapsed < 10
    # Running it again finishes the job.
    code, data, _ = drain(url, "game", "1", "--migrate")
    assert (code, data["remaining"]) == (0, 0)


def test_without_migrate_a_deadline_waits_for_links_to_leave(url, store):
    put_state(store.client, "game", 0)
    put_state(store.client, "game", 1)
    for i in range(3):
        store.set("default", f"t{i}", "game", 1, 300)  # expire on their own
    code, data, stderr = drain(url, "game", "1", "--deadline", "20")
    assert code == 0, stderr
    assert (data["links_before"], data["remaining"]) == (3, 0)


def test_without_migrate_the_deadline_passing_is_exit_1(url, store):
    setup_service(store, temporary=0, persistent=1)
    code, data, stderr = drain(url, "game", "1", "--deadline", "0.2")
    assert code == 1 and data["remaining"] == 1
    assert "deadline of 0.2 s reached with 1 link still on pod 1 of 'game'" in stderr
    assert "add --migrate" in stderr


def test_core_refuses_bad_arguments(config, store):
    with pytest.raises(InvalidInput):
        Drain(store, config, "game", 1, include_persistent=True)
    with pytest.raises(InvalidInput):
        Drain(store, config, "game", 1, migrate=True, rate=0)
    with pytest.raises(InvalidInput):
        Drain(store, config, "game", 1, deadline=-1)
    with pytest.raises(InvalidInput):
        Drain(store, config, "game", 70000)


# --- progress ---------------------------------------------------------------------------------------


def test_progress_bar_on_a_terminal(monkeypatch):
    import io

    from stroute.cli import progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.delenv("NO_COLOR", raising=False)
    bar = progress.Bar("links on pod 1")
    bar.update(10, 4, "4 moved, 0 skipped")
    bar.update(10, 10, "10 moved, 0 skipped")
    bar.stop()
    assert "links on pod 1" in err.getvalue()


# --- under load: other processes keep placing users --------------------------------------------

PLACER = textwrap.dedent("""
    import json, os, sys
    from stroute.client import ClientDriver
    from stroute.errors import StrouteError
    name, stop = sys.argv[1], sys.argv[2]
    existing = [f"t{i}" for i in range(0, 300, 7)]
    placed = {}
    with ClientDriver() as driver:
        i = 0
        while not os.path.exists(stop):
            uid = f"{name}-{i}" if i % 3 else existing[(i // 3) % len(existing)]
            try:
                placed[uid] = driver.place(uid, "game").pod
            except StrouteError as exc:
                placed[uid] = str(exc)
            i += 1
            if i % 50 == 0:
                print("placed", i, flush=True)
    print(json.dumps(placed), flush=True)
""")


@pytest.mark.realserver
def test_drain_while_other_processes_place_users(real_url, redis_server, tmp_path):
    from stroute.store import Store

    store = Store.from_url(real_url)
    try:
        setup_service(store, temporary=300, persistent=20)
        for i in range(100):
            store.set("default", f"z{i}", "game", 0, 600_000)
        before = pods_of(store)
        env = bin_env(tmp_path, STROUTE_REDIS_URL=real_url, STROUTE_STATE_REFRESH="0",
                      STROUTE_LINKS_TEMP_TTL="600")
        stop = tmp_path / "stop"
        placers = [
            subprocess.Popen([sys.executable, "-c", PLACER, f"c{n}", str(stop)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
            for n in range(3)
        ]
        try:
            for placer in placers:  # each is placing before the drain starts
                line = placer.stdout.readline()
                assert line.startswith("placed"), placer.stderr.read()
            result = subprocess.run([stroute_bin(), "-o", "json", "pod", "drain", "-s", "game", "--pod", "1",
                                     "--migrate"],
                                    capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
            # Keep placing a little after the drain, then stop.
            for placer in placers:
                line = placer.stdout.readline()
                assert line.startswith("placed"), placer.stderr.read()
        finally:
            stop.touch()
        outputs = []
        for placer in placers:
            out, err = placer.communicate(timeout=60)
            assert placer.returncode == 0, err
            outputs.append(json.loads(out.strip().splitlines()[-1]))
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        after = pods_of(store)

        # No link lost: every user there before is still linked, and every user a placer placed.
        assert set(before) <= set(after)
        placed = {uid: pod for out in outputs for uid, pod in out.items()}
        assert all(isinstance(pod, int) for pod in placed.values()), placed
        assert set(placed) <= set(after)
        # None duplicated: one link per user, and the persistent index agrees with the links.
        check_invariant(store.client)
        # Nothing moved onto (or placed on) a cordoned, stale, DRAINING or DOWN pod.
        assert {pod for pod, _ in after.values()} <= {0, 1, 4}
        # Pod 1 keeps only its persistent links; the drain's report says so.
        on_1 = {uid for uid, (pod, _) in after.items() if pod == 1}
        assert on_1 == {f"p{i}" for i in range(20)}
        assert report["remaining"] == 20 and report["links_before"] >= 320
        assert report["moved"] >= 300
        # Links not on pod 1 were never touched by the drain.
        for uid, (pod, _) in before.items():
            if pod != 1:
                assert after[uid][0] == pod
        for uid, pod in placed.items():
            if pod != 1 and not uid.startswith("t"):
                assert after[uid][0] == pod, uid
        # Moved links stayed temporary and kept their (long) TTL.
        for i in range(300):
            link = store.get("default", f"t{i}", "game")
            assert not link.persistent and link.ttl_ms > 500_000
    finally:
        store.close()
