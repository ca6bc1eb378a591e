"""`stroute serve --http HOST:PORT`: /healthz, /readyz and /metrics.

The endpoints are tested in-process against a ServerDriver on every backend,
then on a real `stroute serve --http` child process that receives SIGTERM:
/readyz turns 503 as soon as it drains, /healthz stays 200 until it exits.
"""

from __future__ import annotations

import re
import signal
import socket
import urllib.error
import urllib.request

import pytest

from ops_support import Proc, cli, cli_json, error_lines, isolated, read_state, wait_until  # noqa: F401
from stroute.errors import InvalidInput
from stroute.httpd import HttpEndpoints, parse_address, readiness
from stroute.podstate import RoutingState
from stroute.server import ServerDriver
from stroute.testing import free_port

pytestmark = pytest.mark.usefixtures("isolated")


def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def samples(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value}, comments left out."""
    out = {}
    for row in text.splitlines():
        if row and not row.startswith("#"):
            name, _, value = row.rpartition(" ")
            out[name] = float(value)
    return out


def label_names(rest: str) -> list[str]:
    """The label names of one sample's `a="x",b="y"}`."""
    return re.findall(r'(?:^|,)([a-zA-Z_][a-zA-Z0-9_]*)="', rest)


def label_value(rest: str, name: str) -> str | None:
    found = re.search(r'(?:^|,)' + name + r'="([^"]*)"', rest)
    return None if found is None else found.group(1)


def metric(text: str, name: str, **labels: str) -> float:
    """The one sample of `name` whose labels include `labels`."""
    found = []
    for key, value in samples(text).items():
        base, _, rest = key.partition("{")
        if base == name and all(label_value(rest, k) == v for k, v in labels.items()):
            found.append(value)
    assert len(found) == 1, (name, labels, found)
    return found[0]


# --- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9090", ("127.0.0.1", 9090)), ("0.0.0.0:0", ("0.0.0.0", 0)), (":8080", ("", 8080)),
    ("[::1]:9090", ("::1", 9090)), ("localhost:65535", ("localhost", 65535)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["9090", "host:", "host:x", "host:65536", "::1:9090", "h:-1", ""])
def test_parse_address_refuses(text):
    with pytest.raises(InvalidInput) as caught:
        parse_address(text)
    assert repr(text) in str(caught.value) or "brackets" in str(caught.value)


# --- in-process: the endpoints of one driver ----------------------------------------------------


@pytest.fixture
def served(config, store):
    driver = ServerDriver("game", 3, config, store=store)
    driver.set_load_state(42)
    endpoints = HttpEndpoints(driver, "127.0.0.1", 0).start()
    yield driver, endpoints.url
    endpoints.close()
    driver.close()


def test_healthz_and_readyz_follow_the_routing_state(served):
    driver, base = served
    assert get(base + "/healthz")[::2] == (200, "ok\n")
    assert get(base + "/readyz")[::2] == (503, "READY, but no heartbeat has reached Redis yet\n")
    driver.publish()
    status, ctype, body = get(base + "/readyz")
    assert (status, body) == (200, "READY\n") and ctype.startswith("text/plain")
    driver.set_routing_state("DRAINING")
    assert get(base + "/readyz")[::2] == (503, "DRAINING\n")
    driver.set_routing_state("DOWN")
    assert get(base + "/readyz")[::2] == (503, "DOWN\n")
    assert get(base + "/healthz")[0] == 200
    assert get(base + "/nope")[0] == 404


def test_a_cordon_keeps_the_pod_ready(served, store):
    driver, base = served
    store.set_cordon("default", "game", 3, True)
    driver.publish()
    assert get(base + "/readyz")[::2] == (200, "READY (cordoned by an operator: no new users)\n")


def test_metrics(served):
    driver, base = served
    first_heartbeat_ms = driver.publish().heartbeat_ms
    for _ in range(2):
        driver.publish()
    driver.set_linked_pod("default", "u1", "game")
    driver.set_linked_pod("default", "u2", "game", ttl=60)
    assert driver.try_set_linked_pod("default", "u3", "game")[0]
    driver.remove_linked_pod("default", "u1", "game")
    driver.remove_linked_pod_with_id("default", "u2", "game")
    driver.remove_linked_pod("default", "nobody", "game")  # nothing removed: not counted
    status, ctype, text = get(base + "/metrics")
    assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
    labels = {"stroute_namespace": "default", "stroute_service": "game", "stroute_pod": "3"}
    assert metric(text, "stroute_heartbeats_total", result="ok", **labels) == 3
    assert metric(text, "stroute_heartbeats_total", result="failed", **labels) == 0
    assert metric(text, "stroute_load", **labels) == 42
    assert metric(text, "stroute_routing_state", state="READY", **labels) == 1
    assert metric(text, "stroute_routing_state", state="DRAINING", **labels) == 0
    assert metric(text, "stroute_cordoned", **labels) == 0
    assert metric(text, "stroute_last_heartbeat_timestamp_seconds", **labels) == driver.last_heartbeat_ms / 1000
    assert metric(text, "stroute_publish_duration_seconds_count", **labels) == 3
    assert 0 < metric(text, "stroute_publish_duration_seconds_sum", **labels) < 3
    assert metric(text, "stroute_publish_duration_seconds_bucket", le="+Inf", **labels) == 3
    assert metric(text, "stroute_links_set_total", **labels) == 3
    assert metric(text, "stroute_links_removed_total", **labels) == 2
    since = metric(text, "stroute_routing_state_since_timestamp_seconds", **labels)
    assert since == first_heartbeat_ms / 1000  # READY since the first heartbeat
    assert metric(text, "stroute_state_period_seconds", **labels) == driver.config.state.period
    assert metric(text, "stroute_state_expire_seconds", **labels) == driver.config.state.expire
    assert metric(text, "stroute_drain_window_seconds", **labels) == driver.config.server.drain_seconds
    driver.set_routing_state("DRAINING")
    text = get(base + "/metrics")[2]
    assert metric(text, "stroute_routing_state", state="DRAINING", **labels) == 1
    assert metric(text, "stroute_routing_state", state="READY", **labels) == 0
    driver.publish()
    text = get(base + "/metrics")[2]
    assert metric(text, "stroute_routing_state_since_timestamp_seconds", **labels) == driver.last_heartbeat_ms / 1000


def test_metric_labels_leave_kubernetes_names_alone(served):
    """`namespace`, `service` and `pod` are the labels Kubernetes service
    discovery adds: Prometheus would rename stroute's to exported_*."""
    import stroute

    driver, base = served
    driver.publish()
    text = get(base + "/metrics")[2]
    used = {name for key in samples(text) for name in label_names(key.partition("{")[2])}
    assert {"stroute_namespace", "stroute_service", "stroute_pod"} <= used
    assert not used & {"namespace", "service", "pod", "exported_namespace"}, used
    assert metric(text, "stroute_build_info", version=stroute.__version__) == 1
    assert metric(text, "process_resident_memory_bytes") > 0
    assert metric(text, "process_cpu_seconds_total") >= 0
    assert not [key for key in samples(text) if "_created" in key]
    openmetrics = urllib.request.Request(base + "/metrics", headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(openmetrics, timeout=5) as response:
        assert "_created" not in response.read().decode()


def test_placement_outcomes_for_a_gateway_registry(config, store):
    from prometheus_client import CollectorRegistry, generate_latest

    from stroute.client import OUTCOMES, ClientDriver
    from stroute.errors import NoAvailablePod
    from stroute.httpd import ClientMetrics

    driver = ServerDriver("game", 0, config, store=store)
    driver.set_load_state(1)
    driver.publish()
    with ClientDriver(config, store=store) as client:
        registry = CollectorRegistry()
        registry.register(ClientMetrics(client))
        client.place("u1", "game")
        client.place("u1", "game")
        with pytest.raises(NoAvailablePod):
            client.place("u2", "lobby")
        text = generate_latest(registry).decode()
        stats = client.stats()
        for outcome in OUTCOMES:
            assert metric(text, "stroute_placements_total", outcome=outcome, stroute_namespace="default") \
                == stats[outcome]
        assert stats["new"] == 1 and stats["no_capacity"] == 1 and stats["cache"] + stats["existing"] == 1
        assert "_created" not in text


def test_metrics_in_openmetrics_when_asked(served):
    driver, base = served
    driver.publish()
    request = urllib.request.Request(base + "/metrics", headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().decode().rstrip().endswith("# EOF")


def test_metrics_use_their_own_registry(served):
    from prometheus_client import REGISTRY, generate_latest

    driver, base = served
    driver.publish()
    assert "stroute_" in get(base + "/metrics")[2]
    assert b"stroute_" not in generate_latest(REGISTRY)


def test_failed_heartbeats_are_counted_and_timed(config):
    from stroute.store import Store

    dead = Store.from_url(f"redis://127.0.0.1:{free_port()}/0", options=config.with_overrides(
        **{"redis.socket_timeout": 1}).connect_options())
    driver = ServerDriver("game", 1, config.with_overrides(**{"state.period": 0.05}), store=dead)
    with HttpEndpoints(driver, "127.0.0.1", 0) as endpoints:
        driver.start()
        wait_until(lambda: driver.heartbeats_failed >= 2, what="two failed heartbeats")
        text = get(endpoints.url + "/metrics")[2]
        assert metric(text, "stroute_heartbeats_total", result="failed") >= 2
        assert metric(text, "stroute_heartbeats_total", result="ok") == 0
        assert metric(text, "stroute_publish_duration_seconds_count") >= 2
        assert get(endpoints.url + "/readyz")[0] == 503  # never published
        assert get(endpoints.url + "/healthz")[0] == 200
        driver.stop(0)
    dead.close()


def test_readiness_without_http(config, store):
    driver = ServerDriver("game", 0, config, store=store)
    assert readiness(driver)[0] is False
    driver.publish()
    assert readiness(driver) == (True, "READY")
    driver.set_routing_state(RoutingState.DRAINING)
    assert readiness(driver) == (False, "DRAINING")


def test_a_busy_address_is_refused_naming_it(config, store):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        driver = ServerDriver("game", 0, config, store=store)
        with pytest.raises(InvalidInput) as caught:
            HttpEndpoints(driver, "127.0.0.1", port)
        assert f"cannot listen on 127.0.0.1:{port} for --http" in str(caught.value)
        assert driver.publish_observers == []  # nothing left hooked


def test_readyz_is_503_while_the_load_is_unknown(config, store):
    def broken() -> int:
        raise RuntimeError("sensor gone")

    driver = ServerDriver("game", 0, config, store=store, load_source=broken)
    driver.publish()
    assert readiness(driver) == (False, "DRAINING: no load yet: sensor gone")


# --- bounded resources -------------------------------------------------------------------------------


def _threads() -> int:
    import threading

    return threading.active_count()


def test_partial_requests_are_dropped_after_the_read_timeout(served, monkeypatch):
    import time

    from stroute import httpd

    _, base = served
    host, port = base.removeprefix("http://").rsplit(":", 1)
    before = _threads()
    # More half-sent requests than workers: no thread per connection, and
    # each is closed by the server once the read timeout passes.
    slow = []
    for _ in range(3 * httpd.WORKERS):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line that ends it
        slow.append(sock)
    assert _threads() <= before  # the workers were there already
    started = time.monotonic()
    for sock in slow:
        assert sock.recv(1024) == b""  # closed by the server, nothing answered
        sock.close()
    took = time.monotonic() - started
    # Three rounds of WORKERS connections, each waiting at most the read timeout.
    assert took < 3 * httpd.READ_TIMEOUT_S + 3, took
    assert get(base + "/healthz")[::2] == (200, "ok\n")


def test_two_hundred_parallel_connects_are_all_answered(served):
    from concurrent.futures import ThreadPoolExecutor

    _, base = served
    host, port = base.removeprefix("http://").rsplit(":", 1)
    barrier = __import__("threading").Barrier(200)

    def one(_):
        barrier.wait(30)
        # Under a second: a SYN dropped by a full backlog is only sent again after one.
        with socket.create_connection((host, int(port)), timeout=0.9) as sock:
            sock.settimeout(10)
            sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        return data.split(b"\r\n", 1)[0]

    with ThreadPoolExecutor(200) as pool:
        answers = list(pool.map(one, range(200)))
    assert answers == [b"HTTP/1.0 200 OK"] * 200


# --- the command line ---------------------------------------------------------------------------


def test_serve_http_bind_error_is_exit_2_before_any_heartbeat(url, store):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("--redis-url", url, "serve", "-s", "game", "--pod", "0", "--http", f"127.0.0.1:{port}")
    assert result.exit_code == 2
    assert f"stroute: error: cannot listen on 127.0.0.1:{port} for --http: Address already in use" in result.stderr
    assert len(error_lines(result.stderr)) == 1
    assert read_state(store.client, "game", 0) is None


@pytest.mark.parametrize("args, message", [
    (("--http", "nowhere"), "invalid --http address 'nowhere'"),
    (("--http", "127.0.0.1:0", "--once"), "--http serves while the daemon runs and cannot be used with --once"),
])
def test_serve_http_bad_usage_is_exit_2(url, store, args, message):
    code, _, stderr = cli_json("--redis-url", url, "serve", "-s", "game", "--pod", "0", *args)
    assert code == 2 and message in stderr
    assert store.client.dbsize() == 0


@pytest.mark.realserver
def test_serve_http_child_through_ready_and_draining(real_url, redis_server, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client = redis_server.client()
    with Proc(tmp_path, "--redis-url", real_url, "serve", "-s", "game", "--pod", "2", "--load", "17",
              "--period", "0.2", "--drain-seconds", "60", "--http", f"127.0.0.1:{port}") as proc:
        proc.wait_for_stderr(f"HTTP on {base}: /healthz, /readyz, /metrics")
        assert get(base + "/healthz")[::2] == (200, "ok\n")
        wait_until(lambda: get(base + "/readyz")[0] == 200, what="/readyz 200")
        text = get(base + "/metrics")[2]
        labels = {"stroute_namespace": "default", "stroute_service": "game", "stroute_pod": "2"}
        assert metric(text, "stroute_load", **labels) == 17
        assert metric(text, "stroute_routing_state", state="READY", **labels) == 1
        wait_until(lambda: metric(get(base + "/metrics")[2], "stroute_heartbeats_total", result="ok") >= 3,
                   what="three heartbeats")
        assert read_state(client, "game", 2).state is RoutingState.READY

        proc.signal(signal.SIGTERM)
        wait_until(lambda: get(base + "/readyz")[0] == 503, what="/readyz 503 while draining")
        assert get(base + "/readyz")[2] == "DRAINING: stopping (SIGTERM): drain window of 60 s, then DOWN\n"
        assert get(base + "/healthz")[0] == 200  # alive while it drains
        text = get(base + "/metrics")[2]
        assert metric(text, "stroute_routing_state", state="DRAINING", **labels) == 1
        wait_until(lambda: read_state(client, "game", 2).state is RoutingState.DRAINING, what="DRAINING in Redis")
        assert proc.process.poll() is None  # the drain window is 60 s

        proc.signal(signal.SIGTERM)  # a second signal: DOWN now
        assert proc.wait(timeout=15) == 0
    assert read_state(client, "game", 2).state is RoutingState.DOWN
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(base + "/healthz", timeout=2)
    client.close()
