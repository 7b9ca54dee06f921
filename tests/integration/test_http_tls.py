"""--web.config.file: TLS, client certificates, basic auth and rotation, seen by real TLS clients."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dbpulse.http import Endpoints, MetricsServer, start_server
from prometheus_client import CollectorRegistry, Gauge

from tests.integration.collector_helpers import wait_for
from tests.tlscerts import Issued, bcrypt_hash, issue, make_ca

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl not installed (apt-get install curl)")


@dataclass
class Pki:
    dir: Path
    ca: Issued
    server: Issued
    client: Issued

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.crt"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A CA, a server cert for 127.0.0.1 and a client cert, written as PEM files."""
    ca = make_ca()
    server, client = issue(ca, "dbpulse", server=True), issue(ca, "prometheus", server=False)
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem())
    server.write(tmp_path, "server")
    client.write(tmp_path, "client")
    return Pki(tmp_path, ca, server, client)


def _endpoints() -> Endpoints:
    registry = CollectorRegistry(auto_describe=False)
    Gauge("tls_test_gauge", "a value", registry=registry).set(3)
    return Endpoints(
        registry=registry,
        readiness=lambda: (True, "ok"),
        debug=lambda name: {"view": name},
        debug_names=lambda: ["locks"],
        probe=lambda query: (200, b"probed 1\n", "text/plain"),
    )


@pytest.fixture
def serve(pki: Pki) -> Iterator[object]:
    """Starts a server on a web config written from YAML text; stops them all after."""
    servers: list[MetricsServer] = []

    def start(yaml_text: str) -> MetricsServer:
        config = pki.dir / "web.yml"
        config.write_text(yaml_text)
        server, _ = start_server("127.0.0.1", 0, _endpoints(), web_config_file=config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


def curl(url: str, *args: str) -> tuple[int, str]:
    """(HTTP status, body) from the curl CLI; status 0 when the TLS connection failed."""
    assert CURL is not None
    proc = subprocess.run(
        [CURL, "-sS", "--max-time", "10", "-w", "\n%{http_code}", *args, url],
        capture_output=True,
        text=True,
        check=False,
    )
    body, _, code = proc.stdout.rpartition("\n")
    return int(code or 0), body


def _url(server: MetricsServer, path: str) -> str:
    return f"https://127.0.0.1:{server.server_address[1]}{path}"


TLS_ONLY = """
tls_server_config:
  cert_file: server.crt
  key_file: server.key
"""
HTTP_HEADERS = """
http_server_config:
  http2: true
  headers:
    X-Content-Type-Options: nosniff
    X-Frame-Options: deny
"""


@needs_curl
def test_curl_scrapes_over_tls_with_basic_auth(pki: Pki, serve: object) -> None:
    """curl --cacert -u: /metrics needs the password; /healthz and /readyz stay open."""
    users = f"basic_auth_users:\n  prometheus: '{bcrypt_hash('s3cret-pass')}'\n"
    server = serve(TLS_ONLY + HTTP_HEADERS + users)  # type: ignore[operator]
    ca = ["--cacert", str(pki.ca_file)]
    status, body = curl(_url(server, "/metrics"), *ca, "-u", "prometheus:s3cret-pass")
    assert (status, "tls_test_gauge 3.0" in body) == (200, True)
    assert curl(_url(server, "/metrics"), *ca)[0] == 401
    assert curl(_url(server, "/metrics"), *ca, "-u", "prometheus:wrong")[0] == 401
    assert curl(_url(server, "/metrics"), *ca, "-u", "nobody:s3cret-pass")[0] == 401
    for path in ("/debug/locks", "/probe?target=x", "/"):
        assert curl(_url(server, path), *ca)[0] == 401, path
    assert curl(_url(server, "/debug/locks"), *ca, "-u", "prometheus:s3cret-pass")[0] == 200
    assert curl(_url(server, "/probe?target=x"), *ca, "-u", "prometheus:s3cret-pass")[0] == 200
    assert curl(_url(server, "/healthz"), *ca) == (200, "ok\n")
    assert curl(_url(server, "/readyz"), *ca) == (200, "ok\n")
    headers = subprocess.run(
        [str(CURL), "-sS", "-D", "-", "-o", "/dev/null", *ca, _url(server, "/healthz")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    assert "x-content-type-options: nosniff" in headers
    assert "x-frame-options: deny" in headers
    # An untrusted server certificate is refused by curl (no -k): TLS is really on.
    assert curl(_url(server, "/healthz"))[0] == 0


@needs_curl
def test_client_certificate_required_and_verified(pki: Pki, serve: object) -> None:
    """RequireAndVerifyClientCert: curl without --cert fails the handshake, with it gets 200."""
    server = serve(  # type: ignore[operator]
        TLS_ONLY + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
    )
    ca = ["--cacert", str(pki.ca_file)]
    assert curl(_url(server, "/metrics"), *ca)[0] == 0
    client = ["--cert", str(pki.dir / "client.crt"), "--key", str(pki.dir / "client.key")]
    assert curl(_url(server, "/metrics"), *ca, *client)[0] == 200
    # A certificate from another CA is refused as well.
    other = issue(make_ca("another CA"), "intruder", server=False)
    cert, key = other.write(pki.dir, "intruder")
    assert curl(_url(server, "/metrics"), *ca, "--cert", str(cert), "--key", str(key))[0] == 0


def _python_get(server: MetricsServer, pki: Pki, path: str) -> tuple[bytes, bytes]:
    """(peer certificate DER, raw response) over Python's ssl client."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    with (
        socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    assert der is not None
    return der, b"".join(chunks)


def test_python_ssl_client_and_rotation(pki: Pki, serve: object) -> None:
    """Python's ssl client verifies the cert; replacing the files serves the new cert to new connections."""
    server = serve(TLS_ONLY + "  min_version: TLS12\n  max_version: TLS13\n")  # type: ignore[operator]
    der, response = _python_get(server, pki, "/metrics")
    assert der == pki.server.der()
    assert response.startswith(b"HTTP/1.1 200")
    assert b"tls_test_gauge 3.0" in response
    rotated = issue(pki.ca, "dbpulse rotated", server=True)
    # As cert-manager does it: new files land, the server is not restarted.
    tmp_cert, tmp_key = rotated.write(pki.dir, "incoming")
    tmp_key.replace(pki.dir / "server.key")
    tmp_cert.replace(pki.dir / "server.crt")
    assert wait_for(lambda: _python_get(server, pki, "/healthz")[0] == rotated.der(), timeout=20)


def test_silent_tls_client_does_not_block_others(pki: Pki, serve: object) -> None:
    """A client that connects and never sends a ClientHello does not stop others' handshakes."""
    server = serve(TLS_ONLY)  # type: ignore[operator]
    silent = [socket.create_connection(("127.0.0.1", server.server_address[1])) for _ in range(3)]
    try:
        der, response = _python_get(server, pki, "/healthz")
        assert der == pki.server.der()
        assert response.startswith(b"HTTP/1.1 200")
    finally:
        for sock in silent:
            sock.close()


def test_basic_auth_users_reloaded_without_tls(pki: Pki, serve: object) -> None:
    """Plain HTTP with basic auth; a new hash in the file replaces the old password."""
    config = f"basic_auth_users:\n  scraper: {bcrypt_hash('first')}\n"
    server = serve(config)  # type: ignore[operator]
    assert server.scheme == "http"
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"

    def status(password: str) -> int:
        import urllib.error
        import urllib.request

        token = base64.b64encode(f"scraper:{password}".encode()).decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return err.code

    assert (status("first"), status("second")) == (200, 401)
    (pki.dir / "web.yml").write_text(f"basic_auth_users:\n  scraper: {bcrypt_hash('second')}\n")
    assert wait_for(lambda: status("second") == 200 and status("first") == 401, timeout=20)


BAD_CONFIGS = {
    "unknown key": (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  colour: red\n",
        "unknown setting",
    ),
    "bad client auth": (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n",
        "client_auth_type",
    ),
    "not bcrypt": ("basic_auth_users:\n  alice: plaintext-password\n", "not a bcrypt hash"),
    "missing key": (
        "tls_server_config:\n  cert_file: server.crt\n",
        "missing one of key or key_file",
    ),
    "missing file": (
        "tls_server_config:\n  cert_file: nowhere.crt\n  key_file: server.key\n",
        "cannot read TLS file",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_web_config_is_one_line_and_exit_2(pki: Pki, case: str) -> None:
    """`dbpulse sidecar --web.config.file BAD`: exit 2, one line naming the problem, no traceback."""
    text, expected = BAD_CONFIGS[case]
    config = pki.dir / "web.yml"
    config.write_text(text)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dbpulse",
            "sidecar",
            "--dsn",
            "postgresql://dbpulse@127.0.0.1:1/postgres",
            "--listen",
            "127.0.0.1:0",
            "--web.config.file",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert str(config) in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "plaintext-password" not in proc.stderr + proc.stdout


def test_debug_json_served_over_tls(pki: Pki, serve: object) -> None:
    """/debug/<view> answers over TLS when no users are configured (TLS alone, no auth)."""
    server = serve(TLS_ONLY)  # type: ignore[operator]
    _, response = _python_get(server, pki, "/debug/locks")
    assert json.loads(response.split(b"\r\n\r\n", 1)[1]) == {"view": "locks"}


@pytest.mark.parametrize("enabled", [True, False])
def test_sidecar_debug_pages_only_when_enabled_and_behind_auth(pki: Pki, enabled: bool) -> None:
    """debug_endpoints: false answers 404 on /debug/*; true serves them behind basic auth."""
    from dbpulse.settings import Settings
    from dbpulse.sidecar.daemon import Sidecar

    config = pki.dir / "web.yml"
    config.write_text(TLS_ONLY + f"basic_auth_users:\n  ops: {bcrypt_hash('pw')}\n")
    settings = Settings.model_validate(
        {"dsn": "postgresql://u@127.0.0.1:1/x", "debug_endpoints": enabled}
    )
    sidecar = Sidecar.build(settings)
    server, _ = start_server("127.0.0.1", 0, sidecar.endpoints(), web_config_file=config)
    try:
        _, anonymous = _python_get(server, pki, "/debug/locks")
        assert anonymous.startswith(b"HTTP/1.1 401")
        token = base64.b64encode(b"ops:pw").decode()
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        with (
            socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(
                b"GET /debug/locks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + f"Authorization: Basic {token}\r\n\r\n".encode()
            )
            reply = b"".join(iter(lambda: tls.recv(65536), b""))
        assert reply.startswith(b"HTTP/1.1 200" if enabled else b"HTTP/1.1 404"), reply[:200]
    finally:
        server.shutdown()
        sidecar.close()
