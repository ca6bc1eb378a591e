"""Bad input, generated: names, uids, pods, TTLs, URLs and config files.

Through the command line (CliRunner), every invalid value must give exit 2
and one error line that names the value, never a traceback, and leave Redis
as it was (every key, value and TTL compared before and after, on a real
server). The invalid values are built to break a rule of SPEC.md (a
forbidden character, a bad length, a number out of range, a wrong type), so
the oracle does not lean on stroute's own validators.
"""

from __future__ import annotations

import json
import re
import string

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cli.ops_support import cli, error_lines, isolated  # noqa: F401
from stroute import backends
from support import all_keys

pytestmark = [pytest.mark.usefixtures("isolated"), pytest.mark.realserver]

FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

NAME_CHARS = string.ascii_letters + string.digits + "._-"

# --- invalid values, by construction ------------------------------------------------------------------

# a character a namespace, service or tag may not hold: punctuation, space, control, non-ASCII
bad_name_char = st.one_of(
    st.sampled_from(list(":{}*?[]/\\ \t\n@#%$&'\"+=,;!~`|<>()^")),
    st.characters(min_codepoint=0, max_codepoint=31),
    st.characters(min_codepoint=128, exclude_categories=("Cs",)),
)
name_body = st.text(alphabet=NAME_CHARS, max_size=20)
bad_names = st.one_of(
    st.just(""),
    st.builds(lambda a, c, b: a + c + b, name_body, bad_name_char, name_body),
    st.builds(lambda c, b: c + b, st.sampled_from("._-"), name_body),  # must start with a letter or digit
    st.text(alphabet=NAME_CHARS, min_size=64, max_size=90).map(lambda s: "a" + s),  # over 63 characters
)
bad_uid_char = st.one_of(
    st.sampled_from(list("{} \t\n\r\x0b\x0c\x85\xa0\u2028\u2029\u3000")),
    st.characters(min_codepoint=0, max_codepoint=31),
    st.characters(min_codepoint=0x7f, max_codepoint=0x9f),
    st.characters(categories=("Cf",)),  # invisible format characters: zero-width, bidi, BOM, tags
)
uid_text = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2fff, exclude_characters="{}",
                                          exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc", "Cf")), max_size=20)
bad_uids = st.one_of(
    st.just(""),
    st.builds(lambda a, c, b: a + c + b, uid_text, bad_uid_char, uid_text),
    st.integers(min_value=257, max_value=400).map(lambda n: "u" * n),  # over 256 characters
)
bad_pods = st.one_of(
    st.integers(max_value=-1).map(str),
    st.integers(min_value=65536, max_value=10**30).map(str),
    st.floats(min_value=-1e9, max_value=1e9).filter(lambda f: not f.is_integer()).map(repr),
    st.sampled_from(["nan", "inf", "1e3", "0x10", "1_000", "١", "３"]),  # non-decimal or non-ASCII digits
    st.builds(lambda a, c, b: a + c + b, st.text(alphabet=string.digits, max_size=4),
              st.sampled_from(list(string.ascii_letters + ".,_/:")), st.text(alphabet=string.digits, max_size=4)),
    st.just(""),
)
bad_ttls = st.one_of(
    st.floats(max_value=0.0009).map(repr),  # zero, negative or under a millisecond
    st.sampled_from(["nan", "inf", "-inf", "", "1s", "5m", "1,5", "0x10", "ten", "1_000", "١", "３", "infinity"]),
    st.builds(lambda a, c: a + c, st.text(alphabet=string.digits, min_size=1, max_size=3),
              st.sampled_from(list("smhd_x/:"))),
)


# --- the check ---------------------------------------------------------------------------------------------


@pytest.fixture
def raw(real_url, redis_server):
    """The real server, holding some data that bad input must not change."""
    client = redis_server.client()
    result = cli("--redis-url", real_url, "link", "set", "seed", "-s", "lobby", "--pod", "1")
    assert result.exit_code == 0, result.stderr
    cli("--redis-url", real_url, "link", "set", "temp", "-s", "lobby", "--pod", "2", "--ttl", "600")
    cli("--redis-url", real_url, "serve", "--once", "-s", "lobby", "--pod", "0", "--load", "1")
    yield client
    client.close()


def refused(raw, url: str, *args: str, shows, env: dict[str, str] | None = None) -> str:
    """Run `stroute ARGS`: exit 2, one error line naming the value, no traceback, Redis unchanged.

    `shows`: a text the error must hold, a tuple of alternatives, or a list of those.
    """
    before = all_keys(raw)
    result = cli("--redis-url", url, "-o", "json", *args, env=env) if url else cli("-o", "json", *args, env=env)
    text = result.stdout + result.stderr
    assert result.exit_code == 2, (args, result.exit_code, text)
    assert "Traceback" not in text, text
    lines = error_lines(result.stderr) or [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, (args, result.stderr)
    for needle in [shows] if isinstance(shows, (str, tuple)) else shows:
        alternatives = needle if isinstance(needle, tuple) else (needle,)
        assert any(a in result.stderr for a in alternatives), (args, needle, result.stderr)
    assert all_keys(raw) == before
    return result.stderr


def shown(value: str) -> tuple[str, ...]:
    """How a message may show a value: its repr (cut to 77 characters when long), or, for a
    whole number out of range, the number."""
    if re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return repr(value)[:77], f" {int(value)}:"
    return (repr(value)[:77],)


# --- names, uids, pods, TTLs ------------------------------------------------------------------------------


NAME_SLOTS = {
    "namespace": lambda v: (f"--namespace={v}", "link", "set", "u", "-s", "lobby", "--pod", "1"),
    "service": lambda v: ("link", "set", "u", "--service", v, "--pod", "1"),
    "service of place": lambda v: ("place", "--service", v, "u"),
    "service of pods": lambda v: ("pods", "--service", v),
    "service of serve": lambda v: ("serve", "--once", "--service", v, "--pod", "0", "--load", "1"),
    "service of cordon": lambda v: ("pod", "cordon", "--", v, "1"),
    "tag": lambda v: ("tag", "set", "--", v, "lobby"),
    "tag target": lambda v: ("tag", "set", "--", "main", v),
}


@FUZZ
@given(slot=st.sampled_from(sorted(NAME_SLOTS)), value=bad_names)
def test_bad_names(raw, real_url, slot, value):
    stderr = refused(raw, real_url, *NAME_SLOTS[slot](value), shows=shown(value))
    assert "must be 1-63 characters" in stderr


UID_SLOTS = {
    "link set": lambda v: ("link", "set", "--service", "lobby", "--pod", "1", "--", v),
    "link get": lambda v: ("link", "get", "--service", "lobby", "--", v),
    "link remove": lambda v: ("link", "remove", "--service", "lobby", "--", v),
    "place": lambda v: ("place", "--service", "lobby", "--", "ok-1", v),
    "batch-get": lambda v: ("link", "batch-get", "--service", "lobby", "--", "ok-1", v),
}


@FUZZ
@given(slot=st.sampled_from(sorted(UID_SLOTS)), value=bad_uids)
def test_bad_uids(raw, real_url, slot, value):
    assume(value != "-")  # '-' means "read uids from stdin" where a list is taken
    refused(raw, real_url, *UID_SLOTS[slot](value), shows=["invalid uid", shown(value)])


POD_SLOTS = {
    "link set": lambda v: ("link", "set", "u", "--service", "lobby", "--pod", v),
    "link try-set": lambda v: ("link", "try-set", "u", "--service", "lobby", "--pod", v),
    "link remove --if-pod": lambda v: ("link", "remove", "seed", "--service", "lobby", "--if-pod", v),
    "pod cordon": lambda v: ("pod", "cordon", "--", "lobby", v),
    "serve --once": lambda v: ("serve", "--once", "--service", "lobby", "--pod", v, "--load", "1"),
    "link list --pod": lambda v: ("link", "list", "--pod", v),
}


@FUZZ
@given(slot=st.sampled_from(sorted(POD_SLOTS)), value=bad_pods)
def test_bad_pods(raw, real_url, slot, value):
    refused(raw, real_url, *POD_SLOTS[slot](value), shows=[shown(value), "pod"])


TTL_SLOTS = {
    "link set --ttl": lambda v: ("link", "set", "u", "--service", "lobby", "--pod", "1", "--ttl", v),
    "link try-set --ttl": lambda v: ("link", "try-set", "u", "--service", "lobby", "--pod", "1", "--ttl", v),
    "link remove --after": lambda v: ("link", "remove", "seed", "--service", "lobby", "--after", v),
}


@FUZZ
@given(slot=st.sampled_from(sorted(TTL_SLOTS)), value=bad_ttls)
def test_bad_ttls(raw, real_url, slot, value):
    refused(raw, real_url, *TTL_SLOTS[slot](value), shows=shown(value))


# --- URLs ---------------------------------------------------------------------------------------------------

# Any URL that parses points at port 1 of this host, where nothing listens: were one
# accepted, the command would fail with exit 6, never reach a real Redis.
host = st.sampled_from(["127.0.0.1", "localhost"])
bad_urls = st.one_of(
    # an unknown scheme
    st.builds(lambda s, h: f"{s}://{h}:1/0", st.text(alphabet=string.ascii_lowercase + "+", min_size=1,
                                                     max_size=10).filter(lambda s: s not in backends.schemes()),
              host),
    # no scheme at all
    st.builds(lambda h, p: f"{h}:{p}", host, st.integers(0, 70000)),
    # a port that is not a number or out of range
    st.builds(lambda s, h, p: f"{s}://{h}:{p}/0", st.sampled_from(["redis", "rediss"]), host,
              st.one_of(st.integers(65536, 10**6).map(str), st.text(alphabet=string.ascii_letters, min_size=1,
                                                                      max_size=5))),
    # a database that is not a number
    st.builds(lambda h, d: f"redis://{h}:1/{d}", host, st.text(alphabet=string.ascii_letters + "-_/", min_size=1,
                                                                 max_size=5).filter(lambda d: d.strip("/"))),
    # an option redis-py does not know
    st.builds(lambda h, k: f"redis://{h}:1/0?{k}=1", host,
              st.text(alphabet=string.ascii_lowercase, min_size=3, max_size=8).filter(
                  lambda k: k not in {"db", "password", "username", "protocol"})),
    # a sentinel URL without a master, or with a bad host list
    st.builds(lambda h: f"redis+sentinel://{h}:1", host),
    st.builds(lambda h, p: f"redis+sentinel://{h}:{p}/mymaster", host,
              st.text(alphabet=string.ascii_letters, min_size=1, max_size=5)),
)


@FUZZ
@given(url=bad_urls, password=st.one_of(st.none(), st.just("Fuzz-secret-1")))
def test_bad_urls(raw, url, password):
    if password is not None and "://" in url:
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://:{password}@{rest}"
    stderr = refused(raw, "", "--redis-url", url, "link", "set", "u", "-s", "lobby", "--pod", "1",
                     shows="Redis URL")
    assert backends.redact(url).split("?")[0].split(",")[0][:30] in stderr, stderr
    assert "Fuzz-secret-1" not in stderr


# --- config files -------------------------------------------------------------------------------------------

NUMBER_KEYS = ["redis.socket_timeout", "state.period", "state.expire", "state.refresh", "links.temp_ttl",
               "links.cache_seconds", "links.remove_delay", "placement.good_load_range", "server.cpu_factor",
               "server.drain_seconds"]
not_a_number = st.one_of(
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=8).filter(
        lambda s: s.lower() not in {"nan", "inf", "infinity", "true", "false", "yes", "no", "on", "off", "null",
                                    "y", "n"}),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), min_size=1, max_size=2),
)
negative = st.floats(max_value=-0.001, allow_nan=False, allow_infinity=False)
unknown_key = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12)


def nest(key: str, value) -> dict:
    if "." not in key:
        return {key: value}
    section, name = key.split(".", 1)
    return {section: {name: value}}


@st.composite
def bad_config_files(draw):
    """(YAML text, what the message must show)."""
    kind = draw(st.sampled_from(["wrong type", "out of range", "unknown key", "unknown section key",
                                 "bad name", "malformed", "not a mapping"]))
    if kind == "wrong type":
        key, value = draw(st.sampled_from(NUMBER_KEYS)), draw(not_a_number)
        return yaml.safe_dump(nest(key, value)), [key]
    if kind == "out of range":
        key = draw(st.sampled_from([k for k in NUMBER_KEYS if k != "state.refresh"]))
        value = draw(negative)
        # a whole-number key (good_load_range) shows -1.0 as -1
        shows = (repr(value), repr(int(value))) if value.is_integer() else repr(value)
        return yaml.safe_dump(nest(key, value)), [key, shows]
    if kind == "unknown key":
        key = draw(unknown_key.filter(lambda k: k not in {"namespace", "prefix", "redis", "state", "links",
                                                           "placement", "server"}))
        return yaml.safe_dump({key: 1}), [repr(key)]
    if kind == "unknown section key":
        section = draw(st.sampled_from(["redis", "state", "links", "placement", "server"]))
        key = draw(unknown_key.filter(lambda k: k not in {"url", "username", "password", "password_file",
                                                           "socket_timeout", "period", "expire", "refresh",
                                                           "temp_ttl", "cache_seconds", "remove_delay",
                                                           "strategy", "good_load_range", "cpu_factor",
                                                           "drain_seconds", "sentinel_password", "tls_ca_file",
                                                           "tls_cert_file", "tls_key_file"}))
        return yaml.safe_dump({section: {key: 1}}), [f"{section}.{key}"]
    if kind == "bad name":
        key = draw(st.sampled_from(["namespace", "prefix", "placement.strategy"]))
        value = draw(bad_names.filter(lambda v: v.isprintable()))
        return yaml.safe_dump(nest(key, value), allow_unicode=True), [key]
    if kind == "malformed":
        text = draw(st.sampled_from(["state: [1, 2", "state:\n  period: 1\n period: 2", "a: b: c", "{", "- :\n:",
                                     "state:\n\tperiod: 1", "namespace: 'x", "? [a\n", "%YAML 9\n---\n"]))
        return text, ["not valid YAML"]
    value = draw(st.one_of(st.lists(st.integers(), min_size=1, max_size=3), st.integers(), st.text(
        alphabet=string.ascii_letters, min_size=1, max_size=5)))
    return yaml.safe_dump(value), ["must hold a mapping"]


@FUZZ
@given(case=bad_config_files())
def test_bad_config_files(raw, real_url, tmp_path, case):
    text, needles = case
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    refused(raw, real_url, "--config", str(path), "link", "set", "u", "-s", "lobby", "--pod", "1", shows=needles)
    # `config validate FILE` says the same, exit 2, with the error in its JSON
    before = all_keys(raw)
    result = cli("-o", "json", "config", "validate", str(path))
    assert result.exit_code == 2 and json.loads(result.stdout)["valid"] is False, result.stdout
    assert all_keys(raw) == before
