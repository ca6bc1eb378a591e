"""Every store operation and edge case, on memory:// and on a real redis-server.

`s` wraps the store so SPEC's index invariant is checked with raw Redis
commands after every single operation (see support.Checked).
"""

from __future__ import annotations

import math
import time

import pytest

from stroute.errors import CorruptData, InvalidInput, RedisUnavailable, StoreError
from stroute.podstate import RoutingState
from stroute.store import BadKeys, Link, SetIfAbsent, Store

from stroute.testing import free_port
from support import Checked, CommandCounter, check_invariant, put_state, redis_millis, wait_until

NS = "default"
LINK = "sf:{default:lk:42}lobby"
INDEX = "sf:{default:lk:42}"
LONG = 600_000  # ms: a temporary link that will not expire during a test


@pytest.fixture
def s(store):
    return Checked(store)


@pytest.fixture
def raw(store):
    return store.client


def persistent(raw, key=LINK) -> bool:
    return raw.pttl(key) == -1


# --- get / get_if_persistent / links_of -----------------------------------------------------


def test_get_missing(s):
    assert s.get(NS, "42", "lobby") is None
    assert s.get_if_persistent(NS, "42", "lobby") is None
    assert s.links_of(NS, "42") == {}


def test_get_persistent_and_temporary(s):
    s.set(NS, "42", "lobby", 3)
    link = s.get(NS, "42", "lobby")
    assert link == Link(NS, "42", "lobby", 3, None)
    assert link.persistent and link.ttl is None
    s.set(NS, "42", "chat", 4, 5_500)
    link = s.get(NS, "42", "chat")
    assert link.pod == 4 and not link.persistent
    assert 0 < link.ttl_ms <= 5_500 and link.ttl == math.ceil(link.ttl_ms / 1000) == 6


def test_pod_zero_is_a_real_pod(s, raw):
    assert s.set(NS, "42", "lobby", 0) is None
    assert raw.get(LINK) == "0" and raw.hget(INDEX, "lobby") == "0"
    assert s.get(NS, "42", "lobby").pod == 0
    assert s.get_if_persistent(NS, "42", "lobby") == 0
    assert s.links_of(NS, "42") == {"lobby": 0}
    assert s.set(NS, "42", "lobby", 1) == 0  # previous pod 0, not "none"
    assert s.try_set(NS, "42", "lobby", 0) == (False, 1)
    assert s.move(NS, "42", "lobby", 1, 0) == (True, 0)
    assert s.set_if_absent(NS, "42", "lobby", 5) == SetIfAbsent(0, False, True)
    assert s.remove(NS, "42", "lobby", if_pod=1) == (False, 0)
    assert s.batch_get(NS, ["42"], "lobby") == {"42": 0}
    assert [l.pod for l in s.scan_links(NS, pod=0)] == [0]
    assert s.remove(NS, "42", "lobby", if_pod=0) == (True, 0)
    assert s.get(NS, "42", "lobby") is None


def test_get_if_persistent_ignores_temporary_links(s):
    s.set(NS, "42", "lobby", 3, LONG)
    assert s.get(NS, "42", "lobby").pod == 3
    assert s.get_if_persistent(NS, "42", "lobby") is None


def test_links_of_lists_only_persistent_links_sorted(s):
    s.set(NS, "42", "zeta", 1)
    s.set(NS, "42", "alpha", 0)
    s.set(NS, "42", "temp", 2, LONG)
    s.set(NS, "43", "alpha", 9)
    s.set("other", "42", "alpha", 8)
    links = s.links_of(NS, "42")
    assert links == {"alpha": 0, "zeta": 1} and list(links) == ["alpha", "zeta"]
    assert s.links_of("other", "42") == {"alpha": 8}


# --- set ---------------------------------------------------------------------------------------


def test_set_returns_previous_and_switches_kind(s, raw):
    assert s.set(NS, "42", "lobby", 3) is None
    assert persistent(raw) and raw.hget(INDEX, "lobby") == "3"
    assert s.set(NS, "42", "lobby", 4, LONG) == 3  # persistent -> temporary: leaves the index
    assert not persistent(raw) and raw.hget(INDEX, "lobby") is None
    assert s.set(NS, "42", "lobby", 5) == 4  # temporary -> persistent: joins the index
    assert persistent(raw) and raw.hget(INDEX, "lobby") == "5"


# --- try_set -------------------------------------------------------------------------------------


def test_try_set(s, raw):
    assert s.try_set(NS, "42", "lobby", 3, LONG) == (True, 3)  # no link
    assert s.try_set(NS, "42", "lobby", 4) == (True, 4)  # temporary link to another pod: replaced
    assert persistent(raw) and raw.hget(INDEX, "lobby") == "4"
    assert s.try_set(NS, "42", "lobby", 5) == (False, 4)  # persistent link to another pod: refused
    assert s.try_set(NS, "42", "lobby", 5, LONG) == (False, 4)
    assert raw.get(LINK) == "4" and persistent(raw)
    assert s.try_set(NS, "42", "lobby", 4, LONG) == (True, 4)  # same pod: ok, never downgraded
    assert persistent(raw) and raw.hget(INDEX, "lobby") == "4"


def test_try_set_replaces_temporary_link_with_temporary(s, raw):
    s.set(NS, "42", "lobby", 1, 1_000)
    assert s.try_set(NS, "42", "lobby", 2, LONG) == (True, 2)
    assert raw.pttl(LINK) > 1_000


# --- set_if_absent ---------------------------------------------------------------------------------


def test_set_if_absent_creates(s, raw):
    assert s.set_if_absent(NS, "42", "lobby", 3) == SetIfAbsent(3, True, False)
    assert persistent(raw) and raw.hget(INDEX, "lobby") == "3"
    assert s.set_if_absent(NS, "42", "chat", 4, LONG) == SetIfAbsent(4, True, False)
    assert 0 < raw.pttl("sf:{default:lk:42}chat") <= LONG


def test_set_if_absent_keeps_an_existing_link(s, raw):
    s.set(NS, "42", "lobby", 3)
    assert s.set_if_absent(NS, "42", "lobby", 7, LONG) == SetIfAbsent(3, False, True)
    assert raw.get(LINK) == "3" and persistent(raw)  # never downgraded to temporary
    s.set(NS, "42", "chat", 3, LONG)
    assert s.set_if_absent(NS, "42", "chat", 7, LONG) == SetIfAbsent(3, False, False)


def test_set_if_absent_slides_the_ttl_of_a_temporary_link(s, raw):
    s.set(NS, "42", "lobby", 3, 2_000)
    assert raw.pttl(LINK) <= 2_000
    result = s.set_if_absent(NS, "42", "lobby", 9, LONG)
    assert result == SetIfAbsent(3, False, False)
    assert LONG - 10_000 < raw.pttl(LINK) <= LONG
    assert LONG - 10_000 < result.ttl_ms <= LONG  # what the link has left now
    assert raw.get(LINK) == "3"


def test_set_if_absent_slides_only_when_less_than_half_the_ttl_is_left(s, raw):
    """A refresh is a write every gateway caching the link hears of: at most once per half TTL."""
    s.set(NS, "42", "lobby", 3, LONG // 2 + 5_000)  # more than half of LONG left: no write
    before = raw.pttl(LINK)
    result = s.set_if_absent(NS, "42", "lobby", 9, LONG)
    assert result == SetIfAbsent(3, False, False)
    assert raw.pttl(LINK) <= before and result.ttl_ms <= before
    s.set(NS, "42", "lobby", 3, LONG // 2 - 5_000)  # less than half left: slid to the whole TTL
    assert LONG - 10_000 < s.set_if_absent(NS, "42", "lobby", 9, LONG).ttl_ms <= LONG
    assert LONG - 10_000 < raw.pttl(LINK)


def test_set_if_absent_persistent_upgrades_a_temporary_link_in_place(s, raw):
    """The seed ran EXPIRE key -1 here, which deletes the key."""
    s.set(NS, "42", "lobby", 3, LONG)
    assert s.set_if_absent(NS, "42", "lobby", 9) == SetIfAbsent(3, False, False)
    assert raw.exists(LINK) == 1
    assert raw.get(LINK) == "3" and persistent(raw)
    assert raw.hget(INDEX, "lobby") == "3"
    assert s.get(NS, "42", "lobby") == Link(NS, "42", "lobby", 3, None)


# --- move ----------------------------------------------------------------------------------------


def test_move_persistent(s, raw):
    s.set(NS, "42", "lobby", 3)
    assert s.move(NS, "42", "lobby", 3, 4) == (True, 4)
    assert raw.get(LINK) == "4" and persistent(raw) and raw.hget(INDEX, "lobby") == "4"


def test_move_keeps_the_ttl_of_a_temporary_link(s, raw):
    s.set(NS, "42", "lobby", 3, 50_000)
    assert s.move(NS, "42", "lobby", 3, 4) == (True, 4)
    assert raw.get(LINK) == "4"
    assert 40_000 < raw.pttl(LINK) <= 50_000
    assert raw.hget(INDEX, "lobby") is None


def test_move_mismatch_changes_nothing(s, raw):
    s.set(NS, "42", "lobby", 3)
    assert s.move(NS, "42", "lobby", 5, 4) == (False, 3)
    assert raw.get(LINK) == "3" and raw.hget(INDEX, "lobby") == "3"
    assert s.move(NS, "43", "lobby", 3, 4) == (False, None)
    assert raw.exists("sf:{default:lk:43}lobby") == 0


# --- remove --------------------------------------------------------------------------------------


def test_remove_now(s, raw):
    s.set(NS, "42", "lobby", 3)
    s.set(NS, "42", "chat", 4)
    assert s.remove(NS, "42", "lobby") == (True, 3)
    assert raw.exists(LINK) == 0 and raw.hget(INDEX, "lobby") is None
    assert raw.hget(INDEX, "chat") == "4"  # the user's other links stay
    assert s.remove(NS, "42", "lobby") == (False, None)
    s.set(NS, "42", "temp", 5, LONG)
    assert s.remove(NS, "42", "temp") == (True, 5)
    assert raw.exists("sf:{default:lk:42}temp") == 0


def test_remove_fenced(s, raw):
    s.set(NS, "42", "lobby", 3)
    assert s.remove(NS, "42", "lobby", if_pod=4) == (False, 3)
    assert raw.get(LINK) == "3" and persistent(raw) and raw.hget(INDEX, "lobby") == "3"
    assert s.remove(NS, "42", "lobby", if_pod=4, after_ms=100) == (False, 3)
    assert persistent(raw)
    assert s.remove(NS, "42", "lobby", if_pod=3) == (True, 3)
    assert raw.exists(LINK) == 0 and raw.exists(INDEX) == 0
    assert s.remove(NS, "42", "lobby", if_pod=3) == (False, None)


def test_delayed_removal_turns_the_link_temporary(s, raw):
    s.set(NS, "42", "lobby", 3)
    assert s.remove(NS, "42", "lobby", after_ms=60_000) == (True, 3)
    assert raw.get(LINK) == "3"
    assert 50_000 < raw.pttl(LINK) <= 60_000
    assert raw.hget(INDEX, "lobby") is None
    assert s.get_if_persistent(NS, "42", "lobby") is None
    assert s.get(NS, "42", "lobby").pod == 3  # still routed to until it expires


def test_delayed_removal_never_extends_a_shorter_ttl(s, raw):
    s.set(NS, "42", "lobby", 3, 10_000)
    assert s.remove(NS, "42", "lobby", after_ms=60_000) == (True, 3)
    assert raw.pttl(LINK) <= 10_000
    assert s.remove(NS, "42", "lobby", after_ms=1_000) == (True, 3)
    assert raw.pttl(LINK) <= 1_000


def test_delayed_removal_expires(s, raw):
    s.set(NS, "42", "lobby", 3)
    assert s.remove(NS, "42", "lobby", after_ms=150) == (True, 3)
    wait_until(lambda: s.get(NS, "42", "lobby") is None, timeout=5, what="the link to expire")
    assert raw.exists(INDEX) == 0


def test_fenced_delayed_removal(s, raw):
    s.set(NS, "42", "lobby", 0)
    assert s.remove(NS, "42", "lobby", after_ms=30_000, if_pod=0) == (True, 0)
    assert 0 < raw.pttl(LINK) <= 30_000 and raw.hget(INDEX, "lobby") is None


def test_remove_rejects_a_negative_delay(s, raw):
    s.set(NS, "42", "lobby", 3)
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(InvalidInput) as info:
            s.remove(NS, "42", "lobby", after_ms=bad)
        assert repr(bad) in str(info.value)
    assert persistent(raw) and raw.get(LINK) == "3"


# --- batch_get --------------------------------------------------------------------------------------


def test_batch_get(s):
    s.set(NS, "a", "lobby", 0)
    s.set(NS, "b", "lobby", 2, LONG)
    s.set(NS, "c", "chat", 1)
    assert s.batch_get(NS, ["a", "b", "c", "d"], "lobby") == {"a": 0, "b": 2, "c": None, "d": None}
    assert s.batch_get(NS, [], "lobby") == {}


def test_batch_get_many(s, store):
    for i in range(0, 300, 3):
        store.set(NS, f"u{i}", "lobby", i % 7)  # unchecked: the check below covers them all
    found = s.batch_get(NS, [f"u{i}" for i in range(300)], "lobby")
    assert len(found) == 300
    assert all(found[f"u{i}"] == (i % 7 if i % 3 == 0 else None) for i in range(300))


@pytest.mark.realserver
def test_batch_get_is_one_command(real_url, redis_server):
    store = Store.from_url(real_url)
    counter = CommandCounter(redis_server.client())
    try:
        store.set(NS, "u1", "lobby", 1)
        counter.reset()
        store.batch_get(NS, [f"u{i}" for i in range(2000)], "lobby")
        assert counter.counts() == {"mget": 1}
    finally:
        store.close()
        counter.client.close()


# --- scan_links -----------------------------------------------------------------------------------


def test_scan_links_filters(s):
    s.set(NS, "a", "lobby", 0)
    s.set(NS, "b", "lobby", 1, LONG)
    s.set(NS, "b", "chat", 0)
    s.set(NS, "c", "lobby2", 0)
    s.set("other", "a", "lobby", 0)
    every = sorted((l.uid, l.service, l.pod, l.persistent) for l in s.scan_links(NS, count=1))
    assert every == [("a", "lobby", 0, True), ("b", "chat", 0, True), ("b", "lobby", 1, False), ("c", "lobby2", 0, True)]
    assert sorted((l.uid, l.pod) for l in s.scan_links(NS, service="lobby")) == [("a", 0), ("b", 1)]
    assert sorted((l.uid, l.service) for l in s.scan_links(NS, pod=0)) == [("a", "lobby"), ("b", "chat"), ("c", "lobby2")]
    assert [(l.uid, l.service) for l in s.scan_links(NS, service="lobby", pod=1)] == [("b", "lobby")]
    assert [l.namespace for l in s.scan_links("other")] == ["other"]
    assert list(s.scan_links(NS, service="none")) == []
    temp = next(l for l in s.scan_links(NS, service="lobby", pod=1))
    assert 0 < temp.ttl_ms <= LONG


def test_scan_links_data_filters(store):
    store.set(NS, "a1", "lobby", 0)
    store.set(NS, "a2", "lobby", 1, LONG)
    store.set(NS, "a3", "lobby", 1, 4_000)
    store.set(NS, "b1", "chat", 1, LONG)
    store.set(NS, "a[x]", "chat", 2)  # glob characters in a uid: matched with an escape

    def uids(**filters):
        return sorted(l.uid for l in store.scan_links(NS, count=2, **filters))

    assert uids(kind="persistent") == ["a1", "a[x]"]
    assert uids(kind="temporary") == ["a2", "a3", "b1"]
    assert uids(ttl_below_ms=10_000) == ["a3"]
    assert uids(uid_glob="a?") == ["a1", "a2", "a3"]
    assert uids(uid_glob="a\\[x]") == ["a[x]"]
    assert uids(uid_glob="*1", kind="temporary") == ["b1"]
    assert uids(uid_glob="a*", service="lobby", pod=1, ttl_below_ms=LONG + 1) == ["a2", "a3"]
    for bad in ({"kind": "kept"}, {"ttl_below_ms": 0}, {"ttl_below_ms": True}, {"uid_glob": "a}"},
                {"uid_glob": ""}):
        with pytest.raises(InvalidInput):
            list(store.scan_links(NS, **bad))


def test_scan_link_pages_yield_as_the_scan_goes(store):
    for i in range(50):
        store.set(NS, f"user-{i}", "lobby", i % 3)
    pages = store.scan_link_pages(NS, count=5)
    first = next(pages)
    assert 0 < len(first) < 50  # a page, not the namespace
    assert len(first) + sum(len(p) for p in pages) == 50


def test_a_listing_left_early_leaves_the_store_in_step(store):
    """The next page's reads are written before a page is handed out; a listing
    closed then must not leave their replies to answer the store's next command."""
    for i in range(50):
        store.set(NS, f"user-{i}", "lobby", i % 3, None if i % 2 else LONG)
    pages = store.scan_link_pages(NS, count=5)
    assert next(pages)
    pages.close()
    assert store.get(NS, "user-7", "lobby") == Link(NS, "user-7", "lobby", 1, None)
    assert store.batch_get(NS, ["user-1", "user-2"], "lobby") == {"user-1": 1, "user-2": 2}
    links = [link for page in store.scan_link_pages(NS, count=5) for link in page]
    assert sorted((l.uid, l.pod, l.persistent) for l in links) == sorted(
        (f"user-{i}", i % 3, bool(i % 2)) for i in range(50))
    assert all(0 < l.ttl_ms <= LONG for l in links if not l.persistent)


def test_count_links_per_pod_and_kind(store):
    store.set(NS, "a", "lobby", 0)
    store.set(NS, "b", "lobby", 0, LONG)
    store.set(NS, "c", "lobby", 2, LONG)
    store.set(NS, "d", "chat", 0)
    seen = []
    counts = store.count_links(NS, on_page=lambda c: seen.append(c.total))
    assert counts.total == 4 and seen[-1] == 4
    assert counts.services() == {"chat": {0: (1, 0)}, "lobby": {0: (1, 1), 2: (0, 1)}}
    assert store.count_links(NS, service="chat").services() == {"chat": {0: (1, 0)}}


def test_scan_links_over_many_pages(s, store):
    for i in range(120):
        store.set(NS, f"user-{i}", "lobby", i % 3, None if i % 2 else LONG)
    found = list(s.scan_links(NS, service="lobby", count=7))
    assert sorted(l.uid for l in found) == sorted(f"user-{i}" for i in range(120))
    assert len([l for l in s.scan_links(NS, pod=2, count=5)]) == 40


def test_scan_links_reports_keys_of_another_type_and_reads_the_rest(store, raw):
    """A page read in one go: a key of another type under a link's name is
    no link, and is reported; the rest of its page is read."""
    store.set(NS, "good", "lobby", 2, LONG)
    store.set(NS, "also", "lobby", 1)
    raw.hset("sf:{default:lk:odd}lobby", "not", "a link")
    raw.rpush("sf:{default:lk:odder}lobby", "x")
    bad = BadKeys()
    found = sorted((l.uid, l.pod, l.persistent) for l in store.scan_links(NS, bad=bad))
    assert found == [("also", 1, True), ("good", 2, False)]
    assert dict(bad.found) == {"sf:{default:lk:odd}lobby": "is a hash, not a link (a string)",
                               "sf:{default:lk:odder}lobby": "is a list, not a link (a string)"}
    bad = BadKeys()
    assert [l.uid for l in store.scan_links(NS, pod=2, bad=bad)] == ["good"]
    assert bad.count == 2  # they may be links to pod 2 that nobody can read
    with pytest.raises(CorruptData, match="is a (hash|list), not a link"):
        list(store.scan_links(NS))


def test_scan_links_reports_a_link_that_is_not_a_pod(store, raw):
    raw.set("sf:{default:lk:bad}lobby", "lobby-3")
    with pytest.raises(CorruptData, match="not a pod index") as caught:
        list(store.scan_links(NS))
    assert caught.value.exit_code == 7 and caught.value.keys == ("sf:{default:lk:bad}lobby",)


# --- raw data in the seed's layout ------------------------------------------------------------------


def test_links_written_by_raw_commands(store, raw):
    raw.set("sf:{default:lk:42}lobby", "3")
    raw.hset("sf:{default:lk:42}", "lobby", "3")
    raw.set("sf:{default:lk:43}lobby", "0", px=LONG)
    check_invariant(raw)
    assert store.get(NS, "42", "lobby") == Link(NS, "42", "lobby", 3, None)
    assert store.get_if_persistent(NS, "42", "lobby") == 3
    assert store.links_of(NS, "42") == {"lobby": 3}
    link = store.get(NS, "43", "lobby")
    assert link.pod == 0 and not link.persistent
    assert store.batch_get(NS, ["42", "43", "44"], "lobby") == {"42": 3, "43": 0, "44": None}
    assert sorted((l.uid, l.pod) for l in store.scan_links(NS)) == [("42", 3), ("43", 0)]
    # A bare SET with no index (an older writer) still reads as a persistent link.
    raw.set("sf:{default:lk:44}lobby", "5")
    assert store.get(NS, "44", "lobby").persistent


def test_pod_states_written_by_raw_commands(store, raw):
    now = redis_millis(raw)
    raw.hset("sf:{default:state:lobby}", mapping={
        "0": f"120-{now}-1",  # the Java format, no epoch
        "1": f"7-{now}-2-{now - 5000}",
        "2": f"1-{now - 60_000}-1",  # stale
        "3": "not-a-state",
    })
    raw.hset("sf:{default:state:lobby}:ctl", "0", "cordon")
    snap = store.snapshot(NS, "lobby", expire_ms=1000)
    assert sorted(snap.pods) == [0, 1, 2] and snap.invalid == (3,)
    p0, p1, p2 = snap.pods[0], snap.pods[1], snap.pods[2]
    assert (p0.load, p0.heartbeat_ms, p0.state, p0.epoch, p0.cordoned) == (120, now, RoutingState.READY, None, True)
    assert (p1.load, p1.state, p1.epoch) == (7, RoutingState.DRAINING, now - 5000)
    assert p2.stale and p2.display_state == "STALE"
    assert p0.alive and p1.alive and not p2.alive
    assert snap.routable() == []


def test_corrupt_values_are_corrupt_data_naming_the_key(store, raw):
    raw.set(LINK, "three")
    with pytest.raises(CorruptData) as info:
        store.get(NS, "42", "lobby")
    assert info.value.exit_code == 7 and "'three'" in str(info.value) and LINK in str(info.value)
    raw.set("sf:{default:lk:43}", "not a hash")
    with pytest.raises(CorruptData) as info:
        store.set(NS, "43", "lobby", 1)
    assert str(info.value) == "key 'sf:{default:lk:43}' is a string, not a link index (a hash); nothing was written"
    assert raw.get("sf:{default:lk:43}lobby") is None


# --- pod states ---------------------------------------------------------------------------------------


def test_snapshot_staleness_is_judged_by_redis_time(store, raw):
    put_state(raw, "lobby", 0, age_ms=0)
    put_state(raw, "lobby", 1, age_ms=5_000)
    before = redis_millis(raw)
    snap = store.snapshot(NS, "lobby", expire_ms=2_000)
    after = redis_millis(raw)
    assert before <= snap.now_ms <= after
    assert snap.pods[0].alive and not snap.pods[0].stale
    assert snap.pods[1].stale and 5_000 <= snap.pods[1].heartbeat_age_ms < 5_000 + (after - before) + 1_000
    assert store.snapshot(NS, "lobby", expire_ms=10_000).pods[1].alive


@pytest.mark.realserver
def test_staleness_ignores_the_local_clock(real_url, monkeypatch):
    store = Store.from_url(real_url)
    try:
        store.publish_state(NS, "lobby", 0, load=1, state=RoutingState.READY, epoch=None, expire_ms=1000)
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 3600)  # this host's clock is an hour off
        snap = store.snapshot(NS, "lobby", expire_ms=1000)
        assert snap.pods[0].alive and snap.pods[0].heartbeat_age_ms < 1000
    finally:
        store.close()


def test_publish_state(store, raw):
    published = store.publish_state(NS, "lobby", 2, load=42, state=RoutingState.DRAINING, epoch=1234, expire_ms=1000)
    now = redis_millis(raw)
    assert now - 1000 < published.heartbeat_ms <= now
    assert published.snapshot is None and not published.cordoned
    # DRAINING is withheld from the original drivers: 0 where they read the state (see podstate.py).
    assert raw.hget("sf:{default:state:lobby}", "2") == f"42-{published.heartbeat_ms}-0-1234-2"
    assert raw.smembers("sf:{default}:services") == {"lobby"}
    assert raw.exists("sf:{default:workload:lobby}") == 0  # only a summarising pod writes it
    store.publish_state(NS, "chat", 0, load=0, state=RoutingState.READY, epoch=None, expire_ms=1000)
    assert store.services(NS) == ["chat", "lobby"]
    assert raw.hget("sf:{default:state:chat}", "0").endswith("-1")
    assert raw.hget("sf:{default:state:chat}", "0").count("-") == 2


def test_cordon_via_the_control_hash(store, raw):
    put_state(raw, "lobby", 0)
    put_state(raw, "lobby", 1)
    assert store.set_cordon(NS, "lobby", 1, True) is True
    assert store.set_cordon(NS, "lobby", 1, True) is False  # no change
    assert raw.hget("sf:{default:state:lobby}:ctl", "1") == "cordon"
    snap = store.snapshot(NS, "lobby", expire_ms=1000)
    assert snap.pods[1].cordoned and snap.pods[1].alive and not snap.pods[1].routable
    assert [v.pod for v in snap.routable()] == [0]
    published = store.publish_state(NS, "lobby", 1, load=0, state=RoutingState.READY, epoch=None, expire_ms=1000)
    assert published.cordoned
    assert store.set_cordon(NS, "lobby", 1, False) is True
    assert store.set_cordon(NS, "lobby", 1, False) is False
    assert store.snapshot(NS, "lobby", expire_ms=1000).pods[1].routable
    # An operator's raw HSET works the same.
    raw.hset("sf:{default:state:lobby}:ctl", "0", "cordon")
    assert [v.pod for v in store.snapshot(NS, "lobby", expire_ms=1000).routable()] == [1]


def test_workload_summary_published_by_pod_zero(store, raw):
    put_state(raw, "lobby", 1)
    published = store.publish_state(NS, "lobby", 0, load=0, state=RoutingState.READY, epoch=None,
                                    expire_ms=5_000, summarize=True)
    assert published.snapshot is not None and sorted(published.snapshot.pods) == [0, 1]
    assert store.workload(NS, "lobby") == "READY"
    assert 0 < raw.pttl("sf:{default:workload:lobby}") <= 5_000  # dies with pod 0's heartbeat
    put_state(raw, "lobby", 1, state=RoutingState.DRAINING)
    store.publish_state(NS, "lobby", 0, load=0, state=RoutingState.READY, epoch=None, expire_ms=5_000, summarize=True)
    assert store.workload(NS, "lobby") == "DEGRADED"
    store.publish_state(NS, "lobby", 0, load=0, state=RoutingState.DOWN, epoch=None, expire_ms=5_000, summarize=True)
    assert store.workload(NS, "lobby") == "DOWN"
    assert store.workload(NS, "chat") is None


def test_remove_state(store, raw):
    put_state(raw, "lobby", 0)
    assert store.remove_state(NS, "lobby", 0) is True
    assert store.remove_state(NS, "lobby", 0) is False
    assert store.snapshot(NS, "lobby", expire_ms=1000).pods == {}


# --- tags ------------------------------------------------------------------------------------------------


def test_tags(store, raw):
    assert store.get_tag(NS, "lobby") is None
    assert store.set_tag(NS, "lobby", "lobby-v1") is None
    assert store.set_tag(NS, "lobby", "lobby-v2") == "lobby-v1"
    assert store.get_tag(NS, "lobby") == "lobby-v2"
    assert raw.get("sf:{default:tag:lobby}") == "lobby-v2"


# --- prefix and namespaces ----------------------------------------------------------------------------------


def test_prefix_and_namespaces_isolate(store, raw):
    other = Store(raw, prefix="xx")
    s = Checked(store)
    s.set(NS, "42", "lobby", 1)
    other.set(NS, "42", "lobby", 2)
    s.set("prod", "42", "lobby", 3)
    check_invariant(raw, "xx")
    assert raw.get("xx:{default:lk:42}lobby") == "2"
    assert (s.get(NS, "42", "lobby").pod, other.get(NS, "42", "lobby").pod, s.get("prod", "42", "lobby").pod) == (1, 2, 3)
    assert [l.pod for l in s.scan_links(NS)] == [1]


# --- the border ----------------------------------------------------------------------------------------------


def test_unreachable_redis_is_redis_unavailable_without_the_password():
    store = Store.from_url(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(RedisUnavailable) as info:
            store.get(NS, "42", "lobby")
        assert info.value.exit_code == 6
        assert "hunter2" not in str(info.value) and "***" in str(info.value)
    finally:
        store.close()


def test_invalid_input_writes_nothing(s, raw):
    s.set(NS, "42", "lobby", 1)
    before = {k: raw.get(k) if raw.type(k) == "string" else raw.hgetall(k) for k in raw.scan_iter()}
    calls = [
        lambda: s.set(NS, "42", "lobby", -1),
        lambda: s.set(NS, "42", "lobby", 65536),
        lambda: s.set(NS, "42", "lobby", True),
        lambda: s.set(NS, "42", "lobby", "x"),
        lambda: s.set(NS, "42", "lobby", 1, 0),
        lambda: s.set(NS, "42", "lobby", 1, -5),
        lambda: s.set(NS, "42", "lobby", 1, 1.5),
        lambda: s.set(NS, "4{2", "lobby", 1),
        lambda: s.set(NS, "42", "lob:by", 1),
        lambda: s.set("de:fault", "42", "lobby", 1),
        lambda: s.try_set(NS, "42 ", "lobby", 1),
        lambda: s.set_if_absent(NS, "", "lobby", 1),
        lambda: s.set_if_absent_many(NS, "lobby", [("ok", 1), ("bad}", 1)]),
        lambda: s.set_if_absent_many(NS, "lobby", [("ok", 1), ("ok2", -1)]),
        lambda: s.move(NS, "42", "lobby", 1, 65536),
        lambda: s.remove(NS, "42", "lobby", if_pod=-1),
        lambda: s.batch_get(NS, ["ok", "x" * 257], "lobby"),
        lambda: list(s.scan_links(NS, service="a:b")),
        lambda: s.publish_state(NS, "lobby", 0, load=-1, state=RoutingState.READY, epoch=None, expire_ms=1000),
        lambda: s.set_cordon(NS, "lobby", "x", True),
        lambda: s.set_tag(NS, "t:x", "lobby"),
        lambda: s.set_tag(NS, "tag", "lob by"),
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            call()
    after = {k: raw.get(k) if raw.type(k) == "string" else raw.hgetall(k) for k in raw.scan_iter()}
    assert after == before
