"""One URL parser: a URL `config validate` accepts, connecting accepts, and the reverse.

URLs are built from pieces (scheme in any case, user info, hosts, ports,
paths, query options), valid and not. backends.parse() is what `config
validate` runs; backends.connect() is what every command runs. For every
URL both agree: the same ConfigError, or a client (or, for a cluster, whose
client reads the slot map at once, RedisUnavailable: nothing listens on
port 1 of loopback). Nothing else may escape either of them.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stroute import backends
from stroute.errors import ConfigError, RedisUnavailable

SCHEMES = ["redis", "rediss", "unix", "redis+cluster", "redis+sentinel", "memory", "rediz", ""]


def any_case(word: str):
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flips: "".join(c.upper() if f else c for c, f in zip(word, flips)))


scheme = st.sampled_from(SCHEMES).flatmap(any_case)
secret_text = st.text(alphabet=string.ascii_letters + string.digits + "%@:/?#&=+", min_size=0, max_size=8)
userinfo = st.one_of(st.just(""), st.builds(lambda u, p: f"{u}:{p}@", st.sampled_from(["", "u", "admin"]), secret_text),
                     st.sampled_from(["u@", "@"]))
host = st.sampled_from(["127.0.0.1", "[::1]", "::1", "localhost", "", "bad host", "[::1", "a_b.example", "-x"])
port = st.one_of(st.just(""), st.sampled_from([":1", ":0", ":65535", ":65536", ":99999", ":x", ":", ":-1"]))
hostlist = st.lists(st.builds(lambda h, p: h + p, host, port), min_size=1, max_size=3).map(",".join)
path = st.sampled_from(["", "/", "/0", "/15", "/abc", "/-1", "/0/x", "/mymaster", "/mymaster/3", "/m/x",
                        "/tmp/redis.sock", "//x"])
query = st.one_of(st.just(""), st.lists(st.sampled_from(
    ["db=2", "db=-1", "db=x", "password=p", "username=u", "socket_timeout=1", "socket_timeout=x", "nosuch=1",
     "sentinel_password=s", "sentinel_username=s", "protocol=3"]), min_size=1, max_size=3).map(
    lambda parts: "?" + "&".join(parts)))
urls = st.builds(lambda s, u, h, p, q: f"{s}://{u}{h}{p}{q}" if s else f"{u}{h}{p}{q}", scheme, userinfo,
                 hostlist, path, query)


def outcome(fn, url):
    try:
        client = fn(url)
    except ConfigError as exc:
        return ("invalid", exc.message)
    except RedisUnavailable:
        return ("unreachable", None)
    close = getattr(client, "close", None)
    if close is not None and not isinstance(client, backends.Parsed):
        close()
    return ("ok", None)


@settings(max_examples=400, deadline=None, database=None)
@given(url=urls)
def test_validate_and_connect_agree_on_every_url(url):
    checked = outcome(backends.parse, url)
    connected = outcome(lambda u: backends.connect(u, backends.ConnectOptions(socket_timeout=0.5)), url)
    if checked[0] == "invalid":
        assert connected == checked, url
    else:
        assert connected[0] in ("ok", "unreachable"), (url, connected)
        assert connected[0] == "ok" or url.lower().startswith("redis+cluster://"), (url, connected)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "REDIS://127.0.0.1:1/0", "redis://[::1]:1/0",
                                 "redis+cluster://[::1]:7000,127.0.0.1:7001", "redis+sentinel://127.0.0.1:1/m",
                                 "unix:///tmp/x.sock?db=1", "memory://name"])
def test_parse_contacts_nothing_and_names_the_parts(url):
    parsed = backends.parse(url)
    assert parsed.scheme == url.partition("://")[0].lower()
    assert parsed.url.partition("://")[2] == url.partition("://")[2]
    if parsed.scheme == "redis+cluster":
        assert parsed.parts["hosts"] == [("::1", 7000), ("127.0.0.1", 7001)]
