"""`pods --count-links`, `top --count-links` and the load trend of `top --watch`."""

from __future__ import annotations


import pytest

from ops_support import cli, cli_json, isolated, put_state  # noqa: F401
from stroute.cli.pods import trend
from stroute.podstate import RoutingState
from stroute.server import ServerDriver

pytestmark = pytest.mark.usefixtures("isolated")

POD_FIELDS = ["pod", "state", "load", "heartbeat_age_ms", "alive", "routable", "cordoned", "epoch_ms", "reason",
              "recent_epochs", "flapping", "slow_start", "links"]


def links(store):
    put_state(store.client, "game", 0, load=5)
    put_state(store.client, "game", 1, load=7, state=RoutingState.DRAINING)
    put_state(store.client, "chat", 0, load=1)
    for i in range(5):
        store.set("default", f"a{i}", "game", 0, 60_000)
    for i in range(3):
        store.set("default", f"b{i}", "game", 1)
    store.set("default", "c", "game", 9)  # a pod with no state
    store.set("default", "d", "chat", 0)
    store.set("default", "e", "shop", 2)  # a service with links but no pod
    store.set("eu", "x", "game", 0)


def test_pods_count_links(url, store):
    links(store)
    code, data, stderr = cli_json("--redis-url", url, "pods", "-s", "game", "--count-links")
    assert code == 0, stderr
    assert [list(p) for p in data["pods"]] == [POD_FIELDS, POD_FIELDS]
    assert [(p["pod"], p["links"]) for p in data["pods"]] == [(0, 5), (1, 3)]
    assert (data["links_total"], data["links_to_unknown_pods"]) == (9, {"9": 1})


def test_pods_without_count_links_keeps_the_spec_shape(url, store):
    links(store)
    data = cli_json("--redis-url", url, "pods", "-s", "game")[1]
    assert "links_total" not in data and all("links" not in p for p in data["pods"])


def test_top_count_links(url, store):
    links(store)
    code, data, _ = cli_json("--redis-url", url, "top", "--count-links")
    assert code == 0
    by = {s["service"]: s for s in data["services"]}
    assert set(by) == {"chat", "game", "shop"}
    assert by["chat"]["pods"][0]["links"] == 1 and by["chat"]["links_total"] == 1
    assert by["shop"]["pods"] == [] and by["shop"]["links_to_unknown_pods"] == {"2": 1}
    assert by["game"]["links_total"] == 9


def test_count_links_table(url, store):
    links(store)
    result = cli("--redis-url", url, "top", "--count-links", env={"COLUMNS": "140"})
    assert result.exit_code == 0
    header = result.stdout.splitlines()[0].split()
    assert "LINKS" in header
    assert "links to pods with no state: pod 9 of game (1), pod 2 of shop (1)" in result.stderr
    row = next(r.split() for r in result.stdout.splitlines() if r.split()[:2] == ["game", "0"])
    assert row[header.index("LINKS")] == "5"


def test_a_service_with_only_links_is_found_by_pods(url, store):
    store.set("default", "e", "shop", 2)
    code, data, _ = cli_json("--redis-url", url, "pods", "-s", "shop", "--count-links")
    assert code == 0 and data["links_to_unknown_pods"] == {"2": 1}
    assert cli_json("--redis-url", url, "pods", "-s", "shop")[0] == 3


# --- top --watch: the load trend --------------------------------------------------------------


def test_trend_sparkline_and_arrow(monkeypatch):
    import stroute.cli.pods as pods_module

    monkeypatch.setattr(pods_module, "plain", lambda: False)
    assert trend([]) == ""
    assert trend([5]) == "▄ →"
    assert trend([1, 2, 3, 8]) == "▁▂▃█ ↑"
    assert trend([8, 3]) == "█▁ ↓"
    assert trend([4, 4, 4]) == "▄▄▄ →"
    monkeypatch.setattr(pods_module, "plain", lambda: True)
    assert trend([1, 8]) == "_# ^"
    assert trend([8, 1]) == "#_ v"
    assert trend([3, 3]) == "-- ="


def test_top_watch_shows_each_pods_trend(url, config, store):
    loads = iter(range(10, 1000, 10))
    server = ServerDriver("game", 0, config.with_overrides(**{"state.period": 0.05}), store=store,
                          load_source=lambda: next(loads))
    put_state(store.client, "game", 1, load=3)
    server.start()
    try:
        # Each refresh sees pod 0's load higher than the last: an up arrow once two samples exist.
        result = cli("--redis-url", url, "top", "--watch", "--interval", "0.2", "--count", "3",
                     env={"COLUMNS": "140"})
    finally:
        server.stop(0)
    assert result.exit_code == 0, result.stderr
    frames = result.stdout.split("stroute top:")[1:]
    assert len(frames) == 3
    header = frames[0].splitlines()[1].split()
    assert "TREND" in header
    row0 = next(r.split() for r in frames[-1].splitlines() if r.split()[:2] == ["game", "0"])
    assert row0[header.index("TREND")].endswith("^"), frames[-1]
    row1 = next(r.split() for r in frames[-1].splitlines() if r.split()[:2] == ["game", "1"])
    assert row1[header.index("TREND")] == "---="
