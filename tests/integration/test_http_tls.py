"""--web.config.file: TLS, client certificates, basic auth and rotation, seen by real TLS clients."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge

from dbpulse.http import Endpoints, MetricsServer, start_server
from tests.integration.collector_helpers import wait_for
from tests.tlscerts import TLS_ONLY, Pki, bcrypt_hash, https_get, issue, make_ca, write_pki

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl not installed (apt-get install curl)")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A CA, a server cert for 127.0.0.1 and a client cert, written as PEM files."""
    return write_pki(tmp_path)


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
    return https_get(server.server_address[1], pki.ca_file, path)


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


def test_debug_json_served_over_tls(pki: Pki, serve: object) -> None:
    """/debug/<view> answers over TLS when no users are configured (TLS alone, no auth)."""
    server = serve(TLS_ONLY)  # type: ignore[operator]
    _, response = _python_get(server, pki, "/debug/locks")
    assert json.loads(response.split(b"\r\n\r\n", 1)[1]) == {"view": "locks"}


def test_dribbled_handshake_is_cut_by_the_deadline(pki: Pki) -> None:
    """A ClientHello dribbled a byte at a time is cut (Python's ssl bounds the whole handshake
    by the socket timeout, the deadline bounds the rest) and others are still served."""
    config = pki.dir / "web.yml"
    config.write_text(TLS_ONLY)
    server, _ = start_server(
        "127.0.0.1", 0, _endpoints(), threads=2, request_timeout=1.0, web_config_file=config
    )
    stop = threading.Event()
    cut: list[int] = []

    def dribble() -> None:
        with socket.create_connection(("127.0.0.1", server.server_address[1])) as sock:
            record = b"\x16\x03\x01\x02\x00" + bytes(512)  # a ClientHello's size, no content
            for byte in record:  # each byte comes well within the per-recv timeout
                if stop.wait(0.2):
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    cut.append(byte)
                    return

    threads = [threading.Thread(target=dribble, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        _, response = _python_get(server, pki, "/healthz")  # served despite them
        assert response.startswith(b"HTTP/1.1 200")
        assert wait_for(lambda: len(cut) == 2, timeout=60)
        _, response = _python_get(server, pki, "/healthz")
        assert response.startswith(b"HTTP/1.1 200")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        server.shutdown()
