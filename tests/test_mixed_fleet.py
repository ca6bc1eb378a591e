"""Mixed fleets: stroute beside the original Go and Java drivers, on a real redis-server.

tests/originals.py reproduces the originals' readers and writers from their
formats. Here: every state stroute publishes for a pod that must get no new
user (DRAINING, cordoned, DOWN) is "not available" to each original's
reader, READY is available to Java's, and stroute reads its own values
exactly; then a fleet of `stroute serve` processes and original writers,
with stroute and a Java-logic reader each placing 1,000 users.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import pytest

from originals import (
    JAVA_LINK_TTL_S, GoReader, GoWriter, JavaReader, JavaWriter, java_link_key, java_load_info, java_state_key,
)
from stroute.client import ClientDriver
from stroute.config import Config
from stroute.errors import NoAvailablePod
from stroute.podstate import PodState, RoutingState
from support import redis_millis, stroute_bin, wait_until

pytestmark = pytest.mark.realserver

GO, JAVA = "homo-go", "homo-java"
NAMESPACE = {GO: "default", JAVA: "app:eu:state"}


@pytest.fixture(params=[GO, JAVA])
def layout(request):
    return request.param


def make_config(url: str, layout: str, **extra) -> Config:
    return Config().with_overrides(**{
        "redis.url": url, "layout": layout, "namespace": NAMESPACE[layout], "redis.socket_timeout": 2,
        "state.period": 0.2, "state.expire": 5.0, "state.refresh": 0, **extra})


@pytest.fixture
def lstore(real_url, layout):
    store = make_config(real_url, layout).open_store()
    yield store
    store.close()


CASES = [  # (state, cordoned, must the originals send new users there?)
    (RoutingState.READY, False, True),
    (RoutingState.READY, True, False),
    (RoutingState.DRAINING, False, False),
    (RoutingState.DRAINING, True, False),
    (RoutingState.DOWN, False, False),
    (RoutingState.DOWN, True, False),
]


@pytest.mark.parametrize("epoch", [None, 1_700_000_000_123])
@pytest.mark.parametrize("state, cordoned, routable", CASES)
def test_what_stroute_publishes_reads_right_in_every_reader(lstore, layout, state, cordoned, routable, epoch):
    ns, client = NAMESPACE[layout], lstore.client
    if cordoned:
        lstore.set_cordon(ns, "game", 3, True)
    lstore.publish_state(ns, "game", 3, load=42, state=state, epoch=epoch, expire_ms=5000)
    raw = client.hget(lstore.keys(ns).state("game"), "3")

    # stroute reads its own value exactly.
    parsed = PodState.decode(raw)
    assert (parsed.load, parsed.state, parsed.epoch) == (42, state, epoch)
    assert abs(parsed.heartbeat_ms - redis_millis(client)) < 5000
    view = lstore.snapshot(ns, "game", expire_ms=5000).pods[3]
    assert (view.state, view.cordoned, view.routable) == (state, cordoned, routable)

    # Java's reader (same value format; its keys only in homo-java, the value is what matters).
    info = java_load_info("3", raw)
    assert (info.load, info.timestamp) == (42, parsed.heartbeat_ms)
    java = JavaReader(client, ns)
    client.hset(java_state_key(ns, "game"), "3", raw)
    # With no available pod Java's update throws and keeps its old (here: no) lists.
    assert java.update("game") is routable
    assert java.is_pod_available("game", 3) is routable
    if routable:
        assert java.choice_best_pod("game") == 3
    else:
        with pytest.raises(LookupError, match="choicePodNotFound"):
            java.choice_best_pod("game")

    # Go's reader: only the literal READY is routable, so no stroute value ever is.
    client.hset(f"sf:{{{ns}:state:game}}", "3", raw)
    go = GoReader(client, ns)
    assert go.routable("game") == []
    assert go.available("game", 3)  # a field is "available" for existing links


def test_cordon_withholds_the_field_at_once_and_uncordon_gives_it_back(lstore, layout):
    """No wait for the next heartbeat: the originals see a cordon in the same step."""
    ns, client = NAMESPACE[layout], lstore.client
    lstore.publish_state(ns, "game", 1, load=5, state=RoutingState.READY, epoch=77, expire_ms=5000)
    key = lstore.keys(ns).state("game")
    before = client.hget(key, "1")
    java = JavaReader(client, ns)
    client.hset(java_state_key(ns, "game"), "1", before)
    assert java.update("game") and java.good["game"] == [1]

    assert lstore.set_cordon(ns, "game", 1, True)
    withheld = client.hget(key, "1")
    load, beat, _ = before.split("-", 2)
    assert withheld == f"{load}-{beat}-0-77-1"
    assert java_load_info("1", withheld).state == 0
    assert PodState.decode(withheld) == PodState(5, int(beat), RoutingState.READY, 77, withheld=True)

    assert lstore.set_cordon(ns, "game", 1, False)
    assert client.hget(key, "1") == before
    # An original's own READY field (no epoch) is withheld too, until it writes its next heartbeat.
    JavaWriter(client, ns).publish_state("game", 2, 9, 1, now_ms=1234)
    if layout == JAVA:
        lstore.set_cordon(ns, "game", 2, True)
        assert client.hget(key, "2") == "9-1234-0--1"


@pytest.mark.parametrize("layout", [JAVA])  # the Java reader reads the homo-java keys
def test_java_reader_never_places_on_withheld_pods(lstore, layout):
    ns, client = NAMESPACE[layout], lstore.client
    for pod, state in enumerate([RoutingState.READY, RoutingState.DRAINING, RoutingState.READY, RoutingState.DOWN]):
        lstore.publish_state(ns, "game", pod, load=pod, state=state, epoch=pod + 1, expire_ms=5000)
    lstore.set_cordon(ns, "game", 2, True)
    java = JavaReader(client, ns)
    placed = {java.compute_linked_pod(f"j{i}", "game") for i in range(50)}
    assert placed == {0}
    assert client.ttl(java_link_key(ns, "j1", "game")) <= JAVA_LINK_TTL_S


# --- a fleet of stroute serve processes and original pods ---------------------------------------------


def _serve(url: str, layout: str, pod: int, load: int, tmp_path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STROUTE_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    return subprocess.Popen(
        [stroute_bin(), "--redis-url", url, "--layout", layout, "-n", NAMESPACE[layout], "serve", "-s", "game",
         "--pod", str(pod), "--load", str(load), "--period", "0.2", "--expire", "5", "--drain-seconds", "120"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)


def test_mixed_fleet_no_user_lands_on_a_draining_or_cordoned_pod(real_url, redis_server, layout, lstore, tmp_path):
    """serve pods 0-3 (1 cordoned, 2 DRAINING), original pods 4-5 (5 DOWN for Java);
    stroute places 1,000 users, an original-logic reader 1,000 more."""
    ns, client = NAMESPACE[layout], lstore.client
    servers = {pod: _serve(real_url, layout, pod, load, tmp_path) for pod, load in {0: 10, 1: 0, 2: 0, 3: 20}.items()}
    try:
        def published(pod, state):
            snap = lstore.snapshot(ns, "game", expire_ms=5000)
            return pod in snap.pods and snap.pods[pod].state is state and not snap.pods[pod].stale

        for pod in servers:
            wait_until(lambda: published(pod, RoutingState.READY), what=f"pod {pod} READY")
        assert lstore.set_cordon(ns, "game", 1, True)
        servers[2].send_signal(signal.SIGTERM)
        wait_until(lambda: published(2, RoutingState.DRAINING), what="pod 2 DRAINING")

        if layout == JAVA:
            java_writer = JavaWriter(client, ns)
            java_writer.publish_state("game", 4, 5, 1)
            java_writer.publish_state("game", 5, 0, 0)
        else:
            GoWriter(client, ns).publish_state("game", 4)  # the literal 'state': Go's own bug
            GoWriter(client, ns).publish_workload("game", 1)
        # A heartbeat of the cordoned serve pod after the cordon: still withheld.
        wait_until(lambda: PodState.decode(client.hget(lstore.keys(ns).state("game"), "1")).heartbeat_ms
                   > redis_millis(client) - 300, what="a fresh heartbeat of pod 1")
        raw = client.hgetall(lstore.keys(ns).state("game"))
        assert raw["1"].split("-")[2] == "0" and raw["2"].split("-")[2] == "0"

        # The original-logic reader places its 1,000 users in a thread while stroute places its own,
        # 100 at a time, and the serve pods keep publishing.
        theirs: list = []
        reader_failed: list = []

        def original_reader():
            own = redis_server.client()
            try:
                if layout == JAVA:
                    java = JavaReader(own, ns)
                    theirs.extend(java.compute_linked_pod(f"j{i}", "game") for i in range(1000))
                else:
                    go = GoReader(own, ns)
                    for i in range(1000):
                        try:
                            theirs.append(go.place(f"g{i}", "game"))
                        except LookupError as exc:  # Go routes only the literal READY, which nobody writes
                            reader_failed.append(str(exc))
            except BaseException as exc:  # reported by the main thread
                reader_failed.append(repr(exc))
            finally:
                own.close()

        thread = threading.Thread(target=original_reader)
        thread.start()
        driver = ClientDriver(make_config(real_url, layout), store=lstore, coherent=False)
        ours: dict = {}
        try:
            for batch in range(10):
                ours.update(driver.place_many([f"s{batch * 100 + i}" for i in range(100)], "game"))
        finally:
            driver.close()
            thread.join(timeout=120)
        assert not thread.is_alive()
        assert len(ours) == 1000 and not [r for r in ours.values() if isinstance(r, Exception)]
        ours_pods = {r.pod for r in ours.values()}
        # Java's pod 4 is READY to stroute too; Go's pod 4 wrote 'state', which stroute reads as dead.
        assert ours_pods == ({0, 3, 4} if layout == JAVA else {0, 3})
        if layout == JAVA:
            assert not reader_failed and len(theirs) == 1000 and None not in theirs
            assert set(theirs) == {0, 3, 4}  # round robin over every pod within min load + 500
        else:
            assert theirs == [] and reader_failed == ["service not ready"] * 1000
        landed = {pod for pod in (*ours_pods, *theirs)}
        assert not landed & {1, 2, 5}
        # stroute reads the originals' pods as they are.
        snap = lstore.snapshot(ns, "game", expire_ms=5000)
        if layout == JAVA:
            assert snap.pods[4].routable and snap.pods[5].state is RoutingState.DOWN
        else:
            assert snap.invalid == (4,)
    finally:
        for proc in servers.values():
            proc.kill()
            proc.wait()
            proc.stderr.close()


def test_stroute_places_around_original_pods_when_none_is_routable(real_url, lstore, layout):
    """Only withheld and original-DOWN pods: stroute says no available pod, Java's reader finds none."""
    ns, client = NAMESPACE[layout], lstore.client
    lstore.publish_state(ns, "game", 0, load=1, state=RoutingState.DRAINING, epoch=1, expire_ms=5000)
    lstore.publish_state(ns, "game", 1, load=1, state=RoutingState.READY, epoch=2, expire_ms=5000)
    lstore.set_cordon(ns, "game", 1, True)
    driver = ClientDriver(make_config(real_url, layout), store=lstore, coherent=False)
    try:
        with pytest.raises(NoAvailablePod):
            driver.compute_linked_pod(ns, "u1", "game")
    finally:
        driver.close()
    if layout == JAVA:
        with pytest.raises(LookupError):
            JavaReader(client, ns).compute_linked_pod("j1", "game")


@pytest.mark.parametrize("state, cordoned", [(RoutingState.DRAINING, False), (RoutingState.READY, True)])
def test_a_withheld_field_still_names_its_epoch_to_the_claim_check(lstore, layout, state, cordoned):
    """The five-field form keeps the epoch where state_publish.lua looks for it: a second
    instance cannot start over an alive withheld pod, the owner continues."""
    ns = NAMESPACE[layout]
    if cordoned:
        lstore.set_cordon(ns, "game", 1, True)
    first = lstore.publish_state(ns, "game", 1, load=1, state=state, epoch=111, expire_ms=5000, claim="start")
    assert first.written
    other = lstore.publish_state(ns, "game", 1, load=1, state=RoutingState.READY, epoch=222, expire_ms=5000,
                                 claim="start")
    assert not other.written and other.previous.epoch == 111 and other.previous.state is state
    again = lstore.publish_state(ns, "game", 1, load=2, state=state, epoch=111, expire_ms=5000, claim="continue")
    assert again.written and PodState.decode(lstore.client.hget(lstore.keys(ns).state("game"), "1")).load == 2
