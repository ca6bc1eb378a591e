"""With no Redis URL anywhere, stroute runs on the embedded server and says so."""

from __future__ import annotations

import json
import os
import subprocess

import redis

from link_place_support import stroute_bin
from stroute.embedded import EmbeddedServer


def test_link_set_then_get_in_two_processes_on_the_embedded_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STROUTE_")}
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    server = EmbeddedServer(tmp_path / "data" / "stroute" / "embedded.rdb")

    def stroute(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([stroute_bin(), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)

    try:
        first = stroute("-o", "json", "link", "set", "42", "-s", "lobby", "--pod", "0")
        assert first.returncode == 0, first.stderr
        notice = [line for line in first.stderr.splitlines() if "embedded" in line]
        assert len(notice) == 1 and "STROUTE_REDIS_URL" in notice[0]

        second = stroute("-o", "json", "link", "get", "42", "-s", "lobby")
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["links"][0]["pod"] == 0
        assert server.is_running()
    finally:
        if server.is_running():
            redis.Redis(unix_socket_path=server.socket_path).shutdown(nosave=True)
