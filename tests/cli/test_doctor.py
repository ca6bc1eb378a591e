"""`stroute doctor` and stroute.diagnose: every check, its statuses, JSON shape, exit codes."""

from __future__ import annotations

import json
import time

import pytest

from ops_support import cli, cli_json, isolated, put_state, redis_millis, run_bin  # noqa: F401
from stroute import diagnose
from stroute.config import Config
from stroute.podstate import RoutingState
from stroute.server import ServerDriver

pytestmark = pytest.mark.usefixtures("isolated")

STALE_MS = 120_000  # the CLI runs with the default expiry, 60 s


def doctor(url, *args):
    return cli_json("--redis-url", url, "doctor", *args)


def checks(data) -> dict[str, dict]:
    return {c["name"]: c for c in data["checks"]}


def statuses(data) -> dict[str, str]:
    return {c["name"]: c["status"] for c in data["checks"]}


def healthy(config, store) -> None:
    """Two services, every pod READY, links to alive pods only."""
    for service, count in (("lobby", 3), ("chat", 1)):
        for pod in range(count):
            server = ServerDriver(service, pod, config.with_overrides(**{"state.expire": 60}), store=store)
            server.set_load_state(pod)
            server.publish()
    store.set("default", "u1", "lobby", 0)
    store.set("default", "u2", "lobby", 2)
    store.set("default", "u3", "lobby", 1, ttl_ms=60_000)
    store.set("default", "u1", "chat", 0)


def is_memory(url: str) -> bool:
    return url.startswith("memory://")


# --- a healthy deployment --------------------------------------------------------------------


def test_healthy_deployment_passes(url, config, store):
    healthy(config, store)
    code, data, stderr = doctor(url)
    assert code == 0, stderr
    assert list(data) == ["schema", "namespace", "checks", "summary"]
    assert data["namespace"] == "default"
    for check in data["checks"]:
        assert list(check) == ["name", "status", "detail"]
        assert check["status"] in ("PASS", "WARN", "FAIL") and check["detail"]
    names = [c["name"] for c in data["checks"]]
    assert names == ["connection", "server", "memory", "write", "scripts", "tracking", "service:chat",
                     "service:lobby", "clock", "links", "index"]
    expected = {name: "PASS" for name in names}
    if is_memory(url):
        expected["server"] = "WARN"  # fakeredis has no INFO
    assert statuses(data) == expected
    summary = data["summary"]
    assert list(summary) == ["pass", "warn", "fail"]
    assert summary == {s.lower(): sum(1 for c in data["checks"] if c["status"] == s) for s in ("PASS", "WARN", "FAIL")}
    c = checks(data)
    assert "PING median" in c["connection"]["detail"]
    assert "3 routable / 3 alive / 3 pods, workload READY" in c["service:lobby"]["detail"]
    from importlib import resources

    shipped = sum(1 for f in resources.files("stroute.scripts").iterdir() if f.name.endswith(".lua"))
    assert f"{shipped} scripts load" in c["scripts"]["detail"]
    assert "4 links sampled" in c["links"]["detail"]
    assert ("in-process hook" if is_memory(url) else "supports CLIENT TRACKING") in c["tracking"]["detail"]
    assert "DEL of a probe key under the namespace's hash tag succeed" in c["write"]["detail"]
    assert not [k for k in store.client.scan_iter(match="sf:{default}:probe:*")]  # the probe cleaned up
    assert "consistent" in c["index"]["detail"]
    if not is_memory(url):
        import redis as redis_py

        from stroute.backends import connect

        probe = connect(url)
        try:
            info = probe.info("server")
            version = (info if "redis_version" in info else next(iter(info.values())))["redis_version"]
        finally:
            probe.close()
        assert isinstance(probe, (redis_py.Redis, redis_py.cluster.RedisCluster))
        assert c["server"]["detail"].startswith(f"Redis {version}") and "role master" in c["server"]["detail"]
        assert "policy noeviction" in c["memory"]["detail"]


def test_table_output(url, config, store):
    healthy(config, store)
    result = cli("--redis-url", url, "doctor")
    assert result.exit_code == 0
    assert "stroute doctor: namespace 'default'" in result.stderr  # the title: in a pipe, on stderr
    for text in ("connection", "PASS", "service:lobby", "index"):
        assert text in result.stdout
    assert "passed, " in result.stdout.splitlines()[-1] and "0 failed" in result.stdout


def test_empty_namespace_warns(url):
    code, data, _ = doctor(url)
    assert code == 0
    c = checks(data)
    assert c["services"]["status"] == "WARN" and "no service has registered" in c["services"]["detail"]
    assert c["links"]["status"] == "PASS" and c["index"]["status"] == "PASS"


def test_namespace_flag(url, config, store):
    healthy(config, store)
    code, data, _ = cli_json("--redis-url", url, "-n", "eu", "doctor")
    assert (code, data["namespace"]) == (0, "eu")
    assert "services" in checks(data)


# --- pods ---------------------------------------------------------------------------------


def test_stale_pod_warns(url, store):
    put_state(store.client, "lobby", 0, load=1)
    put_state(store.client, "lobby", 1, age_ms=STALE_MS)
    code, data, _ = doctor(url)
    assert code == 0  # a warning is not a failure
    check = checks(data)["service:lobby"]
    assert check["status"] == "WARN"
    assert "pod 1 STALE" in check["detail"] and "last published READY" in check["detail"]
    assert "stroute pod forget" in check["detail"]


def test_down_pod_warns(url, store):
    put_state(store.client, "lobby", 0, load=1)
    put_state(store.client, "lobby", 2, state=RoutingState.DOWN)
    check = checks(doctor(url)[1])["service:lobby"]
    assert check["status"] == "WARN" and "pod 2 DOWN" in check["detail"]


def test_service_without_routable_pod_fails(url, store):
    put_state(store.client, "lobby", 0, state=RoutingState.DRAINING)
    put_state(store.client, "lobby", 1, age_ms=STALE_MS)
    code, data, _ = doctor(url)
    assert code == 1
    check = checks(data)["service:lobby"]
    assert check["status"] == "FAIL" and "no available pod" in check["detail"]
    assert data["summary"]["fail"] == 1


def test_registered_service_without_pods_warns(url, store):
    store.client.sadd("sf:{default}:services", "quiet")
    check = checks(doctor(url)[1])["service:quiet"]
    assert check["status"] == "WARN" and "no pod has published" in check["detail"]


def test_unparseable_state_field_warns(url, store):
    put_state(store.client, "lobby", 0)
    store.client.hset("sf:{default:state:lobby}", "1", "junk")
    check = checks(doctor(url)[1])["service:lobby"]
    assert check["status"] == "WARN" and "pod 1 has an unparseable state field" in check["detail"]


def test_cordoned_pod_is_noted_not_warned(url, store):
    put_state(store.client, "lobby", 0)
    put_state(store.client, "lobby", 1)
    store.set_cordon("default", "lobby", 1, True)
    check = checks(doctor(url)[1])["service:lobby"]
    assert check["status"] == "PASS" and "cordoned: 1" in check["detail"]


# --- links and the index ----------------------------------------------------------------------


def test_persistent_link_to_a_dead_pod_warns(url, store):
    put_state(store.client, "lobby", 0)
    put_state(store.client, "lobby", 1, state=RoutingState.DOWN)
    store.set("default", "alice", "lobby", 1)
    store.set("default", "bob", "lobby", 9)  # a pod that never published
    code, data, _ = doctor(url)
    assert code == 0
    check = checks(data)["links"]
    assert check["status"] == "WARN"
    assert "2 persistent links to dead pods" in check["detail"]
    assert "alice -> lobby pod 1 (DOWN)" in check["detail"]
    assert "bob -> lobby pod 9 (never published a state)" in check["detail"]


def test_temporary_link_to_a_dead_pod_passes_with_a_note(url, store):
    put_state(store.client, "lobby", 0)
    store.set("default", "carol", "lobby", 5, ttl_ms=60_000)
    check = checks(doctor(url)[1])["links"]
    assert check["status"] == "PASS" and "1 temporary link to dead pods" in check["detail"]


def test_link_sample_is_bounded(url, store):
    put_state(store.client, "lobby", 0)
    for i in range(5):
        store.set("default", f"u{i}", "lobby", 0)
    check = checks(doctor(url, "--sample", "2")[1])["links"]
    assert "2 links sampled (the first of more)" in check["detail"]
    assert cli("--redis-url", url, "doctor", "--sample", "0").exit_code == 2


@pytest.mark.parametrize("damage, expected", [
    (lambda c: c.hset("sf:{default:lk:dave}", "lobby", "0"), "index of dave says lobby -> 0, but there is no link"),
    (lambda c: c.set("sf:{default:lk:erin}lobby", "0"), "persistent link erin -> lobby pod 0 is missing from the index"),
    (lambda c: (c.set("sf:{default:lk:finn}lobby", "0", px=60_000), c.hset("sf:{default:lk:finn}", "lobby", "0")),
     "index of finn says lobby -> 0, but the link is temporary"),
    (lambda c: (c.set("sf:{default:lk:gus}lobby", "0"), c.hset("sf:{default:lk:gus}", "lobby", "2")),
     "index of gus says lobby -> 2, but the link says 0"),
])
def test_index_inconsistency_fails(url, store, damage, expected):
    put_state(store.client, "lobby", 0)
    store.set("default", "fine", "lobby", 0)
    damage(store.client)
    code, data, _ = doctor(url)
    assert code == 1
    check = checks(data)["index"]
    assert check["status"] == "FAIL"
    assert "1 inconsistency between" in check["detail"] and expected in check["detail"], check["detail"]
    assert "stroute link set" in check["detail"]


def test_index_check_ignores_other_namespaces(url, store):
    store.client.hset("sf:{eu:lk:dave}", "lobby", "0")  # broken, but not in 'default'
    put_state(store.client, "lobby", 0)
    assert checks(doctor(url)[1])["index"]["status"] == "PASS"


# --- clocks ----------------------------------------------------------------------------------


def test_heartbeat_from_the_future_warns(url, store):
    put_state(store.client, "lobby", 0, age_ms=-5000)  # a writer whose clock is 5 s ahead
    check = checks(doctor(url)[1])["clock"]
    assert check["status"] == "WARN" and "pod 0 of lobby heartbeat" in check["detail"] and "in the future" in check["detail"]


def test_heartbeat_beyond_the_expiry_window_fails(url, store):
    put_state(store.client, "lobby", 0, age_ms=-STALE_MS)
    code, data, _ = doctor(url)
    assert code == 1
    check = checks(data)["clock"]
    assert check["status"] == "FAIL" and "dead pods look alive" in check["detail"]


def test_epoch_from_the_future_warns(url, store):
    put_state(store.client, "lobby", 0, epoch=redis_millis(store.client) + 10_000)
    check = checks(doctor(url)[1])["clock"]
    assert check["status"] == "WARN" and "its host clock is ahead" in check["detail"]


def test_local_clock_skew_warns(config, store):
    report = diagnose.run(store, config, clock=lambda: time.time() + 30)
    check = next(c for c in report.checks if c.name == "clock")
    assert check.status == "WARN" and "ahead of Redis TIME" in check.detail
    report = diagnose.run(store, config, clock=lambda: time.time() - 30)
    check = next(c for c in report.checks if c.name == "clock")
    assert check.status == "WARN" and "behind Redis TIME" in check.detail


# --- failures of Redis itself ---------------------------------------------------------------


def test_unreachable_redis_is_exit_6_with_one_failed_check():
    code, data, stderr = doctor("redis://127.0.0.1:1/0")
    assert code == 6
    assert data["checks"] == [{"name": "connection", "status": "FAIL", "detail": data["checks"][0]["detail"]}]
    assert "unreachable" in data["checks"][0]["detail"]
    assert "check that Redis is running" in data["checks"][0]["detail"]  # the hint travels with it
    assert data["summary"] == {"pass": 0, "warn": 0, "fail": 1}
    assert "Traceback" not in stderr


def test_a_redis_error_in_one_check_fails_that_check(url, store):
    store.client.set("sf:{default}:services", "not a set")
    code, data, _ = doctor(url)
    assert code == 1
    check = checks(data)["services"]
    assert check["status"] == "FAIL" and "WRONGTYPE" in check["detail"]
    assert checks(data)["scripts"]["status"] == "PASS"


@pytest.mark.realserver
def test_connected_to_a_replica_fails(redis_server, tmp_path):
    from stroute.testing import RedisServer

    replica = RedisServer("--replicaof", "127.0.0.1", str(redis_server.port)).start()
    try:
        code, data, _ = doctor(replica.url)
        assert code == 1
        check = checks(data)["server"]
        assert check["status"] == "FAIL" and "role slave" in check["detail"] and "refuses writes" in check["detail"]
    finally:
        replica.close()


@pytest.mark.realserver
def test_a_replica_fails_the_write_probe(redis_server):
    from stroute.testing import RedisServer

    replica = RedisServer("--replicaof", "127.0.0.1", str(redis_server.port)).start()
    try:
        code, data, _ = doctor(replica.url)
        assert code == 1
        check = checks(data)["write"]
        assert check["status"] == "FAIL" and "Redis refuses writes" in check["detail"]
        assert "read only replica" in check["detail"] and "point the URL at the master" in check["detail"]
        assert "sf:{default}:probe:" in check["detail"]
    finally:
        replica.close()


@pytest.mark.realserver
def test_an_acl_without_writes_fails_the_write_probe(redis_server, real_url):
    admin = redis_server.client()
    admin.acl_setuser("doctor-ro", enabled=True, passwords=["+ro-pass"], keys=["*"], channels=["*"],
                      commands=["+@all", "-@write"])
    try:
        url = real_url.replace("redis://", "redis://doctor-ro:ro-pass@")
        code, data, stderr = doctor(url)
        assert code == 1, stderr
        c = checks(data)
        assert c["connection"]["status"] == "PASS" and c["server"]["status"] == "PASS"
        assert c["write"]["status"] == "FAIL" and "ACL forbids it" in c["write"]["detail"], c["write"]
        assert "ro-pass" not in json.dumps(data) + stderr
        assert admin.dbsize() == 0  # refused, and nothing else written either
        # The same user with write commands on the namespace's keys only passes.
        admin.acl_setuser("doctor-ro", enabled=True, reset_keys=True, keys=["sf:{default}:*", "sf:{default:*"],
                          commands=["+@write"])
        code, data, stderr = doctor(url)
        assert checks(data)["write"]["status"] == "PASS", data
    finally:
        admin.acl_deluser("doctor-ro")
        admin.close()


@pytest.mark.realserver
def test_memory_above_maxmemory_under_noeviction_fails():
    """The issue's case: used 1.39M, maxmemory 1.00M, policy noeviction used to PASS."""
    from stroute.testing import RedisServer

    server = RedisServer("--maxmemory-policy", "noeviction").start()
    client = server.client()
    try:
        client.mset({f"fill:{i}": "x" * 200 for i in range(5000)})
        client.config_set("maxmemory", "1mb")
        assert int(client.info("memory")["used_memory"]) > 1024 * 1024
        code, data, _ = doctor(server.url)
        assert code == 1
        c = checks(data)
        assert c["memory"]["status"] == "FAIL", c["memory"]
        assert "maxmemory 1.00M, policy noeviction" in c["memory"]["detail"]
        assert "above maxmemory under noeviction, Redis refuses every write" in c["memory"]["detail"]
        assert c["write"]["status"] == "FAIL" and "used memory > 'maxmemory'" in c["write"]["detail"], c["write"]
        assert "raise maxmemory or free memory" in c["write"]["detail"]
        # Room again: both pass.
        client.config_set("maxmemory", "0")
        code, data, _ = doctor(server.url)
        assert code == 0 and checks(data)["memory"]["status"] == checks(data)["write"]["status"] == "PASS"
    finally:
        client.close()
        server.close()


@pytest.mark.realserver
def test_eviction_policy_that_can_drop_links_warns():
    from stroute.testing import RedisServer

    server = RedisServer("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru").start()
    try:
        code, data, _ = doctor(server.url)
        assert code == 0
        check = checks(data)["memory"]
        assert check["status"] == "WARN" and "allkeys-lru" in check["detail"] and "persistent links" in check["detail"]
    finally:
        server.close()


# --- the core module ----------------------------------------------------------------------


@pytest.mark.parametrize("ms, text", [
    (0, "0ms"), (850, "850ms"), (4200, "4.2s"), (185_000, "3m05s"), (7_380_000, "2h03m"), (446_400_000, "5d04h"),
    (-5, "0ms"),
])
def test_duration(ms, text):
    assert diagnose.duration(ms) == text


def test_report_summary_and_failed():
    report = diagnose.Report("ns", [diagnose.Check("a", "PASS", "x"), diagnose.Check("b", "WARN", "y")])
    assert report.summary == {"pass": 1, "warn": 1, "fail": 0} and not report.failed and not report.unreachable
    report.checks.append(diagnose.Check("connection", "FAIL", "z"))
    assert report.failed and report.unreachable
    assert report.to_dict()["checks"][2] == {"name": "connection", "status": "FAIL", "detail": "z"}


def test_diagnose_has_no_cli_dependency():
    import sys

    import stroute.diagnose as module

    source = open(module.__file__).read()
    assert "typer" not in source and "rich" not in source
    assert "stroute.cli" not in source
    assert module.__name__ in sys.modules


# --- the installed entry point ------------------------------------------------------------


@pytest.mark.realserver
def test_doctor_through_the_entry_point(tmp_path, real_url, redis_server):
    config = Config().with_overrides(**{"redis.url": real_url})
    store = config.open_store()
    try:
        healthy(config, store)
        done = run_bin(tmp_path, "--redis-url", real_url, "-o", "json", "doctor")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["summary"]["fail"] == 0
        store.client.hset("sf:{default:lk:zed}", "lobby", "1")
        done = run_bin(tmp_path, "--redis-url", real_url, "doctor")
        assert done.returncode == 1
        assert "FAIL" in done.stdout and "inconsistency" in done.stdout
    finally:
        store.close()


@pytest.mark.realserver
def test_tracking_counts_the_client_drivers_listening(config):
    from stroute.client import ClientDriver
    from stroute.testing import RedisServer

    server = RedisServer().start()  # its own server: no other test's driver is counted
    try:
        with ClientDriver(config.with_overrides(**{"redis.url": server.url})) as gateway:
            assert gateway.wait_coherent()
            gateway.get_linked_pod("default", "someone", "lobby")  # one tracked read
            code, data, stderr = doctor(server.url)
    finally:
        server.close()
    detail = checks(data)["tracking"]["detail"]
    assert checks(data)["tracking"]["status"] == "PASS", detail
    assert "1 tracking connections" in detail and "1 keys tracked" in detail, detail


def test_tracking_warns_when_coherence_is_off(url, config, store, monkeypatch):
    monkeypatch.setenv("STROUTE_LINKS_COHERENT", "false")
    code, data, stderr = doctor(url)
    check = checks(data)["tracking"]
    assert check["status"] == "WARN" and "links.coherent is off" in check["detail"], check


@pytest.mark.realserver
@pytest.mark.cluster
def test_memory_is_checked_on_every_primary_of_a_cluster(redis_cluster, cluster_url):
    """Links live on every node: one full primary fails the check, and is named."""
    full = redis_cluster.nodes[-1]
    client = full.client()
    try:
        code, data, _ = doctor(cluster_url)
        memory = checks(data)["memory"]
        assert memory["status"] == "PASS" and memory["detail"].startswith("3 primaries, each: node ")
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", str(used // 2))
        code, data, _ = doctor(cluster_url)
        memory = checks(data)["memory"]
        assert code == 1 and memory["status"] == "FAIL", memory
        assert f"worst: node 127.0.0.1:{full.port}: " in memory["detail"]
        assert "above maxmemory under noeviction" in memory["detail"]
    finally:
        client.config_set("maxmemory", "0")
        client.close()
