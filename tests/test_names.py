"""Names, keys and the pod-state codec: pure functions, no Redis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from stroute import names
from stroute.errors import InvalidInput, NamespaceMismatch
from stroute.keys import KeySpace
from stroute.podstate import PodState, RoutingState, Snapshot

NAME_CHECKS = [names.namespace, names.service, names.tag]


def assert_rejected(check, value, *, kind: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        check(value)
    exc = info.value
    assert exc.exit_code == 2
    assert kind in str(exc)
    shown = (repr(value)[:70], str(value)) if isinstance(value, str) and value.strip() else (repr(value)[:70],)
    assert any(text in str(exc) for text in shown), f"message does not name the bad value: {exc}"
    return exc


# --- namespace, service, tag ------------------------------------------------------


@pytest.mark.parametrize("check", NAME_CHECKS)
@pytest.mark.parametrize("value", ["a", "0", "lobby", "lobby-v2", "Game_Server.eu", "a" * 63, "9" + "._-" * 20 + "x"])
def test_valid_names_are_accepted(check, value):
    assert check(value) == value


@pytest.mark.parametrize("check", NAME_CHECKS)
@pytest.mark.parametrize(
    "value",
    ["", "a:b", ":", "a" * 64, "-a", ".a", "_a", "a b", "a{b", "a}b", "a*", "a?", "a/b", "lobby\n", "é", "a\x00"],
)
def test_invalid_names_are_rejected_with_the_value_and_the_rule(check, value):
    exc = assert_rejected(check, value, kind=check.__name__)
    assert names.NAME_RULE in str(exc)


@pytest.mark.parametrize("check", NAME_CHECKS)
@pytest.mark.parametrize("value", [None, 42, b"lobby", ["lobby"]])
def test_names_must_be_strings(check, value):
    assert_rejected(check, value, kind=check.__name__)


# --- uid ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["42", "0", "a" * 256, "user@example.com", "a:b", "用户", "x.y-z_", "[*?]"])
def test_valid_uids_are_accepted(value):
    assert names.uid(value) == value


BAD_UIDS = [
        "",
        "a" * 257,
        "a{b",
        "a}b",
        "{42}",
        "a b",
        "a\tb",
        "a\nb",
        " 42",
        "42 ",
        "a\x00b",
        "a\x1bb",
        "a\x7fb",
        "a\x85b",  # C1 control (NEL)
        "a\u00a0b",  # no-break space
        "a\u2028b",  # line separator
        "a\u3000b",  # ideographic space
        "a\ud800b",  # a lone surrogate: no character, cannot be sent as UTF-8
]


@pytest.mark.parametrize("value", BAD_UIDS)
def test_invalid_uids_are_rejected_with_the_value_and_the_rule(value):
    exc = assert_rejected(names.uid, value, kind="uid")
    assert names.UID_RULE in str(exc)


@pytest.mark.parametrize("value", [None, 42, b"42"])
def test_uid_must_be_a_string(value):
    assert_rejected(names.uid, value, kind="uid")


@pytest.mark.parametrize("value", [*BAD_UIDS, None, 42, b"42"])
def test_a_batch_of_uids_is_rejected_naming_its_bad_uid(value):
    """uids() checks a batch in bulk; whatever is wrong, the message names the bad value."""
    batch = [f"user-{i}" for i in range(50)] + [value] + ["ok", "a" * 256]
    with pytest.raises(InvalidInput) as info:
        names.uids(batch)
    assert str(info.value) == str(assert_rejected(names.uid, value, kind="uid"))


def test_a_batch_of_good_uids_is_returned_as_it_is():
    batch = ["42", "a" * 256, "用户", "[*?]", "a:b"] * 3
    assert names.uids(batch) is batch
    assert names.uids([]) == []


def test_a_long_bad_value_is_shown_shortened():
    value = "a" * 5000
    exc = assert_rejected(names.uid, value, kind="uid")
    assert len(str(exc)) < 300


# --- pod, load, ttl ----------------------------------------------------------------------


@pytest.mark.parametrize("value,expected", [(0, 0), (3, 3), (65535, 65535), ("7", 7), (" 8 ", 8), ("0", 0)])
def test_valid_pods(value, expected):
    assert names.pod(value) == expected


@pytest.mark.parametrize("value", [-1, 65536, 10**20, "x", "", "1.0", "-1", "0x1", True, False, 1.0, 2.5, None, [1]])
def test_invalid_pods_are_rejected(value):
    exc = assert_rejected(names.pod, value, kind="pod")
    assert names.POD_RULE in str(exc)


@pytest.mark.parametrize("value", [-1, True, "x", 1.5, 2**53 + 1, None])
def test_invalid_loads_are_rejected(value):
    assert_rejected(names.load, value, kind="load")


@pytest.mark.parametrize("value,ms", [(1, 1000), (0.001, 1), (1.5, 1500), ("2", 2000), (300, 300_000)])
def test_ttl_in_milliseconds(value, ms):
    assert names.ttl_ms(value) == ms


@pytest.mark.parametrize("value", [0, -1, 0.0004, "x", "", None, True, float("inf"), float("nan"), [1]])
def test_invalid_ttls_are_rejected(value):
    assert_rejected(names.ttl, value, kind="ttl")
    assert_rejected(names.ttl_ms, value, kind="ttl")


def test_bound_namespace():
    assert names.bound_namespace("default", "default") == "default"
    with pytest.raises(NamespaceMismatch) as info:
        names.bound_namespace("default", "prod")
    assert info.value.exit_code == 2
    assert "'prod'" in str(info.value) and "'default'" in str(info.value)
    # A namespace that is not even valid is reported as such.
    exc = assert_rejected(lambda v: names.bound_namespace("default", v), "a:b", kind="namespace")
    assert not isinstance(exc, NamespaceMismatch)


# --- keys -------------------------------------------------------------------------------


def test_key_layout_is_the_seeds():
    ks = KeySpace("sf", "default")
    assert ks.link("42", "lobby") == "sf:{default:lk:42}lobby"
    assert ks.index("42") == "sf:{default:lk:42}"
    assert ks.state("lobby") == "sf:{default:state:lobby}"
    assert ks.control("lobby") == "sf:{default:state:lobby}:ctl"
    assert ks.workload("lobby") == "sf:{default:workload:lobby}"
    assert ks.tag("lobby") == "sf:{default:tag:lobby}"
    assert ks.services() == "sf:{default}:services"


def test_keys_used_together_share_a_cluster_slot():
    ks = KeySpace("sf", "prod")
    for uid in ("42", "user@example.com", "x" * 256):
        assert key_slot(ks.link(uid, "lobby").encode()) == key_slot(ks.index(uid).encode())
        assert key_slot(ks.link(uid, "chat").encode()) == key_slot(ks.index(uid).encode())
    assert key_slot(ks.state("lobby").encode()) == key_slot(ks.control("lobby").encode())


def test_parse_link():
    ks = KeySpace("sf", "default")
    assert ks.parse_link(ks.link("42", "lobby")) == ("42", "lobby")
    assert ks.parse_link(ks.link("a:b@c", "x.y")) == ("a:b@c", "x.y")
    assert ks.parse_link(ks.index("42")) is None
    assert ks.parse_link(KeySpace("sf", "other").link("42", "lobby")) is None
    assert ks.parse_link(KeySpace("xx", "default").link("42", "lobby")) is None
    assert ks.parse_link("sf:{default:lk:}lobby") is None
    assert ks.parse_link(ks.state("lobby")) is None


# --- pod state codec ------------------------------------------------------------------------


@pytest.mark.parametrize("epoch", [None, 0, 1_700_000_000_123])
@pytest.mark.parametrize("state", list(RoutingState))
@pytest.mark.parametrize("load", [0, 120, 2**53])
def test_pod_state_round_trips(load, state, epoch):
    original = PodState(load, 1_700_000_000_000, state, epoch)
    assert PodState.decode(original.encode()) == original


def test_java_format_without_epoch_parses():
    assert PodState.decode("120-1700000000000-1") == PodState(120, 1_700_000_000_000, RoutingState.READY, None)
    assert PodState.decode("0-1700000000000-0").state is RoutingState.DOWN
    # DRAINING is withheld from the originals: 0 where they read the state, the real one fifth.
    assert PodState(5, 6, RoutingState.DRAINING).encode() == "5-6-0--2"
    assert PodState(5, 6, RoutingState.DRAINING, 7).encode() == "5-6-0-7-2"
    assert PodState.decode("5-6-2") == PodState(5, 6, RoutingState.DRAINING)  # as stroute wrote it before
    assert PodState(5, 6, RoutingState.READY, 7).encode().split("-")[:3] == ["5", "6", "1"]  # Java readers' fields


@pytest.mark.parametrize(
    "raw", ["", "garbage", "1-2", "1-2-3", "1-2-1-4-5", "-1-2-1", "a-2-1", "1-2-1-", "1.5-2-1", "1-²-1", "1 -2-1"]
)
def test_unparseable_pod_states(raw):
    assert PodState.decode(raw) is None


def test_routing_state_parse():
    assert RoutingState.parse("draining") is RoutingState.DRAINING
    assert RoutingState.parse(RoutingState.DOWN) is RoutingState.DOWN
    with pytest.raises(InvalidInput, match="'SLEEPING'"):
        RoutingState.parse("SLEEPING")
    with pytest.raises(InvalidInput):
        RoutingState.parse(1)


# --- snapshots ---------------------------------------------------------------------------------


def _snap(states: dict[str, str], controls: dict[str, str] | None = None, now: int = 100_000, expire: int = 1000):
    return Snapshot.build("lobby", states, controls or {}, now, expire)


def test_snapshot_staleness_is_age_against_the_given_clock():
    snap = _snap({"0": "5-99000-1", "1": "5-98999-1", "2": "5-100500-1"}, now=100_000, expire=1000)
    assert not snap.pods[0].stale and snap.pods[0].alive  # exactly at the window: still alive
    assert snap.pods[1].stale and not snap.pods[1].alive and snap.pods[1].display_state == "STALE"
    assert snap.pods[2].heartbeat_age_ms == 0  # a heartbeat "from the future" is not negative
    assert [v.pod for v in snap.routable()] == [0, 2]


def test_snapshot_states_cordon_and_invalid_fields():
    snap = _snap(
        {"0": "1-100000-1", "1": "2-100000-2", "2": "3-100000-0", "3": "4-100000-1", "4": "junk", "x": "1-1-1",
         "²": "1-100000-1"},
        {"3": "cordon", "1": "something-else", "x": "cordon"},
    )
    assert sorted(snap.pods) == [0, 1, 2, 3]
    assert snap.invalid == (4,)
    assert [v.pod for v in snap.routable()] == [0]
    assert [v.pod for v in snap.alive()] == [0, 1, 3]  # DRAINING and cordoned pods stay alive
    assert snap.pods[3].cordoned and snap.pods[3].alive and not snap.pods[3].routable
    assert not snap.pods[1].cordoned
    assert snap.is_alive(1) and not snap.is_alive(2) and not snap.is_alive(4) and not snap.is_alive(99)
    assert snap.workload == "DEGRADED"
    text = snap.describe()
    assert text.startswith("5 pods seen:")
    for part in ("1 READY", "1 DRAINING", "1 DOWN", "1 READY (cordoned)", "1 unparseable"):
        assert part in text


@pytest.mark.parametrize(
    "states,workload",
    [
        ({}, "DOWN"),
        ({"0": "1-100000-1", "1": "1-100000-1"}, "READY"),
        ({"0": "1-100000-1", "1": "1-100000-2"}, "DEGRADED"),
        ({"0": "1-100000-1", "1": "1-1-1"}, "DEGRADED"),
        ({"0": "1-100000-0", "1": "1-100000-2"}, "DOWN"),
        ({"0": "1-1-1"}, "DOWN"),
    ],
)
def test_workload_summary(states, workload):
    assert _snap(states).workload == workload


def test_describe_with_no_pods():
    assert _snap({}).describe() == "no pod has published a state"


# --- a listing's pages: uids and key names checked a page at a time ---------------------------


def test_the_bulk_uid_check_agrees_with_the_single_one_on_every_ascii_character():
    """names.uids checks ASCII batches with str methods, not the regex."""
    for code in range(128):
        value = f"a{chr(code)}b"
        try:
            names.uid(value)
        except InvalidInput:
            with pytest.raises(InvalidInput):
                names.uids(["ok", value])
        else:
            assert names.uids(["ok", value]) == ["ok", value]


_PAGE_KEYS = st.one_of(
    st.builds(lambda uid, svc: f"sf:{{default:lk:{uid}}}{svc}",
              st.text(st.characters(codec="utf-8"), min_size=0, max_size=6),
              st.text(st.characters(codec="utf-8"), min_size=0, max_size=6)),
    st.sampled_from(["sf:{default:lk:a}game", "sf:{default:lk:b}b}game", "sf:{default:lk:c", "sf:{default:lk:}x",
                     "sf:{default:lk:d}", "sf:{default:lk:e}x\nsf:{default:lk:f}y", "sf:{other:lk:g}x",
                     "xsf:{default:lk:h}y", "sf:{default:lk:i}game\n", "sf:{default:lk:a b}game",
                     "sf:{default:lk:用户}game", "sf:{default:lk:" + "u" * 257 + "}game", "sf:{default:lk:j}" + "s" * 64]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PAGE_KEYS, max_size=12))
def test_a_page_split_whole_reads_as_the_key_by_key_parse(keys):
    """parse_link_columns splits a page of good keys by whole-page string
    operations; whatever the page holds, it finds what the key-by-key parse
    finds, and reports the same keys."""
    from unittest import mock

    from stroute import keys as keys_module

    space = KeySpace("sf", "default")
    whole: list[tuple[str, str]] = []
    found = space.parse_link_columns(keys, whole)
    with mock.patch.object(keys_module, "_split_page", lambda keys, head: None):
        one_by_one: list[tuple[str, str]] = []
        expected = space.parse_link_columns(keys, one_by_one)
    assert [list(column) for column in found] == [list(column) for column in expected]
    assert whole == one_by_one
    if list(expected[0]) == keys:  # every key a good link key: the page was split whole
        assert keys_module._split_page(keys, "sf:{default:lk:") is not None
    assert space.parse_links(keys) == list(zip(*expected))
