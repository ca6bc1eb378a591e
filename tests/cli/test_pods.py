"""`stroute pods -s SVC` and `stroute top [--watch]`: JSON shapes, tables, exit codes."""

from __future__ import annotations

import json
import signal

import pytest
import yaml

from ops_support import Proc, cli, cli_json, error_lines, isolated, put_state, redis_millis, wait_until  # noqa: F401
from stroute.podstate import RoutingState
from stroute.server import ServerDriver

pytestmark = pytest.mark.usefixtures("isolated")

POD_FIELDS = ["pod", "state", "load", "heartbeat_age_ms", "alive", "routable", "cordoned", "epoch_ms", "reason",
              "recent_epochs", "flapping", "slow_start"]
# a service of top; pods adds "schema" first
SERVICE_FIELDS = ["namespace", "service", "workload", "pods", "unparseable", "published_workload"]
PODS_FIELDS = ["schema", *SERVICE_FIELDS]
STALE_MS = 120_000  # the CLI runs with the default expiry, 60 s


def mixed_service(store, service: str = "lobby") -> int:
    """Pods 0..4: READY, DRAINING, DOWN, stale READY, cordoned READY. Returns an epoch."""
    client = store.client
    epoch = redis_millis(client) - 5000
    put_state(client, service, 0, load=5, epoch=epoch)
    put_state(client, service, 1, load=7, state=RoutingState.DRAINING)
    put_state(client, service, 2, load=9, state=RoutingState.DOWN)
    put_state(client, service, 3, load=1, age_ms=STALE_MS)
    put_state(client, service, 4, load=20)
    store.set_cordon("default", service, 4, True)
    return epoch


def pods(url, *args, env=None):
    return cli_json("--redis-url", url, "pods", *args, env=env)


# --- pods -s SVC ----------------------------------------------------------------------


def test_pods_json_shape_field_by_field(url, store):
    epoch = mixed_service(store)
    code, data, stderr = pods(url, "-s", "lobby")
    assert code == 0, stderr
    assert list(data) == PODS_FIELDS and data["schema"] == "stroute/pods/v1"
    assert (data["namespace"], data["service"], data["workload"]) == ("default", "lobby", "DEGRADED")
    assert [p["pod"] for p in data["pods"]] == [0, 1, 2, 3, 4]
    for row in data["pods"]:
        assert list(row) == POD_FIELDS
        assert isinstance(row["pod"], int) and isinstance(row["load"], int)
        assert isinstance(row["heartbeat_age_ms"], int) and row["heartbeat_age_ms"] >= 0
        assert all(isinstance(row[k], bool) for k in ("alive", "routable", "cordoned"))
    by_pod = {p["pod"]: p for p in data["pods"]}
    expect = {  # state, load, alive, routable, cordoned
        0: ("READY", 5, True, True, False),
        1: ("DRAINING", 7, True, False, False),
        2: ("DOWN", 9, False, False, False),
        3: ("STALE", 1, False, False, False),
        4: ("READY", 20, True, False, True),
    }
    for pod, (state, load, alive, routable, cordoned) in expect.items():
        row = by_pod[pod]
        assert (row["state"], row["load"], row["alive"], row["routable"], row["cordoned"]) == (
            state, load, alive, routable, cordoned), row
    assert by_pod[0]["epoch_ms"] == epoch
    assert by_pod[1]["epoch_ms"] is None
    assert by_pod[0]["heartbeat_age_ms"] < 30_000
    assert by_pod[3]["heartbeat_age_ms"] >= STALE_MS


def test_pods_workload_ready_and_down(url, store):
    put_state(store.client, "lobby", 0, load=1)
    put_state(store.client, "lobby", 1, load=2)
    assert pods(url, "-s", "lobby")[1]["workload"] == "READY"
    put_state(store.client, "dead", 0, state=RoutingState.DOWN)
    put_state(store.client, "dead", 1, age_ms=STALE_MS)
    code, data, _ = pods(url, "-s", "dead")
    assert (code, data["workload"]) == (0, "DOWN")
    assert [p["routable"] for p in data["pods"]] == [False, False]


def test_pods_from_a_server_driver_pod_zero_is_a_pod(url, config, store):
    server = ServerDriver("lobby", 0, config, store=store)
    server.set_load_state(42)
    server.start()
    try:
        wait_until(lambda: store.snapshot("default", "lobby", expire_ms=60_000).pods, what="pod 0 published")
        code, data, _ = pods(url, "-s", "lobby")
    finally:
        server.stop(0)
    assert code == 0
    (row,) = data["pods"]
    assert row["pod"] == 0 and row["pod"] is not None and row["load"] == 42
    assert isinstance(row["epoch_ms"], int) and row["epoch_ms"] > 0


def test_pods_unknown_service_is_exit_3_with_the_object(url, store):
    put_state(store.client, "lobby", 0)
    code, data, stderr = pods(url, "-s", "lobyy")
    assert code == 3
    assert data == {"schema": "stroute/pods/v1", "namespace": "default", "service": "lobyy", "workload": "DOWN",
                    "pods": [], "unparseable": [], "published_workload": None}
    assert len(error_lines(stderr)) == 1 and "'lobyy' has no pods" in stderr


def test_pods_registered_service_without_states_is_empty_not_missing(url, store):
    store.client.sadd("sf:{default}:services", "quiet")
    code, data, _ = pods(url, "-s", "quiet")
    assert (code, data["pods"], data["workload"]) == (0, [], "DOWN")


@pytest.mark.parametrize("bad", ["a:b", "-x", "", "x" * 64, "a b"])
def test_pods_invalid_service_is_exit_2(url, bad):
    code, data, stderr = pods(url, "-s", bad)
    assert code == 2 and data is None
    assert "invalid service" in stderr and len(error_lines(stderr)) == 1


def test_pods_needs_a_service(url):
    result = cli("--redis-url", url, "pods")
    assert result.exit_code == 2
    assert "--service" in result.stderr


def test_pods_namespace_flag(url, store):
    put_state(store.client, "lobby", 0, load=3, namespace="eu")
    put_state(store.client, "lobby", 0, load=8)
    code, data, _ = cli_json("--redis-url", url, "-n", "eu", "pods", "-s", "lobby")
    assert (code, data["namespace"], data["pods"][0]["load"]) == (0, "eu", 3)


def test_pods_table(url, store):
    mixed_service(store)
    result = cli("--redis-url", url, "pods", "-s", "lobby")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for text in ("lobby", "READY", "DRAINING", "DOWN", "STALE", "DEGRADED", "yes", "routable=1", "alive=3",
                 "total=5", "#"):
        assert text in out, (text, out)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["SERVICE", "POD", "STATE"] and "|" not in out  # columns in a pipe
    pod0 = next(line for line in lines if line.split()[:2] == ["lobby", "0"])
    assert "5s" in pod0 or "4." in pod0 or "5." in pod0  # incarnation age of pod 0, from its epoch


def test_pods_yaml_equals_json(url, store):
    mixed_service(store)
    result = cli("--redis-url", url, "-o", "yaml", "pods", "-s", "lobby")
    data = yaml.safe_load(result.stdout)
    assert list(data) == PODS_FIELDS
    assert [p["state"] for p in data["pods"]] == ["READY", "DRAINING", "DOWN", "STALE", "READY"]


def test_pods_unparseable_field_is_left_out_and_reported(url, store):
    put_state(store.client, "lobby", 0, load=1)
    store.client.hset("sf:{default:state:lobby}", "1", "garbage")
    code, data, stderr = pods(url, "-s", "lobby")
    assert code == 0
    assert [p["pod"] for p in data["pods"]] == [0]
    assert data["workload"] == "DEGRADED"
    assert "pod 1 published a state field stroute cannot parse" in stderr
    table = cli("--redis-url", url, "pods", "-s", "lobby")
    assert "unparseable state field" in table.stderr and "pod 1 of lobby" in table.stderr
    assert "total=2" in table.stdout


def test_pods_redis_unreachable_is_exit_6():
    code, data, stderr = cli_json("--redis-url", "redis://127.0.0.1:1/0", "pods", "-s", "lobby")
    assert (code, data) == (6, None)
    assert len(error_lines(stderr)) == 1 and "unreachable" in stderr
    assert "Traceback" not in stderr


# --- top ---------------------------------------------------------------------------------


def test_top_json_is_every_service_in_order(url, store):
    mixed_service(store, "lobby")
    put_state(store.client, "chat", 0, load=11)
    put_state(store.client, "other", 0, namespace="eu")
    code, data, _ = cli_json("--redis-url", url, "top")
    assert code == 0
    assert list(data) == ["schema", "namespace", "services", "warnings"]
    assert data["schema"] == "stroute/top/v1" and data["warnings"] == []
    assert data["namespace"] == "default"
    assert [s["service"] for s in data["services"]] == ["chat", "lobby"]
    for service in data["services"]:
        assert list(service) == SERVICE_FIELDS
        alone = pods(url, "-s", service["service"])[1]
        assert alone.pop("schema") == "stroute/pods/v1"
        for a, b in zip(alone["pods"], service["pods"]):
            a.pop("heartbeat_age_ms"), b.pop("heartbeat_age_ms")
        assert alone == service
    assert data["services"][0]["pods"][0]["load"] == 11


def test_top_empty_namespace(url):
    code, data, _ = cli_json("--redis-url", url, "top")
    assert (code, data) == (0, {"schema": "stroute/top/v1", "namespace": "default", "services": [], "warnings": []})
    table = cli("--redis-url", url, "top")
    assert table.exit_code == 0 and "no services in namespace 'default'" in table.stdout


def test_top_table_has_a_summary_row_per_service(url, store):
    mixed_service(store, "lobby")
    put_state(store.client, "chat", 0, load=11)
    out = cli("--redis-url", url, "top").stdout
    assert sum(line.split()[1] == "all" for line in out.splitlines()) == 2
    assert "chat" in out and "lobby" in out and out.count("routable=1") == 2 and "alive=3" in out


def test_top_watch_prints_frames_when_not_a_terminal(url, store):
    put_state(store.client, "lobby", 0, load=4)
    result = cli("--redis-url", url, "top", "--watch", "--interval", "0.1", "--count", "3")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("stroute top: namespace 'default'") == 3
    assert result.stdout.count("lobby") == 3 * 2  # each frame: the pod's row and the service's summary row


@pytest.mark.parametrize("command", [["top"], ["pods", "-s", "lobby"]])
def test_watch_json_is_one_document_per_refresh(url, store, command):
    """-o json --watch: NDJSON, a whole document on each line, --count of them."""
    put_state(store.client, "lobby", 0, load=4)
    result = cli("--redis-url", url, "-o", "json", *command, "--watch", "--interval", "0.1", "--count", "3")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    docs = [json.loads(line) for line in lines]
    name = command[0]
    assert all(d["schema"] == f"stroute/{name}/v1" for d in docs)
    loads = [d["services"][0]["pods"][0]["load"] if name == "top" else d["pods"][0]["load"] for d in docs]
    assert loads == [4, 4, 4]


def test_watch_yaml_is_a_stream_of_documents(url, store):
    put_state(store.client, "lobby", 0, load=4)
    result = cli("--redis-url", url, "-o", "yaml", "pods", "-s", "lobby", "--watch", "--interval", "0.1",
                 "--count", "2")
    assert result.exit_code == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["schema"] for d in docs] == ["stroute/pods/v1"] * 2


def test_pods_watch_prints_frames_when_not_a_terminal(url, store):
    put_state(store.client, "lobby", 0, load=4)
    result = cli("--redis-url", url, "pods", "-s", "lobby", "--watch", "--interval", "0.1", "--count", "2")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("stroute pods: service 'lobby'") == 2


@pytest.mark.parametrize("args, message", [
    (["pods", "-s", "lobby", "--count", "2"], "only apply with --watch"),
    (["top", "--interval", "1"], "only apply with --watch"),
    (["top", "--count", "2"], "only apply with --watch"),
    (["top", "--watch", "--interval", "0"], "invalid --interval"),
])
def test_top_option_errors_are_exit_2(url, args, message):
    result = cli("--redis-url", url, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_top_count_must_be_positive(url):
    assert cli("--redis-url", url, "top", "--watch", "--count", "0").exit_code == 2


def test_top_redis_unreachable_is_exit_6():
    for args in (["top"], ["top", "--watch", "--count", "1"]):
        result = cli("--redis-url", "redis://127.0.0.1:1/0", *args)
        assert result.exit_code == 6
        assert len(error_lines(result.stderr)) == 1


# --- the installed entry point, a real server --------------------------------------------


@pytest.mark.realserver
def test_top_watch_process_survives_an_outage_and_ends_on_ctrl_c(tmp_path):
    from stroute.testing import RedisServer

    server = RedisServer().start()
    try:
        client = server.client()
        put_state(client, "lobby", 0, load=4)
        with Proc(tmp_path, "--redis-url", server.url, "top", "--watch", "--interval", "0.1") as proc:
            wait_until(lambda: "lobby" in proc.stdout, what="a first frame")
            server.stop()
            wait_until(lambda: "(retrying)" in proc.stdout, what="the outage shown in the frame")
            assert proc.process.poll() is None
            server.start()
            put_state(server.client(), "chat", 0, load=1)
            wait_until(lambda: "chat" in proc.stdout, what="frames after the outage")
            proc.signal(signal.SIGINT)
            assert proc.wait() == 0
            assert "Traceback" not in proc.stderr
    finally:
        server.close()


@pytest.mark.realserver
def test_top_watch_json_survives_an_outage(tmp_path):
    """An outage is a line on stderr and no document; the stream goes on after it."""
    from stroute.testing import RedisServer

    server = RedisServer().start()
    try:
        put_state(server.client(), "lobby", 0, load=4)
        with Proc(tmp_path, "--redis-url", server.url, "-o", "json", "top", "--watch", "--interval", "0.1") as proc:
            wait_until(lambda: proc.stdout.count("\n") >= 1, what="a first document")
            server.stop()
            wait_until(lambda: "(retrying)" in proc.stderr, what="the outage on stderr")
            assert proc.process.poll() is None
            server.start()
            put_state(server.client(), "chat", 0, load=1)
            wait_until(lambda: '"chat"' in proc.stdout, what="documents after the outage")
            proc.signal(signal.SIGINT)
            assert proc.wait() == 0
        docs = [json.loads(line) for line in proc.stdout.splitlines()]  # every line a whole document
        assert all(d["schema"] == "stroute/top/v1" for d in docs)
        assert "Traceback" not in proc.stderr
    finally:
        server.close()


@pytest.mark.realserver
def test_pods_and_top_through_the_entry_point(tmp_path, real_url, redis_server):
    from ops_support import run_bin

    put_state(redis_server.client(), "lobby", 3, load=12)
    done = run_bin(tmp_path, "--redis-url", real_url, "-o", "json", "pods", "-s", "lobby")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["pods"][0]["pod"] == 3
    done = run_bin(tmp_path, "--redis-url", real_url, "-o", "json", "top")
    assert json.loads(done.stdout)["services"][0]["service"] == "lobby"


# --- data another program wrote does not stop top (issue 11, item 10) --------------------------------------------


def test_top_shows_foreign_registry_entries_as_warning_rows_and_carries_on(url, store):
    put_state(store.client, "lobby", 0, load=4)
    registry = "sf:{default}:services"
    store.client.sadd(registry, "lobby", "bad{name", "evil\x1b[2Jname")
    code, data, stderr = cli_json("--redis-url", url, "top")
    assert code == 0, stderr
    assert [s["service"] for s in data["services"]] == ["lobby"]
    assert [w["service"] for w in data["warnings"]] == ["bad{name", "evil\x1b[2Jname"]
    assert all("not a service name" in w["problem"] and registry in w["problem"] for w in data["warnings"])
    assert "stroute: warning: 'bad{name': not a service name" in stderr
    assert "\x1b" not in stderr and "'evil\\x1b[2Jname'" in stderr
    table = cli("--redis-url", url, "top", env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.stderr
    rows = table.stdout.splitlines()[1:]
    assert any("bad{name" in row and "WARNING" in row for row in rows)
    assert any("evil\\x1b[2Jname" in row and "WARNING" in row for row in rows)  # escaped, not sent to the terminal
    assert "\x1b" not in table.stdout
    assert any(row.split()[0] == "lobby" for row in rows)
    assert "warning: 'bad{name': not a service name" in table.stderr
    # the other readers of the registry skip the entry too
    assert cli_json("--redis-url", url, "pods", "-s", "lobby")[0] == 0
    doctor = {c["name"]: c for c in cli_json("--redis-url", url, "doctor")[1]["checks"]}
    assert doctor["services"]["status"] == "WARN" and "'bad{name'" in doctor["services"]["detail"]
    assert "service:lobby" in doctor and not any("bad{name" in name for name in doctor)


def test_top_with_a_wrong_typed_registry_or_state_key_warns_and_carries_on(url, store):
    put_state(store.client, "lobby", 0, load=4)
    store.client.sadd("sf:{default}:services", "lobby", "chat")
    store.client.set("sf:{default:state:chat}", "banana")  # the state hash planted as a string
    code, data, stderr = cli_json("--redis-url", url, "top")
    assert code == 0, stderr
    assert [s["service"] for s in data["services"]] == ["lobby"]
    assert data["warnings"] == [{"service": "chat", "problem": "its state cannot be read: sf:{default:state:chat} "
                                                               "is a string, not a hash"}]
    store.client.delete("sf:{default}:services")
    store.client.set("sf:{default}:services", "not a set")
    code, data, stderr = cli_json("--redis-url", url, "top")
    assert code == 0, stderr
    # No registry to read: the services are still found by their state keys.
    assert [s["service"] for s in data["services"]] == ["lobby"]
    assert "is a string, not a set" in data["warnings"][0]["problem"]
    table = cli("--redis-url", url, "top")
    assert table.exit_code == 0 and "is a string, not a set" in table.stderr


def test_top_count_links_reports_a_link_key_naming_no_valid_service_as_bad(url, store):
    put_state(store.client, "lobby", 0, load=4)
    store.client.sadd("sf:{default}:services", "lobby")
    store.client.set("sf:{default:lk:u1}bad{svc", "1")  # a link key another program wrote
    code, data, stderr = cli_json("--redis-url", url, "top", "--count-links")
    # A link key whose name breaks the rules is bad data: counted as such
    # (exit 7, every good key processed), never shown as a service.
    assert code == 7, stderr
    assert [s["service"] for s in data["services"]] == ["lobby"]
    assert data["bad_keys"]["count"] == 1
    assert [k["key"] for k in data["bad_keys"]["keys"]] == ["sf:{default:lk:u1}bad{svc"]
