"""tls_server_config options reach the handshake: versions, cipher suites, client SANs."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from dbpulse.http import Endpoints, MetricsServer, start_server
from tests.tlscerts import TLS_ONLY, Pki, issue, write_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A CA, a server cert for 127.0.0.1 and a client cert, written as PEM files."""
    return write_pki(tmp_path)


@pytest.fixture
def serve(pki: Pki) -> Iterator[object]:
    """Starts a server on a web config written from YAML text; stops them all after."""
    servers: list[MetricsServer] = []

    def start(yaml_text: str) -> MetricsServer:
        config = pki.dir / "web.yml"
        config.write_text(yaml_text)
        endpoints = Endpoints(registry=CollectorRegistry(auto_describe=False))
        server, _ = start_server("127.0.0.1", 0, endpoints, web_config_file=config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


def _handshake(
    server: MetricsServer,
    pki: Pki,
    *,
    max_version: ssl.TLSVersion | None = None,
    client: tuple[Path, Path] | None = None,
) -> tuple[str, str] | None:
    """(protocol, cipher) of a completed GET /healthz; None when the server refused it."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if max_version is not None:
        context.maximum_version = max_version
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    try:
        with (
            socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            response = b"".join(iter(lambda: tls.recv(65536), b""))
            cipher = tls.cipher()
    except (ssl.SSLError, ConnectionError):
        return None
    if not response.startswith(b"HTTP/1.1 200") or cipher is None:
        return None
    return cipher[1], cipher[0]


def test_min_version_refuses_older_clients(pki: Pki, serve: object) -> None:
    """min_version: TLS13 refuses a client capped at TLS 1.2 and serves a TLS 1.3 one."""
    server = serve(TLS_ONLY + "  min_version: TLS13\n")  # type: ignore[operator]
    assert _handshake(server, pki, max_version=ssl.TLSVersion.TLSv1_2) is None
    got = _handshake(server, pki)
    assert got is not None
    assert got[0] == "TLSv1.3"


def test_cipher_suites_by_go_names_apply_to_tls12(pki: Pki, serve: object) -> None:
    """cipher_suites in Go's names pick the TLS 1.2 suite OpenSSL negotiates."""
    server = serve(  # type: ignore[operator]
        TLS_ONLY
        + "  max_version: TLS12\n"
        + "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]\n"
    )
    assert _handshake(server, pki) == ("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305")


def test_client_allowed_sans(pki: Pki, serve: object) -> None:
    """client_allowed_sans: a verified client cert without a listed SAN is refused."""
    server = serve(  # type: ignore[operator]
        TLS_ONLY
        + "  client_auth_type: RequireAndVerifyClientCert\n"
        + "  client_ca_file: ca.crt\n"
        + "  client_allowed_sans: [prometheus.monitoring.svc]\n"
    )
    listed = issue(pki.ca, "prometheus", server=False, sans=["prometheus.monitoring.svc"])
    unlisted = issue(pki.ca, "other", server=False, sans=["grafana.monitoring.svc"])
    assert _handshake(server, pki, client=listed.write(pki.dir, "listed")) is not None
    assert _handshake(server, pki, client=unlisted.write(pki.dir, "unlisted")) is None
