"""HTTP endpoints of a server driver: /healthz, /readyz and /metrics.

- `/healthz`: 200 while the process runs (the liveness probe).
- `/readyz`: 200 while the pod is READY and its state has reached Redis
  at least once; 503 while DRAINING or DOWN (including DRAINING because its
  load is not known yet), and before the first heartbeat (the readiness
  probe). A cordon does not make it unready: a
  cordoned pod still serves its linked users. Neither does a Redis outage
  after the first heartbeat: failing every pod's probe at once would take
  the whole service out of its load balancer.
- `/metrics`: Prometheus text format (0.0.4, or what the scraper's Accept
  header asks for, OpenMetrics included), from its own CollectorRegistry (not
  prometheus_client's global one, so an application that embeds a driver
  keeps its registry to itself).

An HTTP server in a daemon thread: it never keeps the process alive and
never blocks heartbeats. Its resources are bounded whatever clients do:
WORKERS threads answer requests (not one thread per connection), at most
PENDING accepted connections wait for one (more are closed at once), a
request not fully read within READ_TIMEOUT_S is dropped (a slow or
half-sent request cannot hold a worker for long), and the listen backlog
(BACKLOG) takes a burst of parallel connects. prometheus_client is
imported only here.
"""

from __future__ import annotations

import logging
import queue
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from stroute.errors import InvalidInput
from stroute.podstate import RoutingState

log = logging.getLogger("stroute.httpd")

ADDRESS_RULE = "must be HOST:PORT, e.g. 0.0.0.0:9090, 127.0.0.1:0 (a free port) or [::1]:9090"
# Seconds: a heartbeat is one or two round trips, usually well under 10 ms.
WORKERS = 8
PENDING = 256
READ_TIMEOUT_S = 2.0
BACKLOG = 1024  # the kernel caps it at net.core.somaxconn
# The paths, for probes and scrape configs (deploy/kubernetes uses them).
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
PUBLISH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT -> (host, port); '' as host = every interface; [v6]:PORT for IPv6."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise InvalidInput(f"invalid --http address {text!r}: {ADDRESS_RULE}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise InvalidInput(f"invalid --http address {text!r}: an IPv6 host goes in brackets, e.g. [::1]:9090")
    return host, int(port)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def readiness(driver: Any) -> tuple[bool, str]:
    """(ready, one line saying why) for a ServerDriver."""
    state, reason = driver.publishing()  # DRAINING while its load is unknown, whatever was asked
    if state is not RoutingState.READY:
        return False, state.name + (f": {reason}" if reason else "")
    if driver.last_heartbeat_ms is None:
        return False, "READY, but no heartbeat has reached Redis yet"
    return True, "READY" + (" (cordoned by an operator: no new users)" if driver.cordoned else "")


# Label names of every stroute series. Not `namespace`, `service` and `pod`:
# Kubernetes service discovery attaches those to each target, and Prometheus
# would rename ours to `exported_*`.
LABELS = ("stroute_namespace", "stroute_service", "stroute_pod")


class DriverMetrics:
    """The driver's metrics in a registry of their own.

    Counters and gauges are read from the driver when scraped; the publish
    latency histogram is fed by the driver's publish_observers hook. The
    registry also holds the process collector (CPU, memory, file
    descriptors of this process) and stroute_build_info. No `_created`
    series: they double the series count and no query here needs them.
    """

    def __init__(self, driver: Any) -> None:
        from prometheus_client import CollectorRegistry, Histogram, ProcessCollector

        self.driver = driver
        self.labels = dict(zip(LABELS, (driver.namespace, driver.service, str(driver.pod))))
        self.registry = CollectorRegistry()
        # Not in the registry: _DriverCollector yields it without its _created
        # sample. prometheus_client's disable_created_metrics() would do it for
        # every registry of the process, an embedding application's included.
        self._histogram = Histogram(
            "stroute_publish_duration_seconds",
            "Redis round-trip time of each state publish (heartbeat), failed ones included.",
            list(self.labels),
            buckets=PUBLISH_BUCKETS,
            registry=None,
        )
        self._publish = self._histogram.labels(**self.labels)
        self.registry.register(_DriverCollector(driver, self.labels, self._histogram))
        self.registry.register(_BuildInfo())
        ProcessCollector(registry=self.registry)
        driver.publish_observers.append(self._publish.observe)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type): Prometheus text 0.0.4 unless the scraper's
        Accept header asks for a format prometheus_client also speaks."""
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def close(self) -> None:
        try:
            self.driver.publish_observers.remove(self._publish.observe)
        except ValueError:
            pass


def _without_created(metrics):
    for metric in metrics:
        metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
        yield metric


class _BuildInfo:
    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        from stroute import __version__

        info = GaugeMetricFamily("stroute_build_info", "Always 1: the stroute version of this process.",
                                 labels=["version"])
        info.add_metric([__version__], 1)
        yield info


class ClientMetrics:
    """Placement outcomes of a ClientDriver, for a gateway's own registry:
    `registry.register(ClientMetrics(client))`. Read from client.stats() when
    scraped: stroute_placements_total{outcome}, one series per outcome."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        from stroute.client import OUTCOMES

        stats = self.client.stats()
        names = ["stroute_namespace", "outcome"]
        placements = CounterMetricFamily(
            "stroute_placements", "Placements by outcome: cache, existing, new, moved (where the answer came "
            "from), no_capacity and contention (failures).", labels=names)
        for outcome in OUTCOMES:
            placements.add_metric([self.client.namespace, outcome], stats[outcome])
        yield placements
        invalidations = CounterMetricFamily(
            "stroute_cache_invalidations", "Cached links Redis said changed (coherent cache).",
            labels=names[:1])
        invalidations.add_metric([self.client.namespace], stats["invalidations"])
        yield invalidations


class _DriverCollector:
    def __init__(self, driver: Any, labels: dict[str, str], histogram: Any) -> None:
        self.driver = driver
        self.names = list(labels)
        self.values = list(labels.values())
        self.histogram = histogram

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        d, names, values = self.driver, self.names, self.values
        yield from _without_created(self.histogram.collect())
        beats = CounterMetricFamily("stroute_heartbeats", "State publishes (heartbeats) by result.",
                                    labels=[*names, "result"])
        beats.add_metric([*values, "ok"], d.heartbeats_ok)
        beats.add_metric([*values, "failed"], d.heartbeats_failed)
        yield beats
        load = GaugeMetricFamily("stroute_load", "Load of the last heartbeat that reached Redis (lower is better).",
                                 labels=names)
        if d.last_load is not None:
            load.add_metric(values, d.last_load)
        yield load
        state = GaugeMetricFamily("stroute_routing_state", "1 for the pod's current routing state, 0 for the others.",
                                  labels=[*names, "state"])
        current = d.publishing()[0]
        for member in RoutingState:
            state.add_metric([*values, member.name], 1 if member is current else 0)
        yield state
        since = GaugeMetricFamily("stroute_routing_state_since_timestamp_seconds",
                                  "Redis time of the heartbeat that first published the current routing state.",
                                  labels=names)
        if d.state_since_ms is not None:
            since.add_metric(values, d.state_since_ms / 1000)
        yield since
        cordoned = GaugeMetricFamily("stroute_cordoned", "1 while an operator cordons this pod.", labels=names)
        cordoned.add_metric(values, 1 if d.cordoned else 0)
        yield cordoned
        last = GaugeMetricFamily("stroute_last_heartbeat_timestamp_seconds",
                                 "Redis time of the last heartbeat that reached Redis.", labels=names)
        if d.last_heartbeat_ms is not None:
            last.add_metric(values, d.last_heartbeat_ms / 1000)
        yield last
        config = d.config
        for name, value, help_ in (
            ("stroute_state_period_seconds", config.state.period, "Heartbeat period (state.period)."),
            ("stroute_state_expire_seconds", config.state.expire,
             "A pod whose last heartbeat is older than this is stale (state.expire)."),
            ("stroute_drain_window_seconds", config.server.drain_seconds,
             "DRAINING time of a warm stop before DOWN (server.drain_seconds)."),
        ):
            gauge = GaugeMetricFamily(name, help_, labels=names)
            gauge.add_metric(values, value)
            yield gauge
        links_set = CounterMetricFamily("stroute_links_set", "Links set through the driver's link methods.",
                                        labels=names)
        links_set.add_metric(values, d.links_set)
        yield links_set
        removed = CounterMetricFamily("stroute_links_removed", "Links removed through the driver's link methods.",
                                      labels=names)
        removed.add_metric(values, d.links_removed)
        yield removed


class _Server(HTTPServer):
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], handler: type, *, workers: int = WORKERS,
                 pending: int = PENDING) -> None:
        self._pending: queue.Queue = queue.Queue(maxsize=pending)
        self._workers = [threading.Thread(target=self._work, name=f"stroute-http-{n}", daemon=True)
                         for n in range(workers)]
        super().__init__(address, handler)  # binds: a busy address raises here, before any worker runs
        for worker in self._workers:
            worker.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self._pending.put_nowait((request, client_address))
        except queue.Full:  # every worker busy and the queue full: refuse rather than grow
            log.debug("HTTP: %d connections waiting, closing one from %s", self._pending.qsize(), client_address)
            self.shutdown_request(request)

    def _work(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is not worth a traceback on stderr.
        log.debug("HTTP: error answering %s", client_address, exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        while True:  # connections still waiting are closed, not answered
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in (w for w in self._workers if w.is_alive()):
            try:
                self._pending.put_nowait(None)
            except queue.Full:  # pragma: no cover (just emptied; the accept loop has stopped)
                break

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can hang on
        # a broken resolver; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "stroute"
    timeout = READ_TIMEOUT_S  # the socket's timeout while a request is read (and answered)
    app: "HttpEndpoints"

    def do_GET(self) -> None:
        self._respond(with_body=True)

    def do_HEAD(self) -> None:
        self._respond(with_body=False)

    def _respond(self, *, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        ctype = "text/plain; charset=utf-8"
        try:
            if path == HEALTH_PATH:
                code, body = 200, b"ok\n"
            elif path == READY_PATH:
                ready, why = readiness(self.app.driver)
                code, body = (200 if ready else 503), f"{why}\n".encode()
            elif path == METRICS_PATH:
                code = 200
                body, ctype = self.app.metrics.render(self.headers.get("Accept"))
            else:
                code, body = 404, b"not found: try /healthz, /readyz or /metrics\n"
        except Exception as exc:  # a scrape must not take the server down
            log.exception("HTTP %s failed", path)
            code, body = 500, f"error: {type(exc).__name__}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)


class HttpEndpoints:
    """/healthz, /readyz and /metrics of one ServerDriver, served from a daemon thread.

    The socket is bound by the constructor, so a bad or busy address fails
    there (InvalidInput naming it) before anything starts.
    """

    def __init__(self, driver: Any, host: str, port: int) -> None:
        self.driver = driver
        handler = type("Handler", (_Handler,), {"app": self})
        server_class = _Server6 if ":" in host else _Server
        try:
            self._httpd = server_class((host, port), handler)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise InvalidInput(
                f"cannot listen on {format_address(host, port)} for --http: {reason}",
                hint="pick another HOST:PORT (port 0 takes a free one)",
            ) from None
        try:
            self.metrics = DriverMetrics(driver)
        except BaseException:
            self._httpd.server_close()
            raise
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        return "http://" + format_address(*self.address)

    def start(self) -> "HttpEndpoints":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="stroute-http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        self.metrics.close()

    def __enter__(self) -> "HttpEndpoints":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
