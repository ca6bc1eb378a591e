"""`stroute --version` and `stroute version`: what is installed, and the server's version."""

from __future__ import annotations

from importlib import metadata

import pytest

import stroute
from link_place_support import isolated, run, run_json as cli_json  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated")


def test_the_version_flag_prints_one_line():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == (f"stroute {stroute.__version__} (redis-py {metadata.version('redis')}, "
                             f"hiredis {metadata.version('hiredis')})\n")


def test_version_names_the_libraries_and_starts_no_server_when_none_is_configured(tmp_path):
    code, data, stderr = cli_json("version")
    assert code == 0, stderr
    assert data == {"schema": "stroute/version/v1", "stroute": stroute.__version__, "redis_py": metadata.version("redis"),
                    "hiredis": metadata.version("hiredis"), "server": None}
    assert "embedded" not in stderr  # nothing was started to answer


@pytest.mark.realserver
def test_version_asks_the_configured_server(real_url, redis_server):
    code, data, stderr = cli_json("--redis-url", real_url, "version")
    assert code == 0, stderr
    assert data["server"] in (f"redis {redis_server.version()}", f"valkey {redis_server.version()}")


def test_an_unreachable_server_is_a_note_not_a_failure():
    code, data, stderr = cli_json("--redis-url", "redis://127.0.0.1:1/0", "version")
    assert code == 0 and data["server"] is None
    assert "server version unknown" in stderr and "unreachable" in stderr
