"""deploy/: the Kubernetes manifests, the Prometheus rules and the Grafana
dashboard, checked against the code they describe.

The manifests are parsed and compared with serve's options, the config's
environment names, httpd's paths and the server driver's stop budget (all
imported, never copied); then the sidecar is run as the manifest says,
against a real redis-server with the Secret's credentials. The rules and
the dashboard may only query series that a running `stroute serve --http`
(and a gateway's ClientMetrics) export; promtool checks the rules, their
unit tests and the exposition, and is required under CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import typer
import yaml

from stroute import config as config_module
from stroute import identity
from stroute.httpd import HEALTH_PATH, METRICS_PATH, READY_PATH, parse_address
from stroute.podstate import PodState, RoutingState
from stroute.server import STOP_GRACE_S
from stroute.testing import RedisServer, free_port
from support import stroute_bin, wait_until

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yml"
DASHBOARD = DEPLOY / "grafana" / "stroute.json"


# --- the manifests --------------------------------------------------------------------------------------


def documents() -> list[dict]:
    out = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        out += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def one(kind: str) -> dict:
    found = [doc for doc in documents() if doc["kind"] == kind]
    assert len(found) == 1, (kind, found)
    return found[0]


def pod_spec() -> dict:
    return one("StatefulSet")["spec"]["template"]["spec"]


def sidecar() -> dict:
    found = [c for c in pod_spec()["containers"] if c.get("args", [])[:1] == ["serve"]]
    assert len(found) == 1, "one container runs `stroute serve`"
    return found[0]


def serve_command():
    from stroute.cli.app import app

    return typer.main.get_command(app).commands["serve"]


def serve_args() -> dict[str, str | bool]:
    """The sidecar's args parsed by serve's own option parser: {param name: value}."""
    args = sidecar()["args"][1:]
    context = serve_command().make_context("serve", list(args), resilient_parsing=True)
    return {name: value for name, value in context.params.items() if value not in (None, False)}


def env_of(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def secret_data() -> dict[str, str]:
    secret = one("Secret")
    return dict(secret.get("stringData", {}))


def sidecar_config(mounts: dict[str, Path] | None = None) -> config_module.Config:
    """The config the sidecar would run with: its environment, values from
    the Secret resolved, mounted paths mapped to `mounts`, and its flags."""
    env = {}
    for name, item in env_of(sidecar()).items():
        if "value" in item:
            env[name] = mounted(item["value"], mounts)
        elif "secretKeyRef" in item["valueFrom"]:
            env[name] = secret_data()[item["valueFrom"]["secretKeyRef"]["key"]]
    if mounts is None:  # the Secret's file is not there to read
        env.pop(config_module.env_name("redis.password_file"), None)
    flags = serve_args()
    config = config_module.load(env=env)
    return config.with_overrides("the manifest's flags", **{
        "state.period": flags.get("period"), "state.expire": flags.get("expire"),
        "server.drain_seconds": flags.get("drain_seconds"),
    })


def mounted(value: str, mounts: dict[str, Path] | None) -> str:
    for mount_path, local in (mounts or {}).items():
        if value.startswith(mount_path.rstrip("/") + "/"):
            return str(local / value[len(mount_path.rstrip("/")) + 1:])
    return value


def volume_mounts(container: dict) -> dict[str, dict]:
    """{mountPath: the volume} of a container."""
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}


def test_probes_are_the_http_endpoints_on_the_http_port():
    container = sidecar()
    _, port = parse_address(serve_args()["http"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert ready["path"] == READY_PATH and live["path"] == HEALTH_PATH
    for probe in (ready, live):
        assert ports.get(probe["port"], probe["port"]) == port
    annotations = one("StatefulSet")["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == port
    assert annotations["prometheus.io/path"] == METRICS_PATH
    service_ports = {p["name"]: p["port"] for p in one("Service")["spec"]["ports"]}
    assert port in service_ports.values()


def test_flags_are_serve_options():
    options = {opt for param in serve_command().params for opt in param.opts}
    flags = [arg for arg in sidecar()["args"][1:] if arg.startswith("-")]
    assert flags and set(flags) <= options, set(flags) - options
    load_file = serve_args()["load_file"]
    # The file the game writes, on a volume the two containers share.
    game = next(c for c in pod_spec()["containers"] if c["name"] != sidecar()["name"])
    assert env_of(game)["GAME_LOAD_FILE"]["value"] == str(load_file)
    shared = {path: v["name"] for path, v in volume_mounts(game).items()}
    assert any(str(load_file).startswith(path + "/") for path in shared)


def test_environment_names_are_the_code_s():
    env = env_of(sidecar())
    config_names = {config_module.env_name(key) for key in config_module.keys()}
    serve_names = {param.envvar for param in serve_command().params if param.envvar}
    for name in env:
        assert name in config_names | serve_names | set(identity.ENV_VARS), f"{name} is read by nothing"
    # The pod index: the ordinal of the pod's own name, from the downward API.
    pod_name = next(name for name in identity.ENV_VARS if name in env)
    assert env[pod_name]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    set_name = one("StatefulSet")["metadata"]["name"]
    assert identity.pod_from_env({pod_name: f"{set_name}-2"}) == (2, f"{pod_name}={set_name}-2")
    assert "STROUTE_POD" not in env and "--pod" not in sidecar()["args"]  # one manifest for every pod
    assert env["STROUTE_SERVICE"]["value"] == "game"
    config = sidecar_config()
    config_module.validate(config)  # the values follow the config's rules too


def test_grace_period_covers_the_stop_budget():
    config = sidecar_config()
    grace = pod_spec()["terminationGracePeriodSeconds"]
    budget = config.server.drain_seconds + STOP_GRACE_S
    assert grace >= budget, f"terminationGracePeriodSeconds {grace} < drain window + STOP_GRACE_S = {budget}"
    assert grace <= budget + 30, "a grace period far past the stop budget only delays a stuck pod's kill"


def test_credentials_come_from_the_secret():
    env = env_of(sidecar())
    secret_name = one("Secret")["metadata"]["name"]
    password, password_file = (config_module.env_name(k) for k in ("redis.password", "redis.password_file"))
    assert password in env or password_file in env
    if password in env:
        assert env[password]["valueFrom"]["secretKeyRef"]["name"] == secret_name
    if password_file in env:
        path = env[password_file]["value"]
        mount, volume = next((m, v) for m, v in volume_mounts(sidecar()).items() if path.startswith(m + "/"))
        assert volume["secret"]["secretName"] == secret_name
        items = {item["path"]: item["key"] for item in volume["secret"].get("items", [])}
        assert items.get(path[len(mount) + 1:], path[len(mount) + 1:]) in secret_data()
        # Readable by the sidecar's user: the files belong to fsGroup, so the group needs read.
        assert volume["secret"]["defaultMode"] & 0o040
    text = "\n".join(path.read_text() for path in KUBERNETES.glob("statefulset*.yaml"))
    assert secret_data()["password"] not in text
    assert "@" not in env[config_module.env_name("redis.url")]["value"]  # no credentials in the URL


def test_resources_are_set():
    resources = sidecar()["resources"]

    def mib(text: str) -> float:
        return float(text.removesuffix("Mi"))

    def millicores(text: str) -> float:
        return float(text.removesuffix("m"))

    assert mib(resources["requests"]["memory"]) <= mib(resources["limits"]["memory"])
    assert millicores(resources["requests"]["cpu"]) <= millicores(resources["limits"]["cpu"])


@pytest.mark.realserver
def test_the_sidecar_runs_as_the_manifest_says(tmp_path):
    """The manifest's args and environment, with the Secret's credentials as
    Kubernetes mounts them (a symlink into ..data), against a real Redis
    that requires them: ready on the probe path, publishing the load file
    as the pod of its name's ordinal; DRAINING (readiness 503, liveness 200)
    on SIGTERM; DOWN on a second one."""
    data = secret_data()
    server = RedisServer().start()
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", data["username"], "on", f">{data['password']}", "~*", "&*", "+@all")
    admin.close()
    admin = server.client(username=data["username"], password=data["password"])
    admin.execute_command("ACL", "SETUSER", "default", "off")  # only the Secret's user gets in
    mounts = {}
    for mount_path, volume in volume_mounts(sidecar()).items():
        local = tmp_path / volume["name"]
        local.mkdir()
        mounts[mount_path] = local
        if "secret" in volume:
            (local / "..data").mkdir()
            for item in volume["secret"]["items"]:
                (local / "..data" / item["path"]).write_text(data[item["key"]] + "\n")
                (local / item["path"]).symlink_to(Path("..data") / item["path"])
    load_file = Path(mounted(str(serve_args()["load_file"]), mounts))
    load_file.write_text("17\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith("STROUTE_") and k not in identity.ENV_VARS}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg"), PYTHONUNBUFFERED="1", HOSTNAME="game-2")
    for name, item in env_of(sidecar()).items():
        if "value" in item:
            env[name] = mounted(item["value"], mounts)
        elif "secretKeyRef" in item["valueFrom"]:
            env[name] = data[item["valueFrom"]["secretKeyRef"]["key"]]
        elif item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name":
            env[name] = "game-2"
    env[config_module.env_name("redis.url")] = server.url  # the manifest's Redis, here on loopback
    port = free_port()
    args = [mounted(arg, mounts) for arg in sidecar()["args"]]
    args[args.index("--http") + 1] = f"127.0.0.1:{port}"
    base = f"http://127.0.0.1:{port}"
    namespace = env[config_module.env_name("namespace")]
    process = subprocess.Popen([stroute_bin(), *args], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: status(base + READY_PATH) == 200 or process.poll() is not None, timeout=20,
                   what="the readiness probe")
        assert process.poll() is None, process.communicate()[1]
        raw = admin.hget(f"sf:{{{namespace}:state:game}}", "2")
        state = PodState.decode(raw)
        assert (state.load, state.state) == (17, RoutingState.READY)
        metrics = get(base + METRICS_PATH)
        assert f'stroute_load{{stroute_namespace="{namespace}",stroute_pod="2",stroute_service="game"}} 17.0' \
            in metrics

        process.send_signal(signal.SIGTERM)
        wait_until(lambda: status(base + READY_PATH) == 503, what="readiness 503 while draining")
        assert status(base + HEALTH_PATH) == 200
        wait_until(lambda: PodState.decode(admin.hget(f"sf:{{{namespace}:state:game}}", "2")).state
                   is RoutingState.DRAINING, what="DRAINING in Redis")
        assert process.poll() is None  # inside the drain window
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=config_module.Config().server.drain_seconds + STOP_GRACE_S)
        assert process.returncode == 0, stderr
        state = PodState.decode(admin.hget(f"sf:{{{namespace}:state:game}}", "2"))
        assert state.state is RoutingState.DOWN
        assert data["password"] not in stderr
        assert f"serving pod 2 (from HOSTNAME=game-2)" not in stderr  # POD_NAME comes first
        assert "serving pod 2 (from POD_NAME=game-2)" in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        admin.close()
        server.close()


@pytest.mark.realserver
def test_the_measurement_script_measures_a_running_sidecar():
    """deploy/kubernetes/measure_sidecar.py, which sized the resources, still runs (briefly here)."""
    import sys

    from stroute.testing import server_binary

    measured = subprocess.run([sys.executable, str(KUBERNETES / "measure_sidecar.py"), "--seconds", "2",
                               "--period", "1", "--scrape", "1", "--redis-server", server_binary()],
                              capture_output=True, text=True, timeout=60)
    assert measured.returncode == 0, measured.stderr
    report = json.loads(measured.stdout)
    assert report["scrapes"] >= 2 and report["probes"] >= 2
    assert 5 < report["rss_mib_max"] < 1024 and report["cpu_seconds"] >= 0 and report["startup_cpu_seconds"] > 0
    limits = sidecar()["resources"]["limits"]
    assert report["rss_mib_max"] < float(limits["memory"].removesuffix("Mi"))


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


# --- what is exported ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exposition(redis_server, tmp_path_factory) -> str:
    """The /metrics text of a real `stroute serve --http` that has published,
    then that of a gateway's ClientMetrics after a placement."""
    from prometheus_client import CollectorRegistry, generate_latest

    from stroute.client import ClientDriver
    from stroute.httpd import ClientMetrics

    client = redis_server.client()
    client.flushall()
    client.close()
    tmp = tmp_path_factory.mktemp("exposition")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STROUTE_")}
    env.update(XDG_CONFIG_HOME=str(tmp / "xdg"), PYTHONUNBUFFERED="1")
    process = subprocess.Popen([stroute_bin(), "--redis-url", redis_server.url, "serve", "-s", "game", "--pod", "0",
                                "--load", "3", "--period", "0.2", "--drain-seconds", "0", "--http", f"127.0.0.1:{port}"],
                               env=env, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: status(f"http://127.0.0.1:{port}{READY_PATH}") == 200 or process.poll() is not None,
                   timeout=20, what="serve ready")
        assert process.poll() is None, process.communicate()[1]
        served = get(f"http://127.0.0.1:{port}{METRICS_PATH}")
        config = config_module.Config().with_overrides(**{"redis.url": redis_server.url})
        with ClientDriver(config) as gateway:
            registry = CollectorRegistry()
            registry.register(ClientMetrics(gateway))
            assert gateway.place("u1", "game").pod == 0
            placed = generate_latest(registry).decode()
    finally:
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    return served + placed


def exported(text: str) -> tuple[set[str], set[str]]:
    """(sample names, label names) of an exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    names, labels = set(), set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.add(sample.name)
            labels |= set(sample.labels)
    return names, labels


# PromQL's own words, and the labels a scrape adds.
PROMQL = {
    "sum", "min", "max", "avg", "count", "group", "topk", "bottomk", "by", "without", "on", "ignoring",
    "group_left", "group_right", "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "time",
    "histogram_quantile", "max_over_time", "min_over_time", "label_values", "deriv", "clamp_min", "vector",
    "humanizeDuration", "humanizePercentage",
}
SCRAPE_LABELS = {"instance", "job"}


def identifiers(expr: str) -> set[str]:
    """Metric and label names in a PromQL expression (strings, ranges, variables and numbers left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)
    words = set(re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", expr))
    return words - PROMQL


def rule_groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["groups"]


def recorded() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    queries += [var["definition"] for var in board["templating"]["list"] if var["type"] == "query"]
    return queries


def test_rules_query_only_exported_series(exposition):
    names, labels = exported(exposition)
    allowed = names | labels | recorded() | SCRAPE_LABELS
    for group in rule_groups():
        for rule in group["rules"]:
            unknown = identifiers(rule["expr"]) - allowed
            assert not unknown, f"{rule.get('record') or rule.get('alert')} queries {unknown}, not exported"
    alerts = {rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule}
    assert {"StrouteNoRoutablePod", "StroutePodStale", "StrouteHeartbeatFailures", "StrouteLoadSkew",
            "StrouteDrainStuck"} <= alerts


def test_dashboard_queries_only_exported_series(exposition):
    """Not even recording rules: the dashboard works on a Prometheus without rules.yml."""
    names, labels = exported(exposition)
    queries = dashboard_queries()
    used = set()
    for query in queries:
        unknown = identifiers(query) - names - labels - SCRAPE_LABELS
        assert not unknown, f"the dashboard queries {unknown}, not exported: {query}"
        used |= identifiers(query) & names
    # What the issue asks the dashboard to show.
    assert {"stroute_load", "stroute_routing_state", "stroute_placements_total",
            "stroute_publish_duration_seconds_bucket", "stroute_routing_state_since_timestamp_seconds",
            "stroute_drain_window_seconds"} <= used
    assert "_created" not in exposition


def test_identifiers_finds_unknown_names():
    assert identifiers('sum by (stroute_pod) (rate(stroute_lod{a="b c"}[5m])) > bool 2') == \
        {"stroute_pod", "stroute_lod", "a"}


# --- promtool ---------------------------------------------------------------------------------------------


@pytest.fixture
def promtool() -> str:
    """promtool from PATH. Under CI (CI=true) it must be there: .ci/run installs it."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("promtool is not on PATH: .ci/run must install it (Debian's prometheus package)")
        pytest.skip("promtool is not installed (Debian's prometheus package ships it); CI runs these")
    return found


def run_promtool(promtool: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], input=stdin, capture_output=True, text=True, timeout=120,
                          cwd=RULES.parent)


def test_promtool_checks_the_rules(promtool):
    checked = run_promtool(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_promtool_unit_tests_of_the_alerts(promtool):
    tested = run_promtool(promtool, "test", "rules", str(RULES_TEST))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_checks_the_exposition(promtool, exposition):
    checked = run_promtool(promtool, "check", "metrics", stdin=exposition)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), \
        checked.stdout + checked.stderr


def test_promtool_parses_every_dashboard_query(promtool, tmp_path):
    """Each query, with Grafana's variables filled in, as a recording rule."""
    rules = [{"record": f"dashboard:query_{n}", "expr": re.sub(r"\$__rate_interval", "5m",
                                                              re.sub(r"\$(namespace|service)", ".*", query))}
             for n, query in enumerate(dashboard_queries()) if not query.startswith("label_values")]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = run_promtool(promtool, "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
