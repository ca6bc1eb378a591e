"""stroute.direct: single commands and pipelines on kept connections, on a real redis-server.

What redis-py's pool would otherwise guarantee is checked here: a connection
that died while idle is replaced, a connection in doubt is never reused (a
late reply must not answer the next command), error replies keep the
connection, forks get their own sockets, close() closes.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
import redis

from stroute import direct
from stroute.backends import ConnectOptions, connect
from stroute.store import Store
from support import wait_until

pytestmark = pytest.mark.realserver


def _client_ids(raw: redis.Redis, name: str) -> set[int]:
    return {int(c["id"]) for c in raw.client_list() if c.get("name") == name}


@pytest.fixture
def raw(redis_server, real_url):
    client = redis_server.client()
    yield client
    client.close()


def _commands(url: str, name: str, timeout: float = 2.0) -> direct.DirectCommands:
    commands = direct.for_client(connect(url, ConnectOptions(client_name=name, socket_timeout=timeout)))
    assert type(commands) is direct.DirectCommands
    return commands


def test_a_connection_is_kept_and_reused(raw, real_url):
    commands = _commands(real_url, "direct-reuse")
    first = commands.call("CLIENT", "ID")
    assert [commands.call("CLIENT", "ID") for _ in range(5)] == [first] * 5
    assert _client_ids(raw, "direct-reuse") == {first}
    commands.close()


def test_a_connection_killed_while_idle_is_replaced_once(raw, real_url):
    commands = _commands(real_url, "direct-killed")
    raw.set("k", "v")
    first = commands.call("CLIENT", "ID")
    assert raw.client_kill_filter(_id=first) == 1
    assert commands.call("GET", "k") == "v"  # sent again on a fresh connection
    assert commands.call("CLIENT", "ID") != first
    commands.close()


def test_a_connection_that_timed_out_is_never_reused(raw, real_url):
    """The reply that arrives after a timeout must not answer the next command."""
    commands = _commands(real_url, "direct-timeout", timeout=0.2)
    raw.mset({"a": "1", "b": "2"})
    first = commands.call("CLIENT", "ID")
    raw.execute_command("CLIENT", "PAUSE", 800, "ALL")
    with pytest.raises(redis.TimeoutError):
        commands.call("GET", "a")
    wait_until(lambda: raw.get("b") == "2", what="the pause to end")
    assert commands.call("GET", "b") == "2"
    assert commands.call("CLIENT", "ID") != first
    commands.close()


def test_an_error_reply_raises_and_keeps_the_connection(raw, real_url):
    commands = _commands(real_url, "direct-error")
    raw.hset("h", "f", "v")
    first = commands.call("CLIENT", "ID")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        commands.call("GET", "h")
    assert commands.call("HGET", "h", "f") == "v"
    assert commands.call("CLIENT", "ID") == first
    commands.close()


def test_a_pipeline_returns_error_replies_in_place(raw, real_url):
    commands = _commands(real_url, "direct-pipeline")
    raw.set("s", "x")
    raw.hset("h", "f", "v")
    replies = commands.pipeline([("GET", "s"), ("GET", "h"), ("PTTL", "s"), ("MGET", "s", "nope")])
    assert replies[0] == "x"
    assert isinstance(replies[1], redis.ResponseError) and "WRONGTYPE" in str(replies[1])
    assert replies[2:] == [-1, ["x", None]]
    assert commands.call("GET", "s") == "x"  # every reply was read: the connection is in step
    commands.close()


def test_a_pipeline_on_a_killed_connection_is_sent_again(raw, real_url):
    commands = _commands(real_url, "direct-pipeline-killed")
    first = commands.call("CLIENT", "ID")
    raw.client_kill_filter(_id=first)
    assert commands.pipeline([("SET", "p", "1"), ("GET", "p")]) == ["OK", "1"]
    commands.close()


def test_an_argument_that_cannot_be_sent_is_refused_before_a_connection_is_taken(raw, real_url):
    commands = _commands(real_url, "direct-unsendable")
    for bad in (object(), "a\ud800b"):
        with pytest.raises(redis.DataError):
            commands.call("SET", "k", bad)
    assert not _client_ids(raw, "direct-unsendable")
    assert raw.get("k") is None
    commands.close()


def test_commands_are_packed_the_same_without_hiredis(monkeypatch):
    commands = [("EVALSHA", "0" * 40, 2, "sf:{d:lk:用户}s", "sf:{d:lk:用户}", "s", 3, ""), ("PTTL", "k"), ("PING",)]
    packed = direct._pack(commands)
    monkeypatch.setattr(direct, "_hiredis_pack", None)
    assert direct._pack(commands) == packed
    assert packed[0].startswith(b"*8\r\n$7\r\nEVALSHA\r\n") and packed[0].endswith(b"*1\r\n$4\r\nPING\r\n")


def test_a_store_refuses_a_client_it_cannot_drive():
    with pytest.raises(TypeError, match="redis-py"):
        Store(object())


def test_connections_beyond_the_idle_limit_are_closed(raw, real_url):
    commands = _commands(real_url, "direct-threads", timeout=20)
    count = direct.MAX_IDLE + 8
    popped: list[object] = []
    # Every thread blocks in BLPOP, so all `count` connections are open at once.
    threads = [threading.Thread(target=lambda: popped.append(commands.call("BLPOP", "q", 0))) for _ in range(count)]
    for t in threads:
        t.start()
    wait_until(lambda: sum(c.get("cmd") == "blpop" for c in raw.client_list()) == count,
               what="every thread to block")
    raw.rpush("q", *range(count))
    for t in threads:
        t.join(timeout=30)
    assert len(popped) == count
    assert len(_client_ids(raw, "direct-threads")) <= count
    wait_until(lambda: len(_client_ids(raw, "direct-threads")) == direct.MAX_IDLE,
               what="connections beyond the idle limit to close")
    commands.close()


def test_close_closes_the_idle_connections(raw, real_url):
    commands = _commands(real_url, "direct-close")
    commands.call("PING")
    assert len(_client_ids(raw, "direct-close")) == 1
    commands.close()
    wait_until(lambda: not _client_ids(raw, "direct-close"), what="the connection to close")
    assert commands.call("PING") == "PONG"  # a call after close still works, and keeps nothing
    wait_until(lambda: not _client_ids(raw, "direct-close"), what="the late connection to close")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(raw, real_url):
    commands = _commands(real_url, "direct-fork")
    parent_id = commands.call("CLIENT", "ID")
    commands._lock.acquire()  # as if another thread held it at the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection's id and leave at once
        try:
            signal.alarm(10)  # a deadlock ends the child, and the parent reads nothing
            os.write(write, str(commands.call("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    commands._lock.release()
    os.close(write)
    reported = os.read(read, 100).decode()
    assert reported, "the child did not answer"
    child_id = int(reported)
    os.close(read)
    os.waitpid(pid, 0)
    assert child_id != parent_id
    assert commands.call("CLIENT", "ID") == parent_id  # the parent's socket survived the child
    commands.close()


def test_the_store_uses_one_connection_for_scripts_pipelines_and_listing(raw, real_url):
    store = Store.from_url(real_url, options=ConnectOptions(client_name="direct-store"))
    store.set_if_absent("default", "u1", "lobby", 3)
    store.batch_get("default", ["u1", "u2"], "lobby")
    assert [link.pod for link in store.scan_links("default")] == [3]
    store.set_if_absent_many("default", "lobby", [("u2", 1), ("u3", 2)])
    assert len(_client_ids(raw, "direct-store")) == 1
    store.close()
    wait_until(lambda: not _client_ids(raw, "direct-store"), what="the store's connection to close")


def test_memory_clients_go_direct_and_sentinel_clients_borrow_from_their_pool():
    commands = direct.for_client(connect("memory://direct-test"))
    assert commands.call("SET", "k", "v") == "OK"
    assert commands.pipeline([("GET", "k"), ("PTTL", "k")]) == ["v", -1]
    # A Sentinel pool asks where the master is as it hands out connections.
    sentinel = connect("redis+sentinel://127.0.0.1:1/mymaster")  # connects on first use only
    assert type(direct.for_client(sentinel)) is direct.PooledCommands


@pytest.mark.cluster
def test_a_cluster_client_keeps_its_own_path(redis_cluster, cluster_url):
    client = connect(cluster_url)
    assert direct.for_client(client) is None
    client.close()


# --- replies read in bulk, and chains of pipelines ------------------------------------------------


def test_a_pipeline_of_many_replies_is_read_whole_with_its_errors_in_place(raw, real_url):
    """Thousands of replies arrive over many socket reads; each is in its place."""
    commands = _commands(real_url, "direct-bulk")
    raw.mset({f"k{i}": str(i) for i in range(3000)})
    raw.hset("h", "f", "v")
    pipeline = [("GET", f"k{i}") for i in range(3000)]
    pipeline[1500] = ("GET", "h")
    replies = commands.pipeline(pipeline)
    assert isinstance(replies[1500], redis.ResponseError) and "WRONGTYPE" in str(replies[1500])
    assert replies[:1500] + replies[1501:] == [str(i) for i in range(3000) if i != 1500]
    assert commands.call("GET", "k7") == "7"
    commands.close()


@pytest.mark.skipif(not hasattr(__import__("redis._parsers.hiredis", fromlist=["_HiredisParser"])._HiredisParser,
                                 "handle_push_response"),
                    reason="this redis-py has no RESP3 push handler on sync connections (it speaks RESP2 there): "
                           "no push arrives between replies")
def test_a_push_between_replies_is_not_taken_for_one(raw, real_url, monkeypatch):
    """RESP3: an invalidation pushed on the connection itself (tracking without
    a redirect) comes before the next pipeline's replies; it goes to redis-py's
    push handler and is not counted as a reply."""
    from redis._parsers.hiredis import _HiredisParser

    pushed = []
    real = _HiredisParser.handle_push_response
    monkeypatch.setattr(_HiredisParser, "handle_push_response",
                        lambda self, response, **kw: (pushed.append(response), real(self, response, **kw))[1])
    commands = _commands(real_url, "direct-push")
    raw.set("watched", "1")
    assert commands.call("CLIENT", "TRACKING", "ON") == "OK"
    assert commands.call("GET", "watched") == "1"
    raw.set("watched", "2")  # the invalidation is queued on the connection before anything sent after this
    assert commands.pipeline([("GET", "watched"), ("PTTL", "watched")]) == ["2", -1]
    assert [p[0] for p in pushed] == ["invalidate"]
    assert commands.call("ECHO", "in step") == "in step"
    commands.close()


def test_a_chain_writes_the_next_pipeline_once_the_first_reply_is_in(raw, real_url):
    """The next pipeline goes out while Redis works on the rest of the last one,
    on the same connection, which is handed back in step."""
    commands = _commands(real_url, "direct-chain")
    raw.mset({"a": "1", "b": "2", "c": "3"})
    firsts = []

    def follow(first):
        firsts.append(first)
        # Pipelines after the first start with the CLIENT ID the last one's
        # follow saw, so the connection can be compared across them.
        return None if len(firsts) == 3 else [("CLIENT", "ID"), ("GET", "abc"[len(firsts)])]

    chain = commands.chain([("CLIENT", "ID"), ("GET", "a")], follow)
    first = next(chain)
    assert first[1] == "1" and firsts == [first[0]]  # the second pipeline was written before this was yielded
    assert [replies[1] for replies in chain] == ["2", "3"]
    assert len(set(firsts)) == 1  # one connection throughout
    assert commands.call("CLIENT", "ID") == first[0]  # handed back in step
    commands.close()


def test_a_chain_closed_with_a_pipeline_unanswered_closes_its_connection(raw, real_url):
    """A late reply must not answer the next command: the connection goes."""
    commands = _commands(real_url, "direct-chain-closed")
    raw.set("a", "1")
    chain = commands.chain([("CLIENT", "ID")], lambda first: [("GET", "a")])
    used = next(chain)[0]
    chain.close()
    assert commands.call("GET", "a") == "1"
    assert commands.call("CLIENT", "ID") != used
    wait_until(lambda: used not in _client_ids(raw, "direct-chain-closed"), what="the chain's connection to close")
    commands.close()


@pytest.mark.parametrize("when", ["between pipelines", "with two in flight"])
def test_a_chain_whose_connection_breaks_sends_the_unanswered_pipelines_again(raw, real_url, when):
    commands = _commands(real_url, f"direct-chain-killed-{when[0]}")
    raw.mset({"a": "1", "b": "2"})
    ids = []

    def follow(first):
        ids.append(first)
        if len(ids) == 1:
            if when == "between pipelines":
                raw.client_kill_filter(_id=first)  # before the second pipeline is written
            return [("CLIENT", "ID"), ("GET", "a")]
        if len(ids) == 2:
            if when == "with two in flight":
                raw.client_kill_filter(_id=first)  # the first pipeline's rest and the third unread
            return [("CLIENT", "ID"), ("GET", "b")]
        return None

    pipelines = list(commands.chain([("CLIENT", "ID"), ("ECHO", "x")], follow))
    assert [p[1] for p in pipelines] == ["x", "1", "2"]
    assert len(set(p[0] for p in pipelines)) == 2  # one new connection, once
    commands.close()


def test_an_error_reply_in_a_chain_raises_and_keeps_the_connection_in_step(raw, real_url):
    commands = _commands(real_url, "direct-chain-error")
    raw.hset("h", "f", "v")
    chain = commands.chain([("CLIENT", "ID")], lambda first: [("PING",), ("GET", "h")] if first != "PONG" else None)
    used = next(chain)[0]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        next(chain)
    assert commands.call("CLIENT", "ID") == used  # every reply was read
    commands.close()


def test_commands_packed_per_key_are_packed_as_one_by_one(raw, real_url):
    keys = ["sf:{d:lk:用户}s", "k", "sf:{d:lk:a}b"]
    packed = direct.pack_per_key(keys, together=("MGET",), each=("PTTL", "TYPE"))
    assert packed.count == 1 + 2 * 3
    assert packed.data == direct._pack([("MGET", *keys), *[("PTTL", k) for k in keys],
                                        *[("TYPE", k) for k in keys]])[0]
    assert direct.pack_per_key([], together=("MGET",), each=("PTTL",)) == (b"", 0)
    with pytest.raises(redis.DataError):
        direct.pack_per_key(["a\ud800b"], each=("PTTL",))


def test_a_refused_connection_raises_connection_error_from_a_chain_and_a_pipeline():
    from stroute.testing import free_port

    commands = direct.for_client(connect(f"redis://127.0.0.1:{free_port()}/0", ConnectOptions(socket_timeout=1)))
    with pytest.raises(redis.ConnectionError):
        list(commands.chain([("PING",)], lambda first: None))
    with pytest.raises(redis.ConnectionError):
        commands.pipeline([("PING",), ("PING",)])
    commands.close()


# --- a Ctrl-C while numbers are packed -----------------------------------------------------------

_PACK_UNDER_SIGNAL = """
import signal, sys
from stroute import direct

def stop(*_):
    raise KeyboardInterrupt

signal.signal(signal.SIGALRM, stop)
commands = [("SET", f"k{i}", i, "PX", 300000, "x", 0.5) for i in range(400_000)]
pack = direct._pack if sys.argv[1] == "stroute" else (lambda cs: b"".join(map(direct._hiredis_pack, cs)))
signal.setitimer(signal.ITIMER_REAL, 0.05)
try:
    for _ in range(200):
        pack(commands)
except KeyboardInterrupt:
    sys.exit(130)
sys.exit(3)
"""


@pytest.mark.skipif(direct._hiredis_pack is None, reason="hiredis is not installed: redis-py packs in Python")
def test_a_signal_while_numbers_are_packed_interrupts_and_does_not_crash(tmp_path):
    """hiredis's pack_command makes a number text with PyObject_Repr, which
    fails when a signal is pending, and then crashes on the NULL it got: a
    Ctrl-C during `stroute pod drain` ended in a segmentation fault instead of
    exit 130. The signal lands in the middle of a long packing run here, every
    time: hiredis alone crashes on it (hiredis 3.x), stroute's packing is
    interrupted."""
    import subprocess
    import sys

    script = tmp_path / "pack.py"
    script.write_text(_PACK_UNDER_SIGNAL)
    bare = subprocess.run([sys.executable, str(script), "hiredis"], capture_output=True, timeout=120)
    ours = subprocess.run([sys.executable, str(script), "stroute"], capture_output=True, timeout=120)
    assert bare.returncode in (-signal.SIGSEGV, 130), bare  # the signal did land while packing
    assert ours.returncode == 130, ours.stderr.decode()


@pytest.mark.skipif(direct._hiredis_pack is None, reason="hiredis is not installed: redis-py packs in Python")
@pytest.mark.parametrize("where", ["server", "cluster"])
def test_redis_py_connections_give_hiredis_no_numbers(monkeypatch, request, where):
    """On a single server, and on a Cluster's node clients (those made at
    connect and those made later, as after a slot moved)."""
    import redis.connection

    real_url = request.getfixturevalue("real_url" if where == "server" else "cluster_url")
    seen: list[tuple] = []
    real_pack = redis.connection.hiredis.pack_command

    def watching(args):
        seen.append(args)
        return real_pack(args)

    monkeypatch.setattr(redis.connection.hiredis, "pack_command", watching)
    client = connect(real_url)
    seen.clear()  # a Cluster's first node clients talk while they are made, before connect() returns
    try:
        client.set("packed", 7, px=300_000)
        client.incrbyfloat("packed", 0.5)
        assert client.get("packed") == "7.5"
        if where == "cluster":  # a node client made after connect
            node = client.get_node_from_key("packed")
            made = client.nodes_manager.create_redis_node(node.host, node.port)
            assert made.set("packed", 8, px=300_000)
            made.close()
    finally:
        client.close()
    assert seen and all(type(arg) in (str, bytes) for args in seen for arg in args), seen
