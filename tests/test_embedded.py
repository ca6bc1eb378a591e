"""embedded://PATH: one real Redis server shared by every process, data kept in PATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from stroute.config import Config
from stroute.embedded import EmbeddedServer
from stroute.errors import ConfigError

from support import check_invariant, wait_until

# A small program using stroute: run commands against one URL, print what it saw as JSON.
SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from stroute.store import Store

    store = Store.from_url(sys.argv[1])
    seen = {}
    for command in sys.argv[2:]:
        verb, uid, *rest = command.split(":")
        if verb == "set":
            store.set("default", uid, "lobby", int(rest[0]))
        elif verb == "wait":  # poll with a deadline until another process's link shows up
            deadline = time.monotonic() + 20
            while store.get("default", uid, "lobby") is None and time.monotonic() < deadline:
                time.sleep(0.02)
        link = store.get("default", uid, "lobby")
        seen[uid] = None if link is None else [link.pod, link.persistent]
    print(json.dumps(seen))
    """
)


def run_many(url: str, *command_lists: list[str]) -> list[dict]:
    """Start one process per command list at the same time; their JSON outputs."""
    procs = [
        subprocess.Popen([sys.executable, "-c", SCRIPT, url, *commands], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for commands in command_lists
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    return outputs


@pytest.fixture
def embedded(tmp_path):
    """The URL and server of an embedded store in tmp_path; shut down at the end."""
    data = tmp_path / "links.rdb"
    server = EmbeddedServer(data.absolute())
    yield f"embedded://{data}", server
    if server.is_running():
        try:
            direct(server).shutdown(nosave=True)
        except redis.RedisError:
            pass
    wait_until(lambda: not server.is_running(), what="the embedded server to stop")


def direct(server: EmbeddedServer, **kwargs) -> redis.Redis:
    """A plain client on the server's socket that does not retry (SHUTDOWN drops the connection)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(unix_socket_path=server.socket_path, retry=Retry(NoBackoff(), 0), **kwargs)


def shutdown(server: EmbeddedServer, *, save: bool) -> None:
    client = direct(server)
    if save:
        client.shutdown(save=True)
    else:
        client.shutdown(nosave=True)
    wait_until(lambda: not server.is_running(), what="the embedded server to stop")


def test_two_processes_share_links_and_data_survives_a_restart(embedded):
    url, server = embedded
    assert not server.is_running()
    # Two processes start at once: one server is started (under the file lock) and both use it.
    first, second = run_many(url, ["set:alice:1", "wait:bob"], ["set:bob:0", "wait:alice"])
    assert first == {"alice": [1, True], "bob": [0, True]}
    assert second == {"bob": [0, True], "alice": [1, True]}
    assert server.is_running()
    pid = int(server.pid_path.read_text())
    os.kill(pid, 0)  # the daemon outlived the processes that started it

    client = direct(server, decode_responses=True)
    assert client.get("sf:{default:lk:alice}lobby") == "1"
    check_invariant(client)
    client.close()

    shutdown(server, save=True)
    assert server.data_file.is_file() and server.data_file.stat().st_size > 0
    # A new process starts the server again and reads the links back from the file.
    (after,) = run_many(url, ["get:alice", "get:bob", "get:carol"])
    assert after == {"alice": [1, True], "bob": [0, True], "carol": None}
    assert server.is_running() and int(server.pid_path.read_text()) != pid


def test_in_process_store_on_embedded(embedded):
    url, server = embedded
    store = Config().with_overrides(**{"redis.url": url}).open_store()
    try:
        assert server.is_running()  # started on demand
        store.set("default", "u", "lobby", 3)
        again = Config().with_overrides(**{"redis.url": url}).open_store()  # a second client, same server
        assert again.get("default", "u", "lobby").pod == 3
        again.close()
    finally:
        store.close()


def test_path_without_suffix_gets_rdb(tmp_path):
    from stroute.backends import connect

    client = connect(f"embedded://{tmp_path}/plain")
    server = EmbeddedServer((tmp_path / "plain.rdb").absolute())
    try:
        assert server.is_running() and client.ping()
    finally:
        client.close()
        shutdown(server, save=False)


def test_long_paths_use_a_short_socket(tmp_path):
    deep = tmp_path.joinpath(*["d" * 30] * 5, "data.rdb")
    server = EmbeddedServer(deep)
    assert len(server.socket_path.encode()) <= 100
    assert server.socket_path.startswith("/tmp/stroute-")
    assert server.socket_path == EmbeddedServer(deep).socket_path  # stable: every process finds it
    assert server.socket_path != EmbeddedServer(deep.with_name("other.rdb")).socket_path
    short = EmbeddedServer(tmp_path / "data.rdb")
    assert short.socket_path == str(tmp_path / "data.sock")


def test_unusable_data_dir_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError) as info:
        EmbeddedServer(blocker / "sub" / "data.rdb").ensure_running()
    assert info.value.exit_code == 2 and str(blocker) in str(info.value)
    assert not Path(blocker / "sub").exists()


# --- stopping when idle -------------------------------------------------------------------------


def test_an_idle_server_saves_and_stops_and_a_client_keeps_it_running(tmp_path):
    from stroute.store import Store

    data = tmp_path / "idle.rdb"
    url = f"embedded://{data}?idle=1"
    server = EmbeddedServer(data.absolute(), idle=1)
    store = Store.from_url(url)
    try:
        assert store.client.stroute_embedded.started
        store.set("default", "u1", "lobby", 4)
        held = direct(server)
        held.ping()  # a connected client: the server stays up past the idle time
        store.close()
        pid = server.pid()
        assert pid is not None
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:  # looked at by its pid: no connection, no activity
            assert server.pid() == pid
            time.sleep(0.1)
        held.close()
        wait_until(lambda: server.pid() is None, timeout=20, what="the idle server to stop")
        # Its data was saved: a new server on the same file has the link.
        again = Store.from_url(url)
        try:
            link = again.get("default", "u1", "lobby")
            assert (link.pod, link.persistent) == (4, True)
        finally:
            again.close()
    finally:
        if server.is_running():
            server.stop()


def test_status_stop_and_where_the_data_lives(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("STROUTE_REDIS_URL", None)
    stroute = [str(Path(sys.executable).with_name("stroute"))]

    def run(*args):
        return subprocess.run(stroute + list(args), capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=60)

    data_file = tmp_path / "data" / "stroute" / "embedded.rdb"
    assert run("-o", "json", "embedded", "status").returncode == 3
    first = run("link", "set", "u1", "-s", "lobby", "--pod", "2")
    assert first.returncode == 0, first.stderr
    assert f"started it: data in {data_file}; it saves and stops after 600 s" in first.stderr
    assert len(first.stderr.strip().splitlines()) == 1
    second = run("link", "get", "u1", "-s", "lobby")
    assert second.returncode == 0 and "started it" not in second.stderr  # only the first says so
    done = run("-o", "json", "embedded", "status")
    status = json.loads(done.stdout)
    assert done.returncode == 0 and status["running"] and status["data_file"] == str(data_file)
    assert status["clients"] == 0 and status["idle_stop_s"] == 600
    done = run("-o", "json", "embedded", "stop")
    assert done.returncode == 0 and json.loads(done.stdout)["stopped"] is True
    assert not EmbeddedServer(data_file).is_running() and data_file.exists()
    assert run("embedded", "stop").returncode == 3


@pytest.mark.parametrize("query", ["idle=-1", "idle=soon", "idle=99999999999", "linger=5"])
def test_a_bad_idle_option_is_refused_before_anything_starts(tmp_path, query):
    from stroute import backends

    url = f"embedded://{tmp_path / 'x.rdb'}?{query}"
    with pytest.raises(ConfigError) as caught:
        backends.parse(url)
    assert "idle" in str(caught.value)
    assert not (tmp_path / "x.sock").exists()
