"""Helpers for the link / place / tag / config command tests.

`run` drives the Typer app in-process (CliRunner, stdout and stderr apart);
`run_bin` runs the installed `stroute` entry point as a real process.
Both run with no STROUTE_* variable and no config file from the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stroute.cli.app import app

from support import stroute_bin  # noqa: F401  (re-exported for the CLI tests)
from stroute.server import ServerDriver


def _clean_env() -> dict[str, str | None]:
    return {key: None for key in os.environ if key.startswith("STROUTE_")}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No stroute.yaml or user config dir, no STROUTE_* from the machine."""
    for key in list(os.environ):
        if key.startswith("STROUTE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))  # never the user's embedded server
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    result = CliRunner().invoke(app, list(args), input=input, env={**_clean_env(), **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"stroute {' '.join(args)} raised {result.exception!r}\n{result.stderr}")
    return result


def run_json(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    """Run with -o json: (exit code, parsed stdout, stderr)."""
    result = run("-o", "json", *args, input=input, env=env)
    data = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, data, result.stderr


def bin_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STROUTE_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def run_bin(tmp_path: Path, *args: str, input: str | None = None, timeout: float = 60, **env: str):
    return subprocess.run(
        [stroute_bin(), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env=bin_env(tmp_path, **env),
    )


def publish(config, store, service: str, pods: dict[int, int], state: str = "READY") -> None:
    """Publish one heartbeat for each pod: {pod: load}."""
    for pod, load in pods.items():
        server = ServerDriver(service, pod, config, store=store)
        server.set_load_state(load)
        server.set_routing_state(state)
        server.publish()


def all_keys(client) -> dict[str, object]:
    """Every key and its value (strings, hashes, sets), to compare before/after."""
    out: dict[str, object] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "string":
            out[key] = client.get(key)
        elif kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "set":
            out[key] = sorted(client.smembers(key))
        else:
            out[key] = kind
    return out


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("stroute: error:")]
