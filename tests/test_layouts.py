"""Key layouts (`layout`: homo-go, homo-java): every operation on either, on a real redis-server.

The expected key names are written out literally here, from the originals'
key templates (homo-go: `sf:{NS:lk:UID}SVC`; homo-java:
`slug-lk:{APP:REGION:LOGICTYPE:UID:SVC}`), not built with stroute.keys, so a
wrong key builder fails these tests.
"""

from __future__ import annotations

import json

import pytest

from typer.testing import CliRunner

from stroute import acl
from stroute.cli.app import app
from stroute.client import ClientDriver
from stroute.config import Config
from stroute.errors import ConfigError, InvalidInput
from stroute.podstate import PodState, RoutingState
from stroute.server import ServerDriver
from stroute.store import Store
from support import all_keys

pytestmark = pytest.mark.realserver


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No stroute.yaml or user config dir, no STROUTE_* from the machine."""
    import os

    for key in list(os.environ):
        if key.startswith("STROUTE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    result = CliRunner().invoke(app, list(args), input=input, env=env or {})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"stroute {' '.join(args)} raised {result.exception!r}\n{result.stderr}")
    return result


def run_json(*args: str, env: dict[str, str] | None = None):
    result = run("-o", "json", *args, env=env)
    return result.exit_code, (json.loads(result.stdout) if result.stdout.strip() else None), result.stderr

GO, JAVA = "homo-go", "homo-java"
NAMESPACE = {GO: "default", JAVA: "app:eu:state"}


def expected(layout: str, kind: str, *parts: str) -> str:
    ns = NAMESPACE[layout]
    if layout == GO:
        return {
            "link": lambda uid, svc: f"sf:{{{ns}:lk:{uid}}}{svc}",
            "index": lambda uid: f"sf:{{{ns}:lk:{uid}}}",
            "state": lambda svc: f"sf:{{{ns}:state:{svc}}}",
            "ctl": lambda svc: f"sf:{{{ns}:state:{svc}}}:ctl",
            "services": lambda: f"sf:{{{ns}}}:services",
        }[kind](*parts)
    return {
        "link": lambda uid, svc: f"slug-lk:{{{ns}:{uid}:{svc}}}",
        "index": lambda uid: f"slug-lk:{{{ns}:{uid}}}",
        "state": lambda svc: f"slug-state:{{{ns}:{svc}}}",
        "ctl": lambda svc: f"slug-state:{{{ns}:{svc}}}:ctl",
        "services": lambda: f"slug-services:{{{ns}}}",
    }[kind](*parts)


@pytest.fixture(params=[GO, JAVA])
def layout(request):
    return request.param


@pytest.fixture
def lconfig(real_url, layout) -> Config:
    return Config().with_overrides(**{
        "redis.url": real_url, "layout": layout, "namespace": NAMESPACE[layout], "redis.socket_timeout": 2,
        "state.period": 0.2, "state.expire": 1.0, "state.refresh": 0})


@pytest.fixture
def lstore(lconfig):
    store = lconfig.open_store()
    yield store
    store.close()


# --- config, environment, flag ------------------------------------------------------------------


def test_config_layout_defaults_and_prefix(tmp_path):
    assert Config().layout == GO
    from stroute import config as config_module

    java = config_module.load(env={"STROUTE_LAYOUT": JAVA, "STROUTE_NAMESPACE": "app:eu:state"})
    assert (java.layout, java.prefix, java.namespace) == (JAVA, "slug", "app:eu:state")
    file = tmp_path / "c.yaml"
    file.write_text("layout: homo-java\nnamespace: a:b:c\nprefix: mine\n")
    mine = config_module.load(file, env={})
    assert (mine.layout, mine.prefix) == (JAVA, "mine")
    # A prefix that was the old layout's default follows the new layout.
    assert Config().with_overrides(layout=JAVA, namespace="a:b:c").prefix == "slug"


@pytest.mark.parametrize("env, message", [
    ({"STROUTE_LAYOUT": "homo-rust"}, "invalid value 'homo-rust' for layout (from environment): must be one of homo-go, homo-java"),
    ({"STROUTE_LAYOUT": JAVA}, "invalid value 'default' for namespace: with layout homo-java it must be APP:REGION:LOGICTYPE"),
    ({"STROUTE_LAYOUT": JAVA, "STROUTE_NAMESPACE": "app:eu"}, "invalid value 'app:eu' for namespace"),
    ({"STROUTE_LAYOUT": JAVA, "STROUTE_NAMESPACE": "app:-eu:x"}, "invalid value 'app:-eu:x' for namespace"),
    ({"STROUTE_NAMESPACE": "app:eu:state"}, "invalid value 'app:eu:state' for namespace: with layout homo-go it must be 1-63"),
])
def test_bad_layout_or_namespace_is_exit_2_and_writes_nothing(isolated, real_url, redis_server, env, message):
    result = run("--redis-url", real_url, "link", "set", "u1", "-s", "game", "--pod", "1", env=env)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert redis_server.client().dbsize() == 0


def test_layout_flag_beats_the_environment(isolated, real_url, redis_server):
    env = {"STROUTE_LAYOUT": GO}
    result = run("--redis-url", real_url, "--layout", JAVA, "-n", "app:eu:state", "link", "set", "u1", "-s", "game",
                 "--pod", "1", env=env)
    assert result.exit_code == 0, result.stderr
    assert set(all_keys(redis_server.client())) == {expected(JAVA, "link", "u1", "game"),
                                                    expected(JAVA, "index", "u1")}
    bad = run("--redis-url", real_url, "--layout", "java", "link", "get", "u1")
    assert bad.exit_code == 2 and "invalid value 'java' for layout (from the command line)" in bad.stderr


def test_java_uid_with_a_colon_is_refused(real_url, redis_server):
    store = Store.from_url(real_url, layout=JAVA)
    try:
        with pytest.raises(InvalidInput, match=r"invalid uid 'a:b' for layout homo-java: must have no ':'"):
            store.set("app:eu:state", "a:b", "game", 1)
        with pytest.raises(InvalidInput, match="for layout homo-java"):
            store.batch_get("app:eu:state", ["ok", "a:b"], "game")
    finally:
        store.close()
    assert redis_server.client().dbsize() == 0


def test_java_layout_is_refused_on_a_cluster(cluster_url):
    with pytest.raises(ConfigError, match="layout homo-java does not run on Redis Cluster .*different hash tags"):
        Store.from_url(cluster_url, layout=JAVA)


def test_acl_patterns_cover_every_key_of_the_layout(lstore, layout, redis_server):
    """Every key stroute writes in the layout matches the ACL rule's patterns (checked by Redis itself)."""
    ns = NAMESPACE[layout]
    rule = acl.rule(ns, prefix=lstore.prefix, layout=layout, user="layout-test")
    admin = redis_server.client()
    admin.execute_command("ACL", "SETUSER", rule.user, *rule.arguments(), ">pw")
    try:
        import redis

        client = redis.Redis.from_url(redis_server.url, username="layout-test", password="pw", decode_responses=True)
        confined = Store(client, layout=layout)
        confined.set(ns, "u1", "game", 1)
        confined.set(ns, "u2", "game", 2, 60_000)
        confined.set_tag(ns, "lobby", "game")
        confined.set_cordon(ns, "game", 2, True)
        confined.publish_state(ns, "game", 0, load=1, state=RoutingState.READY, epoch=5, expire_ms=1000,
                               summarize=True, reason="why")
        assert confined.snapshot(ns, "game", expire_ms=1000).pods[0].load == 1
        confined.close()
    finally:
        admin.execute_command("ACL", "DELUSER", "layout-test")
    assert acl.default_user("app:eu:state") == "stroute-app.eu.state"


# --- the store ------------------------------------------------------------------------------------


def test_links_are_the_layouts_keys(lstore, layout):
    ns, client = NAMESPACE[layout], lstore.client
    assert lstore.set(ns, "u0", "game", 0) is None  # pod 0, persistent
    assert lstore.set(ns, "u1", "game", 1, 30_000) is None  # temporary
    assert client.get(expected(layout, "link", "u0", "game")) == "0"
    assert client.pttl(expected(layout, "link", "u0", "game")) == -1
    assert client.hgetall(expected(layout, "index", "u0")) == {"game": "0"}
    assert client.get(expected(layout, "link", "u1", "game")) == "1"
    assert 0 < client.pttl(expected(layout, "link", "u1", "game")) <= 30_000
    assert not client.exists(expected(layout, "index", "u1"))

    assert lstore.get(ns, "u0", "game").pod == 0 and lstore.get(ns, "u0", "game").persistent
    assert lstore.set_if_absent(ns, "u1", "game", 3, None).pod == 1  # a temporary link upgraded in place
    assert client.hgetall(expected(layout, "index", "u1")) == {"game": "1"}
    assert lstore.try_set(ns, "u1", "game", 2) == (False, 1)
    assert lstore.move(ns, "u1", "game", 1, 2) == (True, 2)
    assert client.hget(expected(layout, "index", "u1"), "game") == "2"
    assert lstore.links_of(ns, "u1") == {"game": 2}
    assert lstore.batch_get(ns, ["u0", "u1", "nobody"], "game") == {"u0": 0, "u1": 2, "nobody": None}
    assert sorted((link.uid, link.pod) for link in lstore.scan_links(ns)) == [("u0", 0), ("u1", 2)]
    removed, _ = lstore.remove(ns, "u1", "game", after_ms=5_000)  # delayed: still there, with a TTL
    assert removed
    assert 0 < client.pttl(expected(layout, "link", "u1", "game")) <= 5_000
    assert not client.exists(expected(layout, "index", "u1"))
    assert lstore.remove(ns, "u0", "game")[0]
    assert not client.exists(expected(layout, "link", "u0", "game"), expected(layout, "index", "u0"))


def test_state_cordon_and_registry_are_the_layouts_keys(lstore, layout):
    ns, client = NAMESPACE[layout], lstore.client
    lstore.publish_state(ns, "game", 1, load=7, state=RoutingState.READY, epoch=9, expire_ms=1000)
    assert PodState.decode(client.hget(expected(layout, "state", "game"), "1")).load == 7
    assert client.smembers(expected(layout, "services")) == {"game"}
    lstore.set_cordon(ns, "game", 1, True)
    assert client.hgetall(expected(layout, "ctl", "game")) == {"1": "cordon"}
    view = lstore.snapshot(ns, "game", expire_ms=1000).pods[1]
    assert view.cordoned and view.load == 7 and view.state is RoutingState.READY


def test_a_layout_does_not_see_the_other_layouts_keys(real_url):
    go, java = Store.from_url(real_url), Store.from_url(real_url, layout=JAVA)
    try:
        go.set("default", "u1", "game", 1)
        java.set("app:eu:state", "u1", "game", 2)
        assert [link.pod for link in go.scan_links("default")] == [1]
        assert [link.pod for link in java.scan_links("app:eu:state")] == [2]
    finally:
        go.close()
        java.close()


# --- the drivers ------------------------------------------------------------------------------------


def test_server_publishes_and_client_places_on_the_layout(lconfig, lstore, layout):
    ns, client = NAMESPACE[layout], lstore.client
    servers = [ServerDriver("game", pod, lconfig, store=lstore) for pod in range(3)]
    for server in servers:
        server.set_load_state(1)
        server.publish()
    lstore.set_cordon(ns, "game", 2, True)
    assert set(client.hkeys(expected(layout, "state", "game"))) == {"0", "1", "2"}
    driver = ClientDriver(lconfig, store=lstore, coherent=False)
    try:
        pods = {uid: driver.compute_linked_pod(ns, uid, "game") for uid in (f"u{i}" for i in range(60))}
        assert set(pods.values()) <= {0, 1} and len(set(pods.values())) == 2
        for uid, pod in pods.items():
            assert client.get(expected(layout, "link", uid, "game")) == str(pod)
        assert driver.compute_linked_pod(ns, "p1", "game", persist=True) in (0, 1)
        assert client.hget(expected(layout, "index", "p1"), "game") in ("0", "1")
        assert servers[0].set_linked_pod(ns, "s1", "game", 0) is None
        assert client.get(expected(layout, "link", "s1", "game")) == "0"
    finally:
        driver.close()
        for server in servers:
            server.close()


def test_a_java_driver_refuses_another_java_namespace_as_a_mismatch(lconfig, lstore, layout):
    from stroute.errors import NamespaceMismatch

    driver = ClientDriver(lconfig, store=lstore, coherent=False)
    try:
        with pytest.raises(NamespaceMismatch, match="refused: this driver is bound to namespace"):
            driver.get_linked_pod("app:us:state", "u1", "game")
    finally:
        driver.close()


# --- the commands -----------------------------------------------------------------------------------


def test_commands_work_on_the_layout(isolated, lconfig, lstore, layout, real_url, redis_server):
    ns = NAMESPACE[layout]
    env = {"STROUTE_LAYOUT": layout, "STROUTE_NAMESPACE": ns, "STROUTE_STATE_REFRESH": "0"}
    for pod in range(3):
        server = ServerDriver("game", pod, lconfig, store=lstore)
        server.set_load_state(pod)
        server.publish()
    lstore.set(ns, "keep", "game", 0)

    def cli(*args):
        return run_json("--redis-url", real_url, *args, env=env)

    code, data, err = cli("link", "set", "u1", "-s", "game", "--pod", "1")
    assert code == 0, err
    code, data, err = cli("link", "get", "u1", "-s", "game")
    assert code == 0 and [link["pod"] for link in data["links"]] == [1], err
    code, data, err = cli("place", "-s", "game", "p1", "p2", "p3")
    assert code == 0, err
    placed = {row["uid"]: row["pod"] for row in data["placements"]}
    assert set(placed) == {"p1", "p2", "p3"}
    for uid, pod in placed.items():
        assert lstore.client.get(expected(layout, "link", uid, "game")) == str(pod)
    code, data, err = cli("pods", "-s", "game")
    assert code == 0, err
    assert sorted(row["pod"] for row in data["pods"]) == [0, 1, 2]
    code, data, err = cli("top")
    assert code == 0 and "game" in json.dumps(data), err

    exported = run("--redis-url", real_url, "export", env=env)
    assert exported.exit_code == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    assert {(rec["uid"], rec["pod"]) for rec in lines} == {("keep", 0), ("u1", 1), *placed.items()}
    assert {rec["namespace"] for rec in lines} == {ns}
    redis_server.client().flushall()
    imported = run("--redis-url", real_url, "import", "-", input=exported.stdout, env=env)
    assert imported.exit_code == 0, imported.stderr
    assert lstore.client.hgetall(expected(layout, "index", "keep")) == {"game": "0"}
    assert lstore.client.get(expected(layout, "link", "u1", "game")) == "1"

    for pod in range(3):  # the import above started from an empty database: the pods publish again
        lstore.publish_state(ns, "game", pod, load=pod, state=RoutingState.READY, epoch=None, expire_ms=60_000)
    code, data, err = cli("link", "batch-get", "-s", "game", "keep", "u1", "nobody")
    assert code == 0, err
    assert json.dumps(data).count('"keep"') == 1 and "nobody" in json.dumps(data)
    code, data, err = cli("link", "count")
    assert code == 0 and data["total"] == 5, err
    code, data, err = cli("tag", "set", "lobby", "game")
    assert code == 0, err
    code, data, err = cli("tag", "get", "lobby")
    assert code == 0 and data["service"] == "game", err
    code, data, err = cli("link", "remove", "u1", "-s", "game", "--after", "30")
    assert code == 0, err
    assert 0 < lstore.client.ttl(expected(layout, "link", "u1", "game")) <= 30
    code, data, err = cli("doctor")
    checks = {c["name"]: c["status"] for c in data["checks"]}
    assert checks["write"] == "PASS" and checks["index"] == "PASS" and checks["links"] == "PASS", data["checks"]
    assert checks["service:game"] == "PASS" and "services" not in checks, data["checks"]
    lstore.publish_state(ns, "game", 7, load=0, state=RoutingState.DOWN, epoch=None, expire_ms=60_000)
    lstore.set(ns, "gone", "game", 7, 60_000)
    code, data, err = cli("link", "clear", "-s", "game", "--pod", "7")
    assert code == 0 and not lstore.client.exists(expected(layout, "link", "gone", "game")), err
    code, data, err = cli("pod", "forget", "game", "7")
    assert code == 0 and not lstore.client.hexists(expected(layout, "state", "game"), "7"), err

    code, data, err = cli("pod", "drain", "game", "1", "--migrate")
    assert code == 0, err
    assert lstore.snapshot(ns, "game", expire_ms=60_000).pods[1].cordoned
    assert all(link.pod != 1 or link.persistent for link in lstore.scan_links(ns, service="game"))
