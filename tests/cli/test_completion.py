"""Shell completion through the installed `stroute`, as bash asks for it.

The completion script bash sources (`stroute --show-completion bash`) runs
`stroute` with _STROUTE_COMPLETE=complete_bash and the words typed so far in
COMP_WORDS / COMP_CWORD; stroute prints one candidate per line.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from link_place_support import bin_env, publish, run_bin, stroute_bin
from stroute.config import Config
from stroute.embedded import EmbeddedServer
from stroute.testing import RedisServer


def complete(tmp_path, *words: str, env: dict[str, str] | None = None, timeout: float = 30):
    """(exit code, candidates, stderr, seconds) of completing the last word of `stroute WORDS`."""
    typed = ["stroute", *words]
    environ = bin_env(tmp_path, XDG_DATA_HOME=str(tmp_path / "xdg-data"), _STROUTE_COMPLETE="complete_bash",
                      COMP_WORDS=" ".join(typed), COMP_CWORD=str(len(typed) - 1), **(env or {}))
    started = time.monotonic()
    proc = subprocess.run([stroute_bin()], capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
                          env=environ)
    return proc.returncode, proc.stdout.split(), proc.stderr, time.monotonic() - started


@pytest.fixture
def fleet(real_url):
    """Two services with pods, and two tags, on the session's real server."""
    config = Config().with_overrides(**{"redis.url": real_url})
    store = config.open_store()
    publish(config, store, "lobby", {0: 10, 1: 20, 2: 30})
    publish(config, store, "game", {4: 5})
    store.set_tag(config.namespace, "front", "lobby")
    store.set_tag(config.namespace, "fallback", "game")
    store.close()
    return real_url


def test_output_formats_complete_before_and_after_the_command(tmp_path):
    for words in (["-o", ""], ["top", "-o", ""], ["link", "get", "42", "--output", ""]):
        code, found, stderr, _ = complete(tmp_path, *words)
        assert (code, found, stderr) == (0, ["table", "wide", "name", "json", "yaml"], ""), words
    assert complete(tmp_path, "pods", "-o", "y")[1] == ["yaml"]


def test_services_complete_from_the_registry(tmp_path, fleet):
    for words in (["pods", "-s", ""], ["link", "set", "42", "--service", ""], ["pod", "drain", "-s", ""],
                  ["place", "-s", ""], ["tag", "set", "front", ""]):
        code, found, stderr, _ = complete(tmp_path, "--redis-url", fleet, *words)
        assert (code, sorted(found), stderr) == (0, ["game", "lobby"], ""), words
    assert complete(tmp_path, "--redis-url", fleet, "pods", "-s", "lo")[1] == ["lobby"]


def test_the_url_may_come_from_the_environment_and_the_namespace_from_the_flag(tmp_path, fleet):
    env = {"STROUTE_REDIS_URL": fleet}
    assert sorted(complete(tmp_path, "pods", "-s", "", env=env)[1]) == ["game", "lobby"]
    assert complete(tmp_path, "-n", "other", "pods", "-s", "", env=env)[1] == []


def test_pods_complete_for_the_service_already_typed(tmp_path, fleet):
    for words in (["pod", "drain", "-s", "lobby", "--pod", ""], ["pod", "cordon", "--service", "lobby", "--pod", ""],
                  ["link", "set", "42", "-s", "lobby", "--pod", ""], ["link", "list", "-s", "lobby", "--pod", ""]):
        code, found, stderr, _ = complete(tmp_path, "--redis-url", fleet, *words)
        assert (code, found, stderr) == (0, ["0", "1", "2"], ""), words
    assert complete(tmp_path, "--redis-url", fleet, "pod", "drain", "-s", "game", "--pod", "")[1] == ["4"]
    # No service typed yet: nothing to say which pods.
    assert complete(tmp_path, "--redis-url", fleet, "pod", "drain", "--pod", "")[1] == []


def test_tags_complete(tmp_path, fleet):
    code, found, stderr, _ = complete(tmp_path, "--redis-url", fleet, "tag", "get", "")
    assert (code, sorted(found), stderr) == (0, ["fallback", "front"], "")
    assert complete(tmp_path, "--redis-url", fleet, "tag", "set", "fr")[1] == ["front"]


def test_completion_writes_nothing(tmp_path, fleet, redis_server):
    client = redis_server.client()
    before = sorted(client.keys("*"))
    complete(tmp_path, "--redis-url", fleet, "pod", "drain", "-s", "lobby", "--pod", "")
    complete(tmp_path, "--redis-url", fleet, "tag", "get", "")
    assert sorted(client.keys("*")) == before
    client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_or_silent_server_completes_nothing_quickly(tmp_path):
    refused_url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens: refused at once
    code, found, stderr, refused = complete(tmp_path, "--redis-url", refused_url, "pod", "drain", "-s", "")
    assert (code, found, stderr) == (0, [], "")
    silent = socket.socket()  # accepts connections (the backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        code, found, stderr, seconds = complete(tmp_path, "--redis-url", url, "pod", "drain", "-s", "")
    finally:
        silent.close()
    assert (code, found, stderr) == (0, [], "")
    # One 0.5 s read timeout more than a refused connection, not the 5 s of redis.socket_timeout.
    assert seconds - refused < 2.0, (seconds, refused)


def test_refused_credentials_complete_nothing_and_show_no_secret(tmp_path):
    server = RedisServer("--requirepass", "right-secret").start()
    try:
        url = f"redis://default:wrong-secret@127.0.0.1:{server.port}/0"
        code, found, stderr, _ = complete(tmp_path, "--redis-url", url, "tag", "get", "")
        assert (code, found, stderr) == (0, [], "")
    finally:
        server.close()


def test_with_no_url_and_no_embedded_server_nothing_completes_and_nothing_starts(tmp_path):
    code, found, stderr, _ = complete(tmp_path, "pods", "-s", "")
    assert (code, found, stderr) == (0, [], "")
    data_file = tmp_path / "xdg-data" / "stroute" / "embedded.rdb"
    assert not data_file.parent.exists()  # not even its directory was made
    assert not EmbeddedServer(data_file).is_running()


def test_a_bad_config_completes_nothing(tmp_path):
    (tmp_path / "stroute.yaml").write_text("redis: [not, a, mapping\n")
    code, found, stderr, _ = complete(tmp_path, "pods", "-s", "")
    assert (code, found, stderr) == (0, [], "")


def test_with_no_url_the_running_embedded_server_completes(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg-data")}
    started = run_bin(tmp_path, "tag", "set", "front", "lobby", **env)  # no URL: starts the embedded server
    assert started.returncode == 0, started.stderr
    try:
        code, found, stderr, _ = complete(tmp_path, "tag", "get", "")
        assert (code, found, stderr) == (0, ["front"], "")
    finally:
        stopped = run_bin(tmp_path, "embedded", "stop", **env)
        assert stopped.returncode == 0, stopped.stderr
    assert complete(tmp_path, "tag", "get", "")[1] == []  # stopped: and a Tab does not start it again
    assert not EmbeddedServer(tmp_path / "xdg-data" / "stroute" / "embedded.rdb").is_running()
