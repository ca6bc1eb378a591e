"""Helpers for the pods / top / pod / serve / doctor command tests.

`cli` drives the Typer app in-process (CliRunner, stdout and stderr apart);
`Proc` runs the installed `stroute` entry point as a real child process and
collects its output as it comes. Both run with no STROUTE_* variable and no
config file from the machine. Waiting is polling with a deadline, never a
blind sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stroute.cli.app import app
from stroute.podstate import PodState, RoutingState

from support import stroute_bin, wait_until  # noqa: F401  (re-exported for the ops tests)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No stroute.yaml or user config dir, no STROUTE_* or pod name from the machine."""
    for key in list(os.environ):
        if key.startswith("STROUTE_") or key in ("POD_NAME", "HOSTNAME"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args: str, env: dict[str, str] | None = None):
    """Run `stroute ARGS` in-process; an unexpected exception fails the test."""
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"stroute {' '.join(args)} raised {result.exception!r}\n{result.stderr}")
    return result


def cli_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    """Run with -o json: (exit code, parsed stdout or None, stderr)."""
    result = cli("-o", "json", *args, env=env)
    data = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, data, result.stderr


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("stroute: error:")]


# --- raw Redis state ---------------------------------------------------------------


def redis_millis(client: Any) -> int:
    secs, micros = client.time()
    return int(secs) * 1000 + int(micros) // 1000


def put_state(client: Any, service: str, pod: int, *, load: int = 0, state: RoutingState = RoutingState.READY,
              age_ms: int = 0, epoch: int | None = None, namespace: str = "default", register: bool = True) -> None:
    """One pod's state field by raw HSET, its heartbeat `age_ms` before Redis's now."""
    value = PodState(load, redis_millis(client) - age_ms, state, epoch).encode()
    client.hset(f"sf:{{{namespace}:state:{service}}}", str(pod), value)
    if register:
        client.sadd(f"sf:{{{namespace}}}:services", service)


def read_state(client: Any, service: str, pod: int, namespace: str = "default") -> PodState | None:
    raw = client.hget(f"sf:{{{namespace}:state:{service}}}", str(pod))
    return None if raw is None else PodState.decode(raw)


# --- the installed entry point -----------------------------------------------------


def bin_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STROUTE_") and k not in ("POD_NAME", "HOSTNAME")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_bin(tmp_path: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([stroute_bin(), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=tmp_path, env=bin_env(tmp_path, **env))


class Proc:
    """A `stroute` child process whose stdout and stderr are read as they come."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.args = args
        self.process = subprocess.Popen(
            [stroute_bin(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=tmp_path, env=bin_env(tmp_path, **env),
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self._out), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"stroute {' '.join(self.args)} still running after {timeout} s\n{self.stderr}")
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def wait_for_stderr(self, text: str, timeout: float = 15) -> None:
        wait_until(lambda: text in self.stderr or self.process.poll() is not None, timeout=timeout,
                   what=f"{text!r} on stderr")
        assert text in self.stderr, f"exited with {self.process.returncode} before {text!r}:\n{self.stderr}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "Proc":
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
