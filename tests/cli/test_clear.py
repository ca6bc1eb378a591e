"""`stroute link clear -s SVC --pod N`: remove every link to a pod, fenced on the pod."""

from __future__ import annotations

import pytest

from ops_support import cli, cli_json, error_lines, isolated, put_state  # noqa: F401
from stroute.operations import clear_pod
from stroute.podstate import RoutingState
from support import all_keys, check_invariant

pytestmark = pytest.mark.usefixtures("isolated")

FIELDS = ["schema", "namespace", "service", "pod", "found", "removed", "kept", "dry_run", "bad_keys"]
STALE_MS = 120_000


def clear(url, *args, env=None):
    return cli_json("--redis-url", url, "link", "clear", *args, env=env)


def populate(store):
    """Pod 3 of game: 3 temporary and 2 persistent links. Others elsewhere."""
    for i in range(3):
        store.set("default", f"t{i}", "game", 3, 600_000)
    for i in range(2):
        store.set("default", f"p{i}", "game", 3)
    store.set("default", "p0", "chat", 3)  # same user and pod, another service
    store.set("default", "x", "game", 4)
    store.set("default", "y", "game", 30)  # a pod number that starts with 3
    store.set("eu", "t9", "game", 3, 600_000)  # another namespace


def test_clear_removes_every_link_of_the_pod_and_its_index_entries(url, store):
    populate(store)
    put_state(store.client, "game", 3, age_ms=STALE_MS)  # a dead pod
    code, data, stderr = clear(url, "-s", "game", "--pod", "3")
    assert code == 0, stderr
    assert list(data) == FIELDS
    assert data == {"schema": "stroute/link-clear/v1", "namespace": "default", "service": "game", "pod": 3,
                    "found": 5, "removed": 5, "kept": 0,
                    "dry_run": False, "bad_keys": {"count": 0, "keys": []}}
    left = {(link.uid, link.service, link.pod) for link in store.scan_links("default")}
    assert left == {("p0", "chat", 3), ("x", "game", 4), ("y", "game", 30)}
    assert store.links_of("default", "p0") == {"chat": 3}
    assert store.links_of("default", "p1") == {}
    assert store.get("eu", "t9", "game").pod == 3
    check_invariant(store.client)


def test_clear_of_a_pod_without_links_reports_zero(url, store):
    code, data, _ = clear(url, "-s", "game", "--pod", "7")
    assert (code, data["found"], data["removed"]) == (0, 0, 0)


def test_dry_run_counts_and_changes_nothing(url, store):
    populate(store)
    before = all_keys(store.client)
    code, data, _ = clear(url, "-s", "game", "--pod", "3", "--dry-run")
    assert code == 0
    assert (data["found"], data["removed"], data["kept"], data["dry_run"]) == (5, 0, 0, True)
    assert all_keys(store.client) == before


def test_an_alive_pod_is_refused_without_force(url, store):
    populate(store)
    put_state(store.client, "game", 3, state=RoutingState.DRAINING)
    before = all_keys(store.client)
    code, data, stderr = clear(url, "-s", "game", "--pod", "3")
    assert (code, data) == (4, None)
    assert "pod 3 of 'game' is alive (DRAINING" in stderr and "--force" in stderr
    assert len(error_lines(stderr)) == 1
    assert all_keys(store.client) == before
    code, data, stderr = clear(url, "-s", "game", "--pod", "3", "--dry-run")
    assert (code, data["found"]) == (0, 5)
    assert "clearing its links needs --force" in stderr
    code, data, _ = clear(url, "-s", "game", "--pod", "3", "--force")
    assert (code, data["removed"]) == (0, 5)


def test_a_down_pod_is_not_alive(url, store):
    populate(store)
    put_state(store.client, "game", 3, state=RoutingState.DOWN)
    assert clear(url, "-s", "game", "--pod", "3")[0] == 0


def test_fenced_a_link_that_moved_meanwhile_survives(url, store):
    populate(store)

    class MovesDuringScan:
        def __getattr__(self, name):
            return getattr(store, name)

        def scan_links(self, *args, **kwargs):
            links = list(store.scan_links(*args, **kwargs))
            store.move("default", "t1", "game", 3, 4)  # a client moved the user meanwhile
            return iter(links)

    report = clear_pod(MovesDuringScan(), "default", "game", 3)
    assert (report.found, report.removed, report.kept) == (5, 4, 1)
    assert store.get("default", "t1", "game").pod == 4
    check_invariant(store.client)


def test_table_output(url, store):
    populate(store)
    result = cli("--redis-url", url, "link", "clear", "-s", "game", "--pod", "3")
    assert result.exit_code == 0
    assert "removed 5 of 5 links to pod 3 of 'game' (namespace 'default')" in result.stdout
    result = cli("--redis-url", url, "link", "clear", "-s", "game", "--pod", "3", "--dry-run")
    assert "dry run, nothing changed: would remove 0 links to pod 3" in result.stdout


@pytest.mark.parametrize("args, message", [
    (("-s", "game", "--pod", "x"), "invalid pod 'x'"),
    (("-s", "game", "--pod", "65536"), "invalid pod 65536"),
    (("-s", "bad:svc", "--pod", "1"), "invalid service 'bad:svc'"),
])
def test_bad_input_is_exit_2(url, store, args, message):
    populate(store)
    before = all_keys(store.client)
    code, _, stderr = clear(url, *args)
    assert code == 2 and message in stderr
    assert all_keys(store.client) == before


def test_service_and_pod_are_required(url):
    assert cli("--redis-url", url, "link", "clear", "--pod", "1").exit_code == 2
    assert cli("--redis-url", url, "link", "clear", "-s", "game").exit_code == 2
