"""The JSON contract: every command's JSON (and YAML) output names its schema
and validates against docs/schemas/<name>.json, whatever its input; every
command has a schema, and every schema file describes a command.

The commands run in-process (CliRunner) on memory:// and on a real
redis-server; `watch` runs the real `stroute` binary and reads its NDJSON.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import typer
import yaml
from jsonschema import Draft202012Validator

from ops_support import Proc, cli, isolated, put_state, redis_millis  # noqa: F401
from stroute import backends
from stroute.cli.app import app
from stroute.config import Config
from stroute.contract import SCHEMAS, document, schema_id
from stroute.podstate import RoutingState

pytestmark = pytest.mark.usefixtures("isolated")

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"
# Commands whose output another command's schema describes.
SHARED = {"pod-uncordon": "pod-cordon", "config-show": "config"}


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def check(name: str, document_: object) -> None:
    """document_ is a `name` document: it says so, and its schema holds."""
    assert isinstance(document_, dict) and document_.get("schema") == schema_id(name), document_
    errors = sorted(validator(name).iter_errors(document_), key=str)
    assert not errors, f"{name}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.fixture(params=["memory", pytest.param("real", marks=pytest.mark.realserver)])
def where(request):
    if request.param == "memory":
        name = f"contract-{uuid.uuid4().hex}"
        yield f"memory://{name}"
        backends.forget_memory(name)
    else:
        yield request.getfixturevalue("real_url")


@pytest.fixture
def world(where):
    """Service game: pod 0 READY (with an epoch), 1 DRAINING, 2 cordoned READY,
    3 stale; service chat: no pod alive. Persistent and temporary links."""
    config = Config().with_overrides(**{"redis.url": where})
    store = config.open_store()
    client = store.client
    put_state(client, "game", 0, load=5, epoch=redis_millis(client) - 5000)
    put_state(client, "game", 1, load=7, state=RoutingState.DRAINING)
    put_state(client, "game", 2, load=3)
    put_state(client, "game", 3, load=1, age_ms=120_000)
    put_state(client, "chat", 0, load=1, age_ms=120_000)
    store.set_cordon("default", "game", 2, True)
    store.set("default", "p1", "game", 0, None)
    store.set("default", "p1", "chat", 0, None)
    store.set("default", "t1", "game", 3, 60_000)
    store.set("default", "t2", "game", 3, 45_500)
    line = {"schema": "stroute/export/v1", "namespace": "default", "uid": "i1", "service": "game", "pod": 1,
            "persistent": True, "ttl_s": None}
    Path("links.jsonl").write_text(json.dumps(line) + "\n")  # the test's own directory (isolated)
    Path("bad.jsonl").write_text(json.dumps(line) + "\n" + json.dumps({**line, "pod": -1}) + "\n")
    yield where
    store.close()


def run(url: str, name: str, *args: str, fmt: str = "json", codes: tuple[int, ...] = (0,)) -> list[object]:
    """Run `stroute -o FMT ARGS`, check its exit code, and return the documents it printed, each checked."""
    result = cli("--redis-url", url, "-o", fmt, *args)
    assert result.exit_code in codes, (args, result.exit_code, result.stderr)
    out = result.stdout
    if fmt == "yaml":
        docs = [d for d in yaml.safe_load_all(out) if d is not None]
    else:
        docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert docs, (args, result.stderr)
    for doc in docs:
        check(name, doc)
    return docs


# Each case: the schema, then the command line and the exit codes allowed.
CASES = [
    ("acl", ["acl"], (0,)),
    ("acl", ["acl", "--no-scan"], (0,)),
    ("config", ["config", "show"], (0,)),
    ("config-validate", ["config", "validate"], (0,)),
    ("demo", ["demo", "--users", "20", "--demo-url", "memory://{demo}"], (0,)),
    ("doctor", ["doctor"], (0, 1)),  # the stale pods are warnings or failures: the shape is the same
    ("export", ["export"], (0,)),
    ("import", ["import", "links.jsonl"], (0,)),
    ("import", ["import", "bad.jsonl", "--dry-run"], (2,)),
    ("link-batch-get", ["link", "batch-get", "-s", "game", "p1", "t1", "nobody"], (0,)),
    ("link-clear", ["link", "clear", "-s", "game", "--pod", "3", "--dry-run"], (0,)),
    ("link-clear", ["link", "clear", "-s", "game", "--pod", "3"], (0,)),
    ("link-get", ["link", "get", "p1"], (0,)),
    ("link-get", ["link", "get", "t1", "-s", "game"], (0,)),
    ("link-get", ["link", "get", "p1", "-s", "game"], (0,)),
    ("link-get", ["link", "get", "nobody", "-s", "game"], (3,)),
    ("link-get", ["link", "get", "nobody"], (3,)),
    ("link-list", ["link", "list"], (0,)),
    ("link-list", ["link", "list", "-s", "game", "--pod", "3"], (0,)),
    ("link-remove", ["link", "remove", "t1", "-s", "game"], (0,)),
    ("link-remove", ["link", "remove", "t1", "-s", "game", "--after", "5"], (0,)),
    ("link-remove", ["link", "remove", "nobody", "-s", "game"], (3,)),
    ("link-remove", ["link", "remove", "p1", "-s", "game", "--if-pod", "2"], (4,)),
    ("link-set", ["link", "set", "n1", "-s", "game", "--pod", "2"], (0,)),
    ("link-set", ["link", "set", "n2", "-s", "game", "--pod", "2", "--ttl", "1.5"], (0,)),
    ("link-try-set", ["link", "try-set", "n3", "-s", "game", "--pod", "0"], (0,)),
    ("link-try-set", ["link", "try-set", "p1", "-s", "game", "--pod", "2"], (4,)),
    ("place", ["place", "u1", "-s", "game"], (0,)),
    ("place", ["place", "u1", "u2", "p1", "-s", "game"], (0,)),
    ("place", ["place", "u3", "-s", "game", "--explain"], (0,)),
    ("place", ["place", "u4", "-s", "chat"], (5,)),
    ("place", ["place", "u4", "u5", "-s", "chat"], (5,)),
    ("place", ["place", "u4", "-s", "chat", "--explain"], (5,)),
    ("pod-cordon", ["pod", "cordon", "-s", "game", "--pod", "0"], (0,)),
    ("pod-cordon", ["pod", "uncordon", "-s", "game", "--pod", "2"], (0,)),
    ("pod-drain", ["pod", "drain", "-s", "game", "--pod", "3", "--dry-run"], (0,)),
    ("pod-drain", ["pod", "drain", "-s", "game", "--pod", "3", "--migrate"], (0,)),
    ("pod-forget", ["pod", "forget", "-s", "game", "--pod", "3"], (0,)),
    ("pod-forget", ["pod", "forget", "-s", "game", "--pod", "9"], (3,)),
    ("pods", ["pods", "-s", "game"], (0,)),
    ("pods", ["pods", "-s", "game", "--count-links"], (0,)),
    ("pods", ["pods", "-s", "game", "--watch", "--interval", "0.1", "--count", "2"], (0,)),
    ("serve", ["serve", "-s", "game", "--pod", "5", "--load", "4", "--once"], (0,)),
    ("tag-get", ["tag", "get", "lobby"], (3,)),
    ("tag-set", ["tag", "set", "lobby", "game"], (0,)),
    ("top", ["top"], (0,)),
    ("top", ["top", "--count-links"], (0,)),
    ("top", ["top", "--watch", "--interval", "0.1", "--count", "2"], (0,)),
    ("link-count", ["link", "count"], (0,)),
    ("link-count", ["link", "count", "-s", "game"], (0,)),
    ("version", ["version"], (0,)),
    ("embedded-status", ["embedded", "status"], (3,)),
    ("embedded-stop", ["embedded", "stop"], (3,)),
]


@pytest.mark.parametrize("name, args, codes", CASES, ids=[" ".join(c[1]) for c in CASES])
def test_every_command_prints_documents_its_schema_validates(world, name, args, codes):
    demo = f"demo-{uuid.uuid4().hex}"  # the demo's own store, apart from the world's
    try:
        docs = run(world, name, *(a.replace("{demo}", demo) for a in args), codes=codes)
    finally:
        backends.forget_memory(demo)
    assert len(docs) == (2 if "--watch" in args else 1) or name == "export"


@pytest.mark.parametrize("name, args", [("pods", ["pods", "-s", "game"]), ("place", ["place", "u1", "-s", "game"]),
                                        ("config", ["config", "show"]), ("link-get", ["link", "get", "p1"])])
def test_yaml_documents_carry_the_schema_too(world, name, args):
    run(world, name, *args, fmt="yaml")


def test_place_is_one_shape_for_one_uid_and_many(world):
    (one,) = run(world, "place", "place", "u1", "-s", "game")
    (many,) = run(world, "place", "place", "u1", "u2", "-s", "game")
    assert list(one) == list(many) == ["schema", "namespace", "service", "placements", "failed"]
    assert one["placements"] == [{"uid": "u1", "pod": 0, "source": "new"}]  # pod 0: the one routable pod
    assert many["placements"] == [{"uid": "u1", "pod": 0, "source": "existing"},
                                  {"uid": "u2", "pod": 0, "source": "new"}]
    (failed,) = run(world, "place", "place", "u4", "-s", "chat", codes=(5,))
    assert failed["placements"] == [] and [f["uid"] for f in failed["failed"]] == ["u4"]
    assert "no available pod" in failed["failed"][0]["error"] or "no pod" in failed["failed"][0]["error"]


def test_link_get_is_one_shape_with_and_without_service(world):
    (all_of_uid,) = run(world, "link-get", "link", "get", "p1")
    (one,) = run(world, "link-get", "link", "get", "t2", "-s", "game")
    assert list(all_of_uid) == list(one) == ["schema", "namespace", "uid", "service", "links"]
    assert all_of_uid["service"] is None
    assert sorted((r["service"], r["pod"], r["ttl_s"]) for r in all_of_uid["links"]) == [("chat", 0, None),
                                                                                          ("game", 0, None)]
    (row,) = one["links"]
    assert (row["uid"], row["service"], row["pod"], row["persistent"]) == ("t2", "game", 3, False)
    assert 40 <= row["ttl_s"] <= 46  # seconds, rounded up: 45.5 s were set
    (none,) = run(world, "link-get", "link", "get", "nobody", "-s", "game", codes=(3,))
    assert none["links"] == []


def test_units_are_in_the_names(world):
    """epoch_ms is a moment in ms by the Redis clock, heartbeat_at_ms too; ttl_s seconds."""
    (pods,) = run(world, "pods", "pods", "-s", "game")
    pod0 = pods["pods"][0]
    (served,) = run(world, "serve", "serve", "-s", "game", "--pod", "6", "--load", "1", "--once")
    # the pod's incarnation started 5 s before the test wrote it; the heartbeat is now
    assert 4_000 <= served["heartbeat_at_ms"] - pod0["epoch_ms"] <= 60_000
    (listed,) = run(world, "link-list", "link", "list", "-s", "game", "--pod", "3")
    assert sorted(r["ttl_s"] for r in listed["links"]) == [pytest.approx(46, abs=2), pytest.approx(60, abs=2)]


def test_every_command_has_a_schema_and_every_schema_a_command():
    commands = set()

    def walk(group, prefix: list[str]) -> None:
        for word, command in group.commands.items():
            if hasattr(command, "commands"):  # a group
                walk(command, [*prefix, word])
            else:
                commands.add("-".join([*prefix, word]))

    walk(typer.main.get_command(app), [])
    named = {SHARED.get(c, c) for c in commands}
    assert named == set(SCHEMAS)
    assert {p.stem for p in SCHEMA_DIR.glob("*.json")} == set(SCHEMAS)
    assert {name for name, _, _ in CASES} == set(SCHEMAS)  # each one is validated above


def test_every_schema_file_is_draft_2020_12_and_names_its_id():
    for name in SCHEMAS:
        schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["schema"] == {"const": f"stroute/{name}/v1"}
        assert "schema" in schema["required"] and schema["additionalProperties"] is False


def test_a_renamed_key_fails_its_schema():
    """The schemas are strict: the old names (ttl, epoch) do not pass."""
    old = {"uid": "u", "service": "s", "pod": 1, "persistent": True, "ttl": None}
    doc = document("link-list", {"namespace": "default", "links": [old], "bad_keys": {"count": 0, "keys": []}})
    assert list(validator("link-list").iter_errors(doc))
    with pytest.raises(ValueError, match="no schema named 'nope'"):
        schema_id("nope")


@pytest.mark.realserver
def test_watch_prints_one_json_document_per_refresh(real_url, isolated):
    """top --watch -o json and pods --watch -o json: NDJSON, one line per refresh, --count of them."""
    from redis import Redis

    client = Redis.from_url(real_url)
    put_state(client, "game", 0, load=5)
    client.close()
    for name, args in (("top", ["top"]), ("pods", ["pods", "-s", "game"])):
        with Proc(isolated, "--redis-url", real_url, "-o", "json", *args, "--watch", "--interval", "0.1",
                  "--count", "3") as proc:
            assert proc.wait(timeout=30) == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 3, proc.stdout
        for line in lines:
            check(name, json.loads(line))
