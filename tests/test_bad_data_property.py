"""Bad data in Redis, generated (issue 11): random corrupt values and keys of
the wrong type planted among good links on a real redis-server, then every
read-only command over the namespace.

Each command must finish, process every good key, report exactly the bad
keys it met ("bad_keys" in the JSON) and exit with its documented code: 7
when it skipped bad keys, else 0 (3 for a `link get` with nothing to show;
`doctor`, whose code is 1 when a check fails, FAILs its links check). No
command may exit 1 by crashing or 6 (which means Redis failed).

And the round trip: whatever `export` writes, `import` takes back whole.
"""

from __future__ import annotations

import json
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.ops_support import cli, isolated, put_state  # noqa: F401
from stroute import names
from stroute.errors import InvalidInput
from stroute.store import Store

pytestmark = [pytest.mark.usefixtures("isolated"), pytest.mark.realserver]

PROPERTY = settings(max_examples=25, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SERVICES = ("game", "chat")
PODS = 4
HEAD = "sf:{default:lk:"


def _is_pod_text(value: str) -> bool:
    return value.isascii() and value.isdigit() and 0 < len(value) <= 5 and int(value) <= 65535


def _valid_uid(text: str) -> bool:
    try:
        names.uid(text)
    except InvalidInput:
        return False
    return True


# --- what a namespace holds -----------------------------------------------------------------------------

good_links = st.lists(
    st.tuples(st.integers(0, 40).map(lambda n: f"g{n}"), st.sampled_from(SERVICES), st.integers(0, PODS - 1),
              st.one_of(st.none(), st.integers(5_000, 10**9))),  # persistent, or a TTL in ms
    max_size=25, unique_by=lambda t: (t[0], t[1]),
)
not_a_pod = st.one_of(
    st.text(max_size=30).filter(lambda v: not _is_pod_text(v)),
    st.sampled_from(["banana", "", "-1", "65536", "3.0", " 3", "03x", "NaN",
                     json.dumps({"podId": 3, "persistTime": -1}), "\x00\xff", "9" * 40]),
)
link_of_another_type = st.sampled_from(["hash", "list", "set", "zset"])
bad_uid_in_name = st.one_of(
    st.builds(lambda a, b: f"{a}}}{b}", st.text(string.ascii_letters, min_size=1, max_size=5),
              st.text(string.ascii_letters, min_size=1, max_size=5)),  # a '}' inside the uid
    st.sampled_from(["a b", "tab\there", "zw\u200bsp", "bidi\u202e", "a{b", "ctl\x01"]),
)
corruption = st.one_of(
    st.tuples(st.just("value"), st.sampled_from(SERVICES), not_a_pod),
    st.tuples(st.just("type"), st.sampled_from(SERVICES), link_of_another_type),
    st.tuples(st.just("index type"), st.just(None), st.sampled_from(["string", "list"])),
    st.tuples(st.just("index field"), st.sampled_from(SERVICES), not_a_pod),
    st.tuples(st.just("name"), st.sampled_from(SERVICES), bad_uid_in_name),
    st.tuples(st.just("service name"), st.just(None), st.sampled_from(["ga:me", "-x", "sp ace"])),
)


def _write_other_type(raw, key: str, kind: str) -> None:
    {"hash": lambda: raw.hset(key, "pod", "1"), "list": lambda: raw.rpush(key, "1"),
     "set": lambda: raw.sadd(key, "1"), "zset": lambda: raw.zadd(key, {"1": 1}),
     "string": lambda: raw.set(key, "not a hash")}[kind]()


class Planted:
    """The namespace as planted, and what each command should meet."""

    def __init__(self) -> None:
        self.good: dict[tuple[str, str], tuple[int, bool]] = {}  # (uid, service) -> (pod, persistent)
        self.link_bad: set[str] = set()  # keys a link scan meets and cannot read
        self.value_bad: dict[tuple[str, str], str] = {}  # (uid, service) whose link value is no pod index
        self.type_bad: set[tuple[str, str]] = set()  # (uid, service) whose link key is of another type
        self.index_bad: set[str] = set()  # uids whose index is of another type or holds a bad field

    def scanned_bad(self, service: str | None) -> set[str]:
        return {k for k in self.link_bad if service is None or k.endswith("}" + service)}


def plant(store: Store, links, corruptions) -> Planted:
    raw = store.client
    planted = Planted()
    for uid, service, pod, ttl_ms in links:
        store.set("default", uid, service, pod, ttl_ms)
        planted.good[(uid, service)] = (pod, ttl_ms is None)
    for i, (kind, service, what) in enumerate(corruptions):
        uid = f"c{i}"
        if kind == "value":
            key = f"{HEAD}{uid}}}{service}"
            raw.set(key, what)
            planted.link_bad.add(key)
            planted.value_bad[(uid, service)] = key
        elif kind == "type":
            key = f"{HEAD}{uid}}}{service}"
            _write_other_type(raw, key, what)
            planted.link_bad.add(key)
            planted.type_bad.add((uid, service))
        elif kind == "index type":
            _write_other_type(raw, f"{HEAD}{uid}}}", what)
            planted.index_bad.add(uid)
        elif kind == "index field":
            raw.hset(f"{HEAD}{uid}}}", service, what)
            planted.index_bad.add(uid)
        elif kind == "name":
            key = f"{HEAD}{what}{i}}}{service}"
            raw.set(key, "1")
            planted.link_bad.add(key)
        else:  # a service name stroute would never write
            key = f"{HEAD}{uid}}}{what}"
            raw.set(key, "1")
            planted.link_bad.add(key)
    for service in SERVICES:
        for pod in range(PODS):
            put_state(raw, service, pod)
    return planted


def run(url: str, *args: str) -> tuple[int, object, str]:
    result = cli("--redis-url", url, "-o", "json", *args)
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, (args, result.stderr)
    documented = (0, 1) if args[0] == "doctor" else (0, 2, 3, 7)  # doctor: 1 = a check FAILs
    assert result.exit_code in documented, (args, result.exit_code, result.stderr)
    out = result.stdout
    data = json.loads(out) if out.strip() and args[0] != "export" else out
    return result.exit_code, data, result.stderr


def check_bad(args, code, data, stderr, expected: set[str]) -> None:
    assert code == (7 if expected else 0), (args, code, stderr)
    assert data["bad_keys"]["count"] == len(expected), (args, data["bad_keys"])
    assert {e["key"] for e in data["bad_keys"]["keys"]} == expected, args
    if expected:
        keys = "1 key in namespace 'default' holds" if len(expected) == 1 else f"{len(expected)} keys in namespace 'default' hold"
        assert f"{keys} data stroute cannot read, skipped" in stderr


# --- every read-only command over a corrupt namespace ------------------------------------------------------


@PROPERTY
@given(links=good_links, corruptions=st.lists(corruption, max_size=6))
def test_read_only_commands_report_bad_keys_and_finish(real_url, links, corruptions):
    store = Store.from_url(real_url)
    try:
        store.client.flushdb()
        planted = plant(store, links, corruptions)
    finally:
        store.close()
    url = real_url

    code, data, stderr = run(url, "link", "list")
    check_bad(("link list",), code, data, stderr, planted.scanned_bad(None))
    assert {(r["uid"], r["service"]): (r["pod"], r["persistent"]) for r in data["links"]} == planted.good

    for service in SERVICES:
        good = {k: v for k, v in planted.good.items() if k[1] == service}
        code, data, stderr = run(url, "link", "list", "-s", service)
        check_bad(("list -s", service), code, data, stderr, planted.scanned_bad(service))
        assert len(data["links"]) == len(good)

        code, data, stderr = run(url, "pods", "-s", service, "--count-links")
        check_bad(("pods", service), code, data, stderr, planted.scanned_bad(service))
        assert sum(row["links"] for row in data["pods"]) == len(good)

        on_0 = sum(1 for pod, _ in good.values() if pod == 0)
        code, data, stderr = run(url, "link", "clear", "-s", service, "--pod", "0", "--dry-run", "--force")
        check_bad(("clear --dry-run", service), code, data, stderr, planted.scanned_bad(service))
        assert data["found"] == on_0

        code, data, stderr = run(url, "pod", "drain", "-s", service, "--pod", "0", "--migrate", "--dry-run")
        check_bad(("drain --dry-run", service), code, data, stderr, planted.scanned_bad(service))
        assert data["links_before"] == on_0

        uids = sorted({uid for uid, svc in good} | {f"c{i}" for i in range(len(corruptions))} | {"nobody"})
        code, data, stderr = run(url, "link", "batch-get", "-s", service, *uids)
        expected = {key for (uid, svc), key in planted.value_bad.items() if svc == service}
        check_bad(("batch-get", service), code, data, stderr, expected)
        assert sum(map(len, data["pods"].values())) == len(good)

    code, data, stderr = run(url, "top", "--count-links")
    check_bad(("top",), code, data, stderr, planted.scanned_bad(None))

    code, out, stderr = run(url, "export")
    assert code == (7 if planted.link_bad else 0), stderr
    assert len(out.splitlines()) == len(planted.good)

    for i in range(len(corruptions)):
        uid = f"c{i}"
        for service in SERVICES:
            code, data, stderr = run(url, "link", "get", uid, "-s", service)
            bad = (uid, service) in planted.value_bad or (uid, service) in planted.type_bad
            assert code == (7 if bad else 3), (uid, service, code, stderr)
        code, data, stderr = run(url, "link", "get", uid)
        assert code == (7 if uid in planted.index_bad else 3), (uid, code, stderr)

    code, data, stderr = run(url, "doctor")
    links_check = next(c for c in data["checks"] if c["name"] == "links")
    assert (links_check["status"] == "FAIL") == bool(planted.link_bad), links_check
    assert code == (1 if any(c["status"] == "FAIL" for c in data["checks"]) else 0)


# --- export, then import: the round trip --------------------------------------------------------------------

any_valid_uid = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc", "Cf", "Zs", "Zl", "Zp"), exclude_characters="{}"),
    min_size=1, max_size=40,
).filter(lambda uid: _valid_uid(uid) and not re.fullmatch(r"c[0-9]+", uid))  # c0, c1...: the planted bad keys
exported_links = st.lists(
    st.tuples(any_valid_uid, st.sampled_from(["game", "chat", "a.b-c_9"]), st.integers(0, 65535),
              st.one_of(st.none(), st.integers(1_000, names.TTL_MAX_S * 1000))),
    max_size=30, unique_by=lambda t: (t[0], t[1]),
)


@PROPERTY
@given(links=exported_links, corruptions=st.lists(corruption, max_size=4))
def test_everything_export_writes_imports_again(real_url, tmp_path_factory, links, corruptions):
    store = Store.from_url(real_url)
    try:
        store.client.flushdb()
        planted = plant(store, links, corruptions)
        good = {(uid, svc): (pod, ttl is None) for uid, svc, pod, ttl in links}
        code, out, stderr = run(real_url, "export")
        assert code == (7 if planted.link_bad else 0), stderr
        path = tmp_path_factory.mktemp("export") / "links.jsonl"
        path.write_text(out, encoding="utf-8")
        store.client.flushdb()
        code, data, stderr = run(real_url, "import", str(path))
        assert code == 0, stderr
        assert (data["imported"], data["rejected"], data["bad_keys"]["count"]) == (len(good), 0, 0)
        back = {(link.uid, link.service): (link.pod, link.persistent) for link in store.scan_links("default")}
        assert back == good
        for (uid, svc), (pod, persistent) in good.items():
            if persistent:
                assert store.links_of("default", uid)[svc] == pod
    finally:
        store.close()
