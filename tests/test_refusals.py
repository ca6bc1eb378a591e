"""A refused link write writes nothing; bad data in Redis is reported, never
misread (issue 11, items 6, 7, 8, 11 and 17, in the core).

Every test runs on memory://, a real redis-server and a real cluster (the
`url` fixture), except those that drive a script by hand on the real server.
"""

from __future__ import annotations

import json
import sys
import unicodedata

import pytest

from stroute import names
from stroute.config import Config
from stroute.errors import ConfigError, Conflict, CorruptData, InvalidInput
from stroute.operations import clear_pod, forget_pod
from stroute.podstate import RoutingState
from stroute.server import ServerDriver
from stroute.store import BadKeys, script_source
from stroute.transfer import import_links, parse_line
from support import all_keys, check_invariant, put_state

NS = "default"
LINK = "sf:{default:lk:u}game"
INDEX = "sf:{default:lk:u}"
TEN_YEARS_MS = 10 * 365 * 86400 * 1000


# --- item 6: every TTL and delay is bounded, checked before the first write ----------------------


@pytest.mark.parametrize("seconds", [1e14, 1e20, 315360000.001, 10**5000, float("nan"), float("inf"), 0.0001],
                         ids=["1e14", "1e20", "just-past-ten-years", "5000-digits", "nan", "inf", "0.0001"])
def test_a_ttl_or_delay_past_the_rule_is_invalid_input(seconds):
    with pytest.raises(InvalidInput, match=r"must be a number of seconds from 0\.001 to 315360000 \(10 years\)"):
        names.ttl_ms(seconds)


def test_the_store_refuses_milliseconds_past_ten_years_and_writes_nothing(store):
    store.set(NS, "u", "game", 3)
    before = all_keys(store.client)
    with pytest.raises(InvalidInput, match="10 years"):
        store.remove(NS, "u", "game", after_ms=10**17)
    with pytest.raises(InvalidInput, match="10 years"):
        store.set(NS, "u", "game", 4, ttl_ms=TEN_YEARS_MS + 1)
    assert all_keys(store.client) == before


def test_the_longest_delay_is_written_as_an_integer(store):
    """Redis refuses a Lua number printed as 1e+17; the scripts pass the caller's integer text."""
    store.set(NS, "u", "game", 3)
    assert store.remove(NS, "u", "game", after_ms=TEN_YEARS_MS) == (True, 3)
    assert TEN_YEARS_MS - 60_000 < store.client.pttl(LINK) <= TEN_YEARS_MS
    store.set(NS, "v", "game", 2, ttl_ms=TEN_YEARS_MS)
    assert store.set_if_absent(NS, "v", "game", 1, TEN_YEARS_MS).pod == 2
    check_invariant(store.client)


@pytest.mark.realserver
@pytest.mark.parametrize("script, keys, args", [
    ("link_remove", [LINK, INDEX], ["game", "100000000000000000", ""]),
    ("link_remove", [LINK, INDEX], ["game", "1.5", ""]),
    ("link_set", [LINK, INDEX], ["game", "4", "100000000000000000"]),
    ("link_try_set", [LINK, INDEX], ["game", "4", "-1"]),
    ("link_set_if_absent", [LINK, INDEX], ["game", "4", "x"]),
    ("link_import", [LINK, INDEX], ["game", "4", "315360000001", "1"]),
])
def test_each_script_checks_its_arguments_before_writing(real_url, redis_server, script, keys, args):
    """The scripts hold the bound too, for callers that reach them without the store."""
    raw = redis_server.client()
    raw.set(LINK, "3")
    raw.hset(INDEX, "game", "3")
    before = all_keys(raw)
    with pytest.raises(Exception, match="invalid (ttl|delay)"):
        raw.eval(script_source(script), len(keys), *keys, *args)
    assert all_keys(raw) == before
    raw.close()


def test_config_durations_follow_the_same_rule():
    for key in ("links.temp_ttl", "links.remove_delay", "state.expire"):
        with pytest.raises(ConfigError, match=f"for {key} .*: must be a number of seconds from 0.001"):
            Config().with_overrides(**{key: 1e20})
    with pytest.raises(ConfigError, match="state.expire"):
        Config().with_overrides(**{"state.expire": 0.0001})


# --- item 7: a write over a corrupt value or a wrong-typed key writes nothing ---------------------

WRITES = {
    "set": lambda s: s.set(NS, "u", "game", 4),
    "set temporary": lambda s: s.set(NS, "u", "game", 4, 60_000),
    "try_set": lambda s: s.try_set(NS, "u", "game", 4),
    "set_if_absent persistent": lambda s: s.set_if_absent(NS, "u", "game", 4),
    "set_if_absent temporary": lambda s: s.set_if_absent(NS, "u", "game", 4, 60_000),
    "move": lambda s: s.move(NS, "u", "game", 3, 4),
    "remove": lambda s: s.remove(NS, "u", "game"),
    "remove delayed": lambda s: s.remove(NS, "u", "game", after_ms=5_000),
    "remove fenced": lambda s: s.remove(NS, "u", "game", if_pod=3),
    "import": lambda s: s.run_script_many("link_import", [([LINK, INDEX], ["game", 4, 0, "1"])]),
}


def _plant_link_value(raw):
    raw.set(LINK, "banana")


def _plant_go_value(raw):
    raw.set(LINK, json.dumps({"podId": 3, "persistTime": -1}))


def _plant_link_hash(raw):
    raw.hset(LINK, "pod", "3")


def _plant_index_string(raw):
    raw.set(LINK, "3")
    raw.set(INDEX, "not a hash")


CORRUPTIONS = {
    "value banana": (_plant_link_value, LINK, "holds 'banana', not a pod index"),
    "value of the Go driver": (_plant_go_value, LINK, "not a pod index"),
    "link key is a hash": (_plant_link_hash, LINK, "is a hash, not a link (a string)"),
    "index key is a string": (_plant_index_string, INDEX, "is a string, not a link index (a hash)"),
}
# Writes that need not refuse. An unfenced removal deletes a value that is no
# pod index (the way to clear one). With a persistent link to pod 3 and a
# broken index, try-set and set-if-absent find the link in force and write
# nothing, so they have nothing to refuse.
DELETES_A_CORRUPT_VALUE = {"remove", "remove delayed"}
NOTHING_TO_WRITE = {"try_set": (False, 3), "set_if_absent persistent": 3, "set_if_absent temporary": 3}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
@pytest.mark.parametrize("write", WRITES)
def test_a_write_over_bad_data_writes_nothing_and_names_the_key(store, write, corruption):
    plant, key, problem = CORRUPTIONS[corruption]
    plant(store.client)
    before = all_keys(store.client)
    if corruption.startswith("value") and write in DELETES_A_CORRUPT_VALUE:
        assert WRITES[write](store) == (True, None)
        assert store.client.exists(LINK) == (0 if write == "remove" else 1)
        return
    if corruption == "index key is a string" and write in NOTHING_TO_WRITE:
        result = WRITES[write](store)
        assert (result if write == "try_set" else result.pod) == NOTHING_TO_WRITE[write]
        assert all_keys(store.client) == before
        return
    with pytest.raises(CorruptData) as caught:
        WRITES[write](store)
    assert caught.value.exit_code == 7
    assert caught.value.keys == (key,)
    assert f"key {key!r}" in caught.value.message and problem in caught.value.message
    assert all_keys(store.client) == before


def test_a_read_of_bad_data_names_the_key(store):
    store.client.hset(LINK, "pod", "3")
    with pytest.raises(CorruptData, match=r"'sf:\{default:lk:u\}game' is a hash, not a link"):
        store.get(NS, "u", "game")
    store.client.set(INDEX, "x")
    with pytest.raises(CorruptData, match=r"'sf:\{default:lk:u\}' is a string, not a link index"):
        store.links_of(NS, "u")
    with pytest.raises(CorruptData, match="not a link index"):
        store.get_if_persistent(NS, "u", "game")


def test_links_of_reports_a_bad_index_field_and_keeps_the_good_ones(store):
    store.set(NS, "u", "chat", 2)
    store.client.hset(INDEX, "game", "banana")
    bad = BadKeys()
    assert store.links_of(NS, "u", bad=bad) == {"chat": 2}
    assert bad.found == [("sf:{default:lk:u} field game", "holds 'banana', not a pod index")]


# --- item 8: a bad line of any kind is rejected like the others ----------------------------------

def _line(**fields):
    rec = {"namespace": "default", "uid": "u", "service": "game", "pod": 1, "persistent": True, "ttl": None}
    rec.update(fields)
    return json.dumps(rec)


@pytest.mark.parametrize("text, message", [
    (_line().replace('"pod": 1', '"pod": ' + "9" * 5000), "not valid JSON: Exceeds the limit"),
    (_line(persistent=False).replace('"ttl": null', '"ttl": ' + "9" * 5000), "not valid JSON: Exceeds the limit"),
    (_line(persistent=False, ttl=None).replace('"ttl": null', '"ttl": 1e400'), "invalid ttl inf"),
    (_line(persistent=False, ttl=None).replace('"ttl": null', '"ttl": -Infinity'), "-Infinity is no JSON number"),
    (_line(persistent=False, ttl=None).replace('"ttl": null', '"ttl": NaN'), "NaN is no JSON number"),
    (_line(persistent=False, ttl=10**300), "invalid ttl <an integer of about 301 digits>"),
    (_line(pod=10**300), "invalid pod <an integer of about 301 digits>"),
    (_line(pod=3.0), "invalid pod 3.0"),
    (_line(pod=[3]), "invalid pod [3]"),
    (_line(pod={"pod": 3}), "invalid pod {'pod': 3}"),
    (_line(uid=["u"]), "invalid uid ['u']: must be a JSON string"),
    (_line(uid={"u": 1}), "invalid uid {'u': 1}: must be a JSON string"),
    (_line(persistent=1), "invalid persistent 1"),
    (_line(persistent=False, ttl=[60]), "invalid ttl [60]"),
    (_line(persistent=False, ttl="60"), "invalid ttl '60'"),
    ("[" * 100_000, "nested too deeply"),
    ('{"namespace": "default", "uid": "u", "uid": "v", "service": "game", "pod": 1, "persistent": true, '
     '"ttl": null}', "field 'uid' is given twice"),
    (_line(persistent=False, ttl=0.0001), "invalid ttl 0.0001: must be a number of seconds from 0.001"),
    (_line(persistent=False, ttl=315360000.5), "invalid ttl 315360000.5"),
    (_line(uid="a\u200bb"), "invalid uid 'a\\u200bb'"),
])
def test_parse_line_rejects_the_whole_class_of_bad_values(text, message):
    with pytest.raises(InvalidInput) as caught:
        parse_line(text, NS, 1)
    assert message in caught.value.message


def test_the_import_ttl_rule_is_the_command_line_rule():
    with pytest.raises(InvalidInput) as from_file:
        parse_line(_line(persistent=False, ttl=0.0001), NS)
    with pytest.raises(InvalidInput) as from_flag:
        names.ttl("0.0001")
    assert from_file.value.message.split(": ", 1)[1].startswith(from_flag.value.message.split(": ", 1)[1])
    assert parse_line(_line(persistent=False, ttl=0.001), NS).ttl_ms == 1


def test_an_import_with_a_huge_integer_line_imports_the_rest(store):
    lines = [_line(uid="a"), _line(uid="b").replace('"pod": 1', '"pod": ' + "9" * 5000), _line(uid="c", pod=2)]
    report = import_links(store, NS, lines)
    assert (report.imported, report.rejected) == (2, 1)
    assert report.errors[0].line == 2 and "Exceeds the limit" in report.errors[0].error
    assert store.links_of(NS, "c") == {"game": 2} and store.get(NS, "b", "game") is None


def test_an_import_over_bad_keys_counts_them_and_writes_the_rest(store):
    store.client.set("sf:{default:lk:bad}game", "banana")
    store.client.set("sf:{default:lk:idx}", "not a hash")
    lines = [_line(uid="bad"), _line(uid="idx"), _line(uid="ok", pod=2)]
    for dry_run in (True, False):
        report = import_links(store, NS, lines, overwrite=True, dry_run=dry_run)
        assert (report.imported, report.rejected, report.bad_keys.count) == (1, 0, 2)
        found = dict(report.bad_keys.found)
        assert "holds 'banana', not a pod index" in found["sf:{default:lk:bad}game"]
        assert "(line 1)" in found["sf:{default:lk:bad}game"] and "(line 2)" in found["sf:{default:lk:idx}"]
    assert store.client.get("sf:{default:lk:bad}game") == "banana"
    assert store.client.get("sf:{default:lk:idx}") == "not a hash"
    assert store.links_of(NS, "ok") == {"game": 2}


def test_a_repeated_line_of_the_same_link_is_unchanged_a_contradicting_one_rejected(store):
    same = _line(uid="a")
    report = import_links(store, NS, [same, same, _line(uid="a", pod=2)])
    assert (report.imported, report.unchanged, report.rejected) == (1, 1, 1)
    assert "already on line 1 with another pod or kind" in report.errors[0].error


# --- item 11: a key name that does not parse is reported, never misattributed --------------------


@pytest.mark.parametrize("key, problem", [
    ("sf:{default:lk:a}b}game", "more than one '}'"),
    ("sf:{default:lk:a}b}", "more than one '}'"),
    ("sf:{default:lk:a b}game", "names uid 'a b', which breaks the uid rule"),
    ("sf:{default:lk:a\u200bb}game", "names uid 'a\\u200bb'"),
    ("sf:{default:lk:a{b}game", "names uid 'a{b'"),
    ("sf:{default:lk:u}ga:me", "names service 'ga:me', which breaks the name rule"),
    ("sf:{default:lk:}game", "has no uid or no service"),
])
def test_a_key_name_that_breaks_the_rules_is_reported_not_misread(store, key, problem):
    store.client.set(key, "3")
    store.set(NS, "good", "game", 1)
    bad = BadKeys()
    links = [(l.uid, l.service, l.pod) for l in store.scan_links(NS, bad=bad)]
    assert links == [("good", "game", 1)]
    assert bad.count == 1 and bad.found[0][0] == key and problem in bad.found[0][1]
    with pytest.raises(CorruptData, match="more than one|breaks the|no uid"):
        list(store.scan_links(NS))


def test_parse_links_keeps_the_good_keys_in_order():
    from stroute.keys import KeySpace

    space = KeySpace("sf", NS)
    keys = ["sf:{default:lk:a}game", "sf:{default:lk:a}b}game", "sf:{other:lk:x}game", "sf:{default:lk:b}chat"]
    unparseable: list[tuple[str, str]] = []
    assert space.parse_links(keys, unparseable) == [("sf:{default:lk:a}game", "a", "game"),
                                                     ("sf:{default:lk:b}chat", "b", "chat")]
    assert [k for k, _ in unparseable] == ["sf:{default:lk:a}b}game"]
    assert space.parse_link("sf:{default:lk:a}b}game") is None


# --- item 17: invisible format characters in uids ---------------------------------------------------


def test_every_format_character_is_refused_in_a_uid():
    refused = []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) == "Cf":
            with pytest.raises(InvalidInput, match=r"Unicode category Cf"):
                names.uid(f"a{char}b")
            refused.append(code)
    assert 0x200B in refused and 0xFEFF in refused and 0x202E in refused and len(refused) > 150
    names.uid("a\u00e9\u4e2d\U0001f3ae")  # letters and emoji stay allowed


# --- rules to keep: the alive-pod guard and the removal delay live in the core -----------------------


def test_clear_and_forget_refuse_an_alive_pod_in_the_core(store):
    store.set(NS, "u", "game", 3)
    put_state(store.client, "game", 3, state=RoutingState.DRAINING)
    before = all_keys(store.client)
    with pytest.raises(Conflict, match=r"pod 3 of 'game' is alive \(DRAINING"):
        clear_pod(store, NS, "game", 3)
    with pytest.raises(Conflict, match="not forgotten"):
        forget_pod(store, NS, "game", 3)
    assert all_keys(store.client) == before
    dry = clear_pod(store, NS, "game", 3, dry_run=True)
    assert dry.found == 1 and "is alive" in dry.alive
    assert clear_pod(store, NS, "game", 3, force=True).removed == 1
    assert forget_pod(store, NS, "game", 3, force=True) is True
    put_state(store.client, "game", 4, age_ms=5_000)
    assert forget_pod(store, NS, "game", 4, expire_ms=1_000) is True  # stale by its expiry window


def test_the_server_driver_and_the_command_line_take_one_removal_delay(store, config):
    links = config.links
    assert links.removal_ms(None) == 0
    assert links.removal_ms("2.5", kind="--after") == 2500
    assert links.removal_ms(delayed=True) == round(links.remove_delay * 1000)
    with pytest.raises(InvalidInput, match="not both"):
        links.removal_ms(5, delayed=True)
    with pytest.raises(InvalidInput, match=r"invalid --after 100000000000000\.0: must be a number of seconds"):
        links.removal_ms(1e14, kind="--after")
    server = ServerDriver("game", 3, config, store=store)
    store.set(NS, "u", "game", 3)
    assert server.remove_linked_pod(NS, "u", "game", delayed=True) is True
    assert round(links.remove_delay * 1000) - 5_000 < store.client.pttl(LINK) <= round(links.remove_delay * 1000)


def test_place_many_with_one_corrupt_link_places_the_others(url, store):
    """One uid's bad data fails that uid alone (CorruptData, exit 7 material);
    the batch's other users are placed and reported."""
    from stroute.client import ClientDriver
    from support import put_state

    put_state(store.client, "game", 0, load=0)
    store.client.set("sf:{default:lk:w}game", "banana")
    config = Config().with_overrides(**{"redis.url": url, "state.expire": 60})
    with ClientDriver(config, store=store, coherent=False) as client:
        out = client.place_many(["a", "w", "b"], "game")
    assert isinstance(out["w"], CorruptData) and "sf:{default:lk:w}game" in str(out["w"])
    assert (out["a"].pod, out["b"].pod) == (0, 0)
    assert store.client.get("sf:{default:lk:w}game") == "banana"  # nothing written over it
