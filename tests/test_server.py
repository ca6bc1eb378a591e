"""The server driver: heartbeats, lifecycle, outages, config checks, link ops."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from stroute.config import Config, ServerConfig, StateConfig
from stroute.errors import ConfigError, InvalidInput, NamespaceMismatch
from stroute.podstate import RoutingState
from stroute.server import ServerDriver

from stroute.testing import RedisServer
from support import all_keys, check_invariant, wait_until

NS = "default"
READY, DRAINING, DOWN = RoutingState.READY, RoutingState.DRAINING, RoutingState.DOWN


@pytest.fixture
def servers(store):
    """Server drivers made by a test; stopped at its end whatever happens
    (before the shared store closes: a closed cluster client cannot reconnect)."""
    made: list[ServerDriver] = []
    yield made
    for server in made:
        server.stop_now()
        server.close()


def start(servers, config, store, service="lobby", pod=0, **kwargs) -> ServerDriver:
    server = ServerDriver(service, pod, config, store=store, **kwargs)
    servers.append(server)
    server.set_load_state(10)
    server.start()
    return server


def view(store, pod=0, service="lobby", expire_ms=1000):
    return store.snapshot(NS, service, expire_ms=expire_ms).pods.get(pod)


def state_is(store, state: RoutingState, pod=0):
    """A predicate for wait_until: the pod's view once it shows `state` (fresh)."""
    return lambda: (v := view(store, pod)) is not None and v.state is state and not v.stale and v


# --- lifecycle --------------------------------------------------------------------------------------


def test_ready_then_draining_then_down(servers, config, store):
    server = start(servers, config, store)
    first = wait_until(lambda: view(store), what="the first heartbeat")
    assert first.state is READY and first.routable and first.load == 10 and first.epoch == server.epoch
    # Heartbeats keep coming every period.
    wait_until(lambda: view(store).heartbeat_ms > first.heartbeat_ms, timeout=5, what="a second heartbeat")
    wait_until(lambda: server.heartbeats_ok >= 2, timeout=5, what="the driver to count it")
    assert server.running

    stopper = threading.Thread(target=server.stop, args=(0.6,))
    began = time.monotonic()
    stopper.start()
    draining = wait_until(state_is(store, DRAINING), timeout=5, what="DRAINING")
    assert draining.alive and not draining.routable
    wait_until(state_is(store, DOWN), timeout=10, what="DOWN")
    assert time.monotonic() - began >= 0.6  # DOWN only after the drain window
    stopper.join(timeout=5)
    assert not stopper.is_alive() and not server.running
    assert server.get_routing_state() is DOWN
    assert not view(store).alive


def test_stop_now_cuts_the_drain_short(servers, config, store):
    server = start(servers, config, store)
    wait_until(state_is(store, READY), what="READY")
    stopper = threading.Thread(target=server.stop, args=(60,))
    stopper.start()
    wait_until(state_is(store, DRAINING), timeout=5, what="DRAINING")
    began = time.monotonic()
    server.stop_now()
    stopper.join(timeout=10)
    assert not stopper.is_alive()
    assert time.monotonic() - began < 5
    assert view(store).state is DOWN


def test_stop_without_drain_goes_down_at_once(servers, config, store):
    server = start(servers, config, store)
    wait_until(state_is(store, READY), what="READY")
    server.close()
    assert view(store).state is DOWN and not server.running


def test_routing_state_change_is_published_at_once(servers, config, store):
    long_period = config.with_overrides(**{"state.period": 30, "state.expire": 60})
    server = start(servers, long_period, store)
    wait_until(lambda: view(store, expire_ms=60_000), what="the first heartbeat")
    server.set_routing_state("draining")
    wait_until(lambda: view(store, expire_ms=60_000).state is DRAINING, timeout=5, what="DRAINING")
    server.set_routing_state(READY)
    wait_until(lambda: view(store, expire_ms=60_000).state is READY, timeout=5, what="READY")
    with pytest.raises(InvalidInput, match="'SLEEPY'"):
        server.set_routing_state("SLEEPY")


def test_a_dead_server_goes_stale(servers, config, store):
    server = start(servers, config, store)
    wait_until(state_is(store, READY), what="READY")
    server._halt.set()  # the process "dies": heartbeats stop without a goodbye
    server._wake.set()
    wait_until(lambda: not server.running, what="the heartbeat thread to end")
    stale = wait_until(lambda: (v := view(store)) is not None and v.stale and v, timeout=5, what="STALE")
    assert stale.display_state == "STALE" and not stale.alive


# --- what a heartbeat carries ---------------------------------------------------------------------------------


def test_load_sources(config, store):
    loads = iter([5, 6, "bad", 7])
    server = ServerDriver("lobby", 1, config, store=store, load_source=lambda: next(loads))
    # No reading yet: the load is unknown, so the pod is not offered to new users.
    assert server.get_load_state() == 0
    assert server.publishing() == (DRAINING, "no load yet: waiting for the first reading of the load source")
    assert server.read_load() == 5 and server.get_load_state() == 5 and server.publishing() == (READY, None)
    assert server.read_load() == 6
    assert server.read_load() is None  # "bad": the last good load is kept, and the reason says so
    assert server.get_load_state() == 6 and server.publishing()[0] is READY
    assert server.load_problem.startswith("load source failing, publishing the last good load 6: invalid load 'bad'")
    server.set_load_state(0)
    assert server.get_load_state() == 0 and server.load_problem is None  # a set value wins over the source
    server.publish()
    assert view(store, 1).load == 0
    for bad in (-1, True, "x", 2**60):
        with pytest.raises(InvalidInput):
            server.set_load_state(bad)
    plain = ServerDriver("lobby", 2, config.with_overrides(**{"server.cpu_factor": 0}), store=store)
    assert plain.get_load_state() == 0 and plain.publishing()[0] is READY  # cpu_factor 0: CPU does not count


def test_no_load_average_is_an_unknown_load(config, store, monkeypatch):
    import os

    def unavailable():
        raise OSError("no /proc/loadavg")

    monkeypatch.setattr(os, "getloadavg", unavailable)
    server = ServerDriver("lobby", 0, config, store=store)
    server.publish()
    published = view(store)
    assert (published.state, published.load) == (DRAINING, 0)
    assert notes(store).reason == "no load yet: the host's load average is not available (os.getloadavg failed)"


def notes(store, pod=0, service="lobby"):
    from stroute.podstate import PodNotes

    return store.pod_notes(NS, service).get(pod, PodNotes())


def test_a_load_source_that_never_works_publishes_draining_with_its_reason(servers, config, store):
    def broken() -> int:
        raise RuntimeError("sensor gone")

    server = ServerDriver("lobby", 0, config, store=store, load_source=broken)
    servers.append(server)
    server.start()
    first = wait_until(state_is(store, DRAINING), what="DRAINING: no load yet")
    assert first.alive and not first.routable and first.load == 0
    assert notes(store).reason == "no load yet: sensor gone"
    # Heartbeats go on: the pod is alive, just not offered to new users.
    wait_until(lambda: view(store).heartbeat_ms > first.heartbeat_ms, timeout=5, what="another heartbeat")
    assert view(store).state is DRAINING


def test_a_hanging_load_source_never_delays_a_heartbeat(servers, config, store):
    release = threading.Event()
    readings = iter([3])

    def slow() -> int:
        release.wait(30)
        return next(readings, 4)

    server = ServerDriver("lobby", 0, config, store=store, load_source=slow)  # period 0.2 s, expire 1 s
    servers.append(server)
    server.start()
    first = wait_until(state_is(store, DRAINING), what="DRAINING while the first reading hangs")
    assert notes(store).reason == "no load yet: waiting for the first reading of the load source"
    # Five more heartbeats while the source still hangs: none waited for it.
    beats = [first.heartbeat_ms]
    for _ in range(5):
        wait_until(lambda: view(store).heartbeat_ms > beats[-1], timeout=2, what="the next heartbeat")
        beats.append(view(store).heartbeat_ms)
    assert not view(store).stale
    release.set()
    ready = wait_until(state_is(store, READY), what="READY once the load is known")
    assert ready.load in (3, 4)
    wait_until(lambda: notes(store).reason is None, what="the reason note to go")


def test_a_failing_source_keeps_the_last_good_load_and_says_so(servers, config, store):
    loads = iter([12])

    def source() -> int:
        value = next(loads, None)
        if value is None:
            raise RuntimeError("probe failed")
        return value

    server = ServerDriver("lobby", 0, config, store=store, load_source=source)
    servers.append(server)
    server.start()
    wait_until(lambda: notes(store).reason is not None and view(store), what="the failure noted")
    ready = view(store)
    assert (ready.state, ready.load) == (READY, 12)
    assert notes(store).reason == "load source failing, publishing the last good load 12: probe failed"


def test_pod_zero_publishes_the_workload_summary(servers, config, store):
    one = start(servers, config, store, pod=1)
    wait_until(state_is(store, READY, pod=1), what="pod 1")
    assert store.workload(NS, "lobby") is None  # pod 1 does not summarise
    start(servers, config, store, pod=0)
    wait_until(lambda: store.workload(NS, "lobby") == "READY", what="READY summary")
    one.set_routing_state(DRAINING)
    wait_until(lambda: store.workload(NS, "lobby") == "DEGRADED", what="DEGRADED summary")
    assert store.services(NS) == ["lobby"]


def test_operator_cordon_reaches_the_pod(servers, config, store):
    server = start(servers, config, store, pod=3)
    wait_until(state_is(store, READY, pod=3), what="READY")
    assert not server.cordoned
    store.set_cordon(NS, "lobby", 3, True)
    wait_until(lambda: server.cordoned, timeout=5, what="the pod to see its cordon")
    snap = view(store, 3)
    assert snap.cordoned and not snap.routable and snap.state is READY
    store.set_cordon(NS, "lobby", 3, False)
    wait_until(lambda: not server.cordoned, timeout=5, what="the cordon to lift")


def test_a_restarted_pod_gets_a_new_epoch(servers, config, store):
    server = start(servers, config, store)
    first = wait_until(lambda: view(store), what="a heartbeat").epoch
    server.stop(0)
    wait_until(lambda: time.time() * 1000 > first + 1, what="the clock to move")
    server.start()
    # A stopped driver started again is a new incarnation that takes users.
    wait_until(lambda: (v := view(store)) and v.epoch != first, what="the new epoch")
    assert view(store).epoch > first
    wait_until(state_is(store, READY), what="READY again")


# --- Redis outages ---------------------------------------------------------------------------------------------


@pytest.mark.realserver
def test_keeps_running_through_a_redis_restart(servers):
    dedicated = RedisServer().start()
    try:
        cfg = Config().with_overrides(**{
            "redis.url": dedicated.url, "redis.socket_timeout": 1, "state.period": 0.1, "state.expire": 1,
        })
        store = cfg.open_store()
        raw = dedicated.client()
        server = ServerDriver("lobby", 0, cfg, store=store)
        servers.append(server)
        server.set_load_state(1)
        server.start()
        # The driver's own record: pod 0's heartbeat is two round trips (its
        # state, then the workload summary), and Redis shows the first early.
        wait_until(lambda: server.last_heartbeat_ms is not None, what="the first heartbeat")

        dedicated.stop()
        failed = server.heartbeats_failed
        wait_until(lambda: server.heartbeats_failed > failed, what="a failed heartbeat while Redis is down")
        assert server.running
        last_ok = server.last_heartbeat_ms

        dedicated.start()  # the same port, an empty database
        raw = dedicated.client()
        wait_until(lambda: raw.hget("sf:{default:state:lobby}", "0"), timeout=10, what="heartbeats to resume")
        wait_until(lambda: server.last_heartbeat_ms > last_ok, what="the heartbeat time to advance")
        assert server.running
        assert raw.smembers("sf:{default}:services") == {"lobby"}
        assert view(store).state is READY

        dedicated.restart()
        raw = dedicated.client()
        before = server.heartbeats_ok
        wait_until(lambda: raw.hget("sf:{default:state:lobby}", "0") and server.heartbeats_ok > before,
                   timeout=10, what="heartbeats after restart()")
        server.stop(0)
        assert view(store).state is DOWN
        store.close()
        raw.close()
    finally:
        dedicated.close()


@pytest.mark.realserver
def test_stop_does_not_hang_when_redis_is_gone(servers):
    dedicated = RedisServer().start()
    try:
        cfg = Config().with_overrides(**{"redis.url": dedicated.url, "redis.socket_timeout": 1,
                                         "state.period": 0.1, "state.expire": 1})
        server = ServerDriver("lobby", 0, cfg)
        servers.append(server)
        server.start()
        wait_until(lambda: server.heartbeats_ok, what="a heartbeat")
        dedicated.stop()
        began = time.monotonic()
        server.stop(0.3)
        assert time.monotonic() - began < 0.3 + 2 * cfg.redis.socket_timeout + 1
        assert not server.running and server.heartbeats_failed >= 1
    finally:
        dedicated.close()


# --- config checks ---------------------------------------------------------------------------------------------


def _by_hand(config: Config, **state_or_server) -> Config:
    """A Config that skipped validation (built by hand), as the seed's checks expect."""
    state = dataclasses.replace(config.state, **{k: v for k, v in state_or_server.items() if k in
                                                 {f.name for f in dataclasses.fields(StateConfig)}})
    server = dataclasses.replace(config.server, **{k: v for k, v in state_or_server.items() if k in
                                                   {f.name for f in dataclasses.fields(ServerConfig)}})
    return dataclasses.replace(config, state=state, server=server)


@pytest.mark.parametrize(
    "changes,needles",
    [
        ({"period": 0}, ["state.period", "0"]),
        ({"period": -1}, ["state.period", "-1"]),
        ({"period": 2.0, "expire": 1.0}, ["state.period", "2.0", "state.expire"]),
        ({"cpu_factor": 1.5}, ["server.cpu_factor", "1.5"]),
        ({"cpu_factor": -0.5}, ["server.cpu_factor", "-0.5"]),
    ],
)
def test_config_checks_name_the_key(config, store, changes, needles):
    before = all_keys(store.client)
    with pytest.raises(ConfigError) as info:
        ServerDriver("lobby", 0, _by_hand(config, **changes), store=store)
    assert info.value.exit_code == 2
    for needle in needles:
        assert needle in str(info.value)
    assert all_keys(store.client) == before
    with pytest.raises(ConfigError) as info:  # the same rules when the config is built normally
        config.with_overrides(**{("server." if "cpu_factor" in k else "state.") + k: v for k, v in changes.items()})
    assert needles[0] in str(info.value)


def test_period_equal_to_expire_is_fine(config, store):
    ServerDriver("lobby", 0, _by_hand(config, period=1.0, expire=1.0), store=store)


# --- the pod's own links ----------------------------------------------------------------------------------------


def test_link_operations(config, store):
    server = ServerDriver("lobby", 0, config, store=store)
    raw = store.client
    assert server.set_linked_pod(NS, "u", "lobby") is None  # this pod (0) by default
    assert store.get(NS, "u", "lobby").pod == 0 and store.get(NS, "u", "lobby").persistent
    assert server.set_linked_pod(NS, "u", "lobby", 2, ttl=30) == 0
    assert 0 < store.get(NS, "u", "lobby").ttl_ms <= 30_000
    assert server.try_set_linked_pod(NS, "v", "lobby") == (True, 0)
    assert server.try_set_linked_pod(NS, "v", "lobby", 4) == (False, 0)
    assert server.remove_linked_pod_with_id(NS, "v", "lobby", 4) is False  # fencing: not pod 4's link
    assert store.get(NS, "v", "lobby").pod == 0
    assert server.remove_linked_pod_with_id(NS, "v", "lobby") is True
    assert store.get(NS, "v", "lobby") is None
    assert server.remove_linked_pod(NS, "v", "lobby") is False
    server.set_linked_pod(NS, "w", "lobby")
    assert server.remove_linked_pod(NS, "w", "lobby", after=20) is True
    assert 0 < raw.pttl("sf:{default:lk:w}lobby") <= 20_000 and raw.hget("sf:{default:lk:w}", "lobby") is None
    check_invariant(raw)
    server.set_linked_pod(NS, "d", "lobby")
    assert server.remove_linked_pod(NS, "d", "lobby", delayed=True) is True  # links.remove_delay: 60 s
    assert 55_000 < raw.pttl("sf:{default:lk:d}lobby") <= 60_000
    with pytest.raises(InvalidInput, match="not both"):
        server.remove_linked_pod_with_id(NS, "w", "lobby", after=5, delayed=True)
    with pytest.raises(NamespaceMismatch):
        server.remove_linked_pod("prod", "w", "lobby")
    assert raw.exists("sf:{default:lk:w}lobby") == 1


# --- one instance per pod -------------------------------------------------------------------------------------


def field(store, pod=0, service="lobby"):
    return store.client.hget(f"sf:{{{NS}:state:{service}}}", str(pod))


@pytest.mark.parametrize("claim", ["start", "continue", "force"])
def test_publish_claims_refuse_a_foreign_epoch_and_write_nothing(store, claim):
    from support import put_state

    put_state(store.client, "lobby", 0, load=5, epoch=111)  # alive, another epoch
    before = field(store)
    published = store.publish_state(NS, "lobby", 0, load=1, state=READY, epoch=222, expire_ms=1000, claim=claim,
                                    reason="r")
    assert published.previous.epoch == 111
    if claim == "force":
        assert published.written and field(store).endswith("-1-222")
        assert notes(store).reason == "r" and [e for _, e in notes(store).epochs] == [222]
    else:
        assert not published.written and field(store) == before and notes(store).reason is None


def test_publish_claims_on_dead_epochless_and_own_fields(store):
    from support import put_state

    # A stale or DOWN field of another epoch: a start takes it; a continue does not.
    put_state(store.client, "lobby", 0, epoch=111, age_ms=5_000)
    assert store.publish_state(NS, "lobby", 0, load=1, state=READY, epoch=222, expire_ms=1000, claim="start").written
    put_state(store.client, "lobby", 1, epoch=111, state=DOWN)
    assert store.publish_state(NS, "lobby", 1, load=1, state=READY, epoch=222, expire_ms=1000, claim="start").written
    assert not store.publish_state(NS, "lobby", 1, load=1, state=READY, epoch=333, expire_ms=1000,
                                   claim="continue").written
    # A field without an epoch (an original driver, serve --once) names no instance: never refused.
    put_state(store.client, "lobby", 2)
    for claim in ("start", "continue"):
        assert store.publish_state(NS, "lobby", 2, load=1, state=READY, epoch=None, expire_ms=1000,
                                   claim=claim).written
    put_state(store.client, "lobby", 2)
    assert store.publish_state(NS, "lobby", 2, load=1, state=READY, epoch=444, expire_ms=1000, claim="continue").written
    # Its own epoch: always written; the epoch history records each epoch once.
    for _ in range(3):
        assert store.publish_state(NS, "lobby", 2, load=1, state=READY, epoch=444, expire_ms=1000,
                                   claim="continue").written
    assert [e for _, e in notes(store, 2).epochs] == [444]
    with pytest.raises(InvalidInput, match="claim"):
        store.publish_state(NS, "lobby", 2, load=1, state=READY, epoch=444, expire_ms=1000, claim="steal")


def test_a_second_instance_refuses_to_start_and_takeover_stops_the_first(servers, config, store):
    from stroute.errors import PodClaimed

    # A long expiry: on a busy machine a late heartbeat must not make the first instance look dead.
    config = config.with_overrides(**{"state.expire": 30})

    first = start(servers, config, store, pod=2)
    wait_until(state_is(store, READY, pod=2), what="the first instance READY")
    second = start(servers, config, store, pod=2)
    wait_until(lambda: second.claimed_by is not None, what="the second instance to refuse")
    assert isinstance(second.claimed_by, PodClaimed) and second.claimed_by.exit_code == 4
    assert second.claimed_by.epoch == first.epoch and second.claimed_by.heartbeat_age_ms < 30_000
    assert f"alive under another epoch {first.epoch}" in str(second.claimed_by)
    assert not second.running and second.heartbeats_ok == 0
    assert view(store, 2).epoch == first.epoch  # nothing of the second reached the field
    second.stop(0)  # a refused instance publishes nothing on stop either
    assert view(store, 2).epoch == first.epoch and view(store, 2).state is READY

    third = ServerDriver("lobby", 2, config, store=store)
    servers.append(third)
    third.set_load_state(3)
    third.start(takeover=True)
    wait_until(lambda: first.claimed_by is not None, what="the first instance to see the takeover")
    assert "was taken over by another instance" in str(first.claimed_by)
    assert first.claimed_by.epoch == third.epoch
    wait_until(lambda: not first.running, what="the first instance to stop publishing")
    first.stop(0)  # writes nothing: the field is the third's
    taken = wait_until(lambda: (v := view(store, 2)) and v.epoch == third.epoch and v.load == 3 and v,
                       what="the third instance's heartbeats")
    assert taken.state is READY and third.claimed_by is None
    wait_until(lambda: view(store, 2).heartbeat_ms > taken.heartbeat_ms, what="more heartbeats of the third")
    assert view(store, 2).epoch == third.epoch
    assert [e for _, e in notes(store, 2).epochs][:2] == [third.epoch, first.epoch]


def test_an_epochless_field_never_blocks_a_start(servers, config, store, caplog):
    from support import put_state

    put_state(store.client, "lobby", 0, load=9)  # alive, no epoch: an original Go/Java driver
    server = start(servers, config, store)
    wait_until(lambda: (v := view(store)) and v.epoch == server.epoch, what="the field taken")
    wait_until(lambda: "replaced a state field without an epoch" in caplog.text, what="the warning")
    assert server.claimed_by is None


def test_restarts_show_as_a_changing_epoch(servers, config, store):
    server = start(servers, config, store)
    epochs = []
    for _ in range(3):
        wait_until(lambda: (v := view(store)) and v.epoch == server.epoch, what="the new epoch")
        epochs.append(server.epoch)
        server.stop(0)
        wait_until(lambda: time.time() * 1000 > server.epoch + 1, what="the clock to move")
        server.start()
    wait_until(lambda: (v := view(store)) and v.epoch == server.epoch, what="the fourth epoch")
    history = notes(store)
    assert [e for _, e in history.epochs] == [server.epoch, *reversed(epochs)]
    now = store.snapshot(NS, "lobby", expire_ms=1000).now_ms
    assert history.recent_epochs(now) == 4 and history.flapping(now)
    assert not history.flapping(now + 11 * 60 * 1000)  # ten minutes later it has settled


# --- stop budget ---------------------------------------------------------------------------------------------


def test_run_until_signalled_needs_the_main_thread(config, store):
    server = ServerDriver("lobby", 0, config, store=store)
    failure: list[BaseException] = []
    worker = threading.Thread(target=lambda: _catch(failure, server.run_until_signalled))
    worker.start()
    worker.join(10)
    assert isinstance(failure[0], InvalidInput) and "main thread" in str(failure[0])
    assert not server.running


def _catch(sink, fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 (handed to the test)
        sink.append(exc)


@pytest.mark.realserver
def test_stop_is_bounded_when_redis_hangs():
    """A Redis stopped with SIGSTOP answers nothing: stop() still ends within drain + STOP_GRACE_S."""
    import os
    import signal

    from stroute.server import HURRY_S, STOP_GRACE_S

    dedicated = RedisServer().start()
    stopped = False
    try:
        cfg = Config().with_overrides(**{"redis.url": dedicated.url, "redis.socket_timeout": 30,
                                         "state.period": 0.1, "state.expire": 1})
        for pod, drain, hurry in ((0, 0.5, False), (1, 30, True)):
            server = ServerDriver("lobby", pod, cfg)
            server.set_load_state(1)
            server.start()
            wait_until(lambda: server.heartbeats_ok, what="a heartbeat")
            os.kill(dedicated.process.pid, signal.SIGSTOP)
            stopped = True
            began = time.monotonic()
            if hurry:  # stop_now() during the drain window: DOWN gets HURRY_S
                threading.Timer(0.5, server.stop_now).start()
            server.stop(drain)
            took = time.monotonic() - began
            budget = (0.5 + HURRY_S) if hurry else (drain + STOP_GRACE_S)
            assert took < budget + 0.5, f"stop took {took:.2f} s, budget {budget} s"
            assert not server.running
            os.kill(dedicated.process.pid, signal.SIGCONT)
            stopped = False
            # The publishes given up were only waited for, not undone: once
            # Redis answers again they land, DOWN last.
            raw = dedicated.client()
            wait_until(lambda: (v := raw.hget("sf:{default:state:lobby}", str(pod))) and v.split("-")[2] == "0",
                       what="the late DOWN")
            raw.close()
            server.close()
    finally:
        if stopped:
            os.kill(dedicated.process.pid, signal.SIGCONT)
        dedicated.close()


def test_run_until_signalled_in_an_embedding_application(servers, config, store):
    """The lifecycle in this process: an application's own SIGUSR1 handler is left
    alone, SIGTERM is a warm stop, and every handler is back afterwards."""
    import os
    import signal

    seen: list[int] = []
    mine = lambda signum, frame: seen.append(signum)  # noqa: E731
    before_usr1 = signal.signal(signal.SIGUSR1, mine)
    before_term, before_hup = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    server = ServerDriver("lobby", 5, config, store=store)
    servers.append(server)
    server.set_load_state(2)

    def operator():
        wait_until(state_is(store, READY, pod=5), what="READY")
        os.kill(os.getpid(), signal.SIGUSR1)
        wait_until(lambda: seen, what="the application's handler")
        os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=operator, daemon=True)
    helper.start()
    try:
        assert server.run_until_signalled(drain_seconds=0.3) == signal.SIGTERM
        helper.join(10)
        assert seen == [signal.SIGUSR1]
        assert view(store, 5).state is DOWN
        assert signal.getsignal(signal.SIGUSR1) is mine
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == (before_term, before_hup)
    finally:
        signal.signal(signal.SIGUSR1, before_usr1)
