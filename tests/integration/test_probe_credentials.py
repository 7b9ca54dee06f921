"""/probe?target=<DSN> cannot borrow the process's credentials, sockets or connection budget."""

from __future__ import annotations

import socket
import struct
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbpulse.localpg import LocalPostgres
from dbpulse.settings import load_settings
from dbpulse.sidecar.multitarget import MultiTarget
from tests.integration.collector_helpers import wait_for
from tests.integration.probe_helpers import get, serve_multi

FAKE_HOST = "127.0.0.2"
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
AUTH_CLEARTEXT = struct.pack("!cii", b"R", 8, 3)


class FakePostgres:
    """Speaks just enough of the startup protocol to ask every client for a cleartext
    password, and records what each client sends back."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((FAKE_HOST, 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.passwords: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client went away")
            data += chunk
        return data

    def _client(self, conn: socket.socket) -> None:
        with conn:
            try:
                while True:  # SSL/GSS requests are declined until the startup packet
                    (length,) = struct.unpack("!i", self._read(conn, 4))
                    body = self._read(conn, length - 4)
                    (code,) = struct.unpack("!i", body[:4])
                    if code in (SSL_REQUEST, GSSENC_REQUEST):
                        conn.sendall(b"N")
                        continue
                    break
                conn.sendall(AUTH_CLEARTEXT)
                kind = self._read(conn, 1)
                (length,) = struct.unpack("!i", self._read(conn, 4))
                payload = self._read(conn, length - 4)
                if kind == b"p":
                    self.passwords.append(payload.rstrip(b"\x00"))
            except (ConnectionError, OSError, struct.error):
                return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake_pg() -> Iterator[FakePostgres]:
    try:
        fake = FakePostgres()
    except OSError as exc:  # pragma: no cover - loopback other than 127.0.0.1 missing
        pytest.skip(f"cannot listen on {FAKE_HOST}: {exc}")
    yield fake
    fake.close()


def _probe(url: str, target: str) -> tuple[int, str]:
    return get(f"{url}/probe?target={urllib.parse.quote(target, safe='')}")


@pytest.fixture
def served(pg: LocalPostgres, request: pytest.FixtureRequest) -> Iterator[str]:
    extra: dict[str, Any] = getattr(request, "param", {})
    settings = load_settings(
        interval=1,
        targets=[{"name": "main", "dsn": pg.dsn}],
        allow_dsn_in_url=True,
        first_probe_wait=0.5,
        **extra,
    )
    url, stop = serve_multi(MultiTarget(settings))
    yield url
    stop()


@pytest.mark.parametrize("served", [{"dsn_in_url_hosts": [FAKE_HOST]}], indirect=True)
def test_ambient_pgpassword_never_reaches_a_host_named_in_the_url(
    served: str, fake_pg: FakePostgres, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A server named in /probe's URL asks for a password and never gets PGPASSWORD,
    a PGPASSFILE entry matching it, or any other."""
    monkeypatch.setenv("PGPASSWORD", "ambient-secret-pw")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text("*:*:*:*:pgpass-secret-pw\n", encoding="utf-8")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    target = f"postgresql://dbpulse@{FAKE_HOST}:{fake_pg.port}/postgres"
    status, _ = _probe(served, target)
    assert status == 200
    wait_for(lambda: fake_pg.connections >= 1 or None, timeout=20, interval=0.1)
    status, text = _probe(served, target)
    assert "pg_up 0.0" in text
    assert fake_pg.passwords == []


def test_a_host_outside_the_allowlist_is_never_contacted(
    served: str, fake_pg: FakePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no dsn_in_url_hosts every URL DSN is refused with 404 before any connect."""
    monkeypatch.setenv("PGPASSWORD", "ambient-secret-pw")
    status, body = _probe(served, f"postgresql://dbpulse@{FAKE_HOST}:{fake_pg.port}/postgres")
    assert status == 404
    assert "dsn_in_url_hosts" in body
    _, metrics = get(f"{served}/metrics")
    assert "dbpulse_targets_active 0.0" in metrics
    assert fake_pg.connections == 0


@pytest.mark.parametrize("served", [{"dsn_in_url_hosts": ["*"]}], indirect=True)
def test_a_unix_socket_target_is_refused_even_when_every_host_is_allowed(
    served: str, pg: LocalPostgres
) -> None:
    """host=/socket/dir (trusted local socket, superuser) is 404 and never connects."""
    target = f"host={pg.base} port={pg.port} user=postgres dbname=postgres"
    status, body = _probe(served, target)
    assert status == 404
    assert "socket" in body
    _, metrics = get(f"{served}/metrics")
    assert "dbpulse_targets_active 0.0" in metrics


@pytest.mark.parametrize(
    "served",
    [{"dsn_in_url_hosts": [FAKE_HOST], "max_connections_total": 3}],
    indirect=True,
)
def test_junk_url_dsns_cannot_starve_a_configured_target(served: str) -> None:
    """100 DSNs off the allowlist cost nothing (404); ten allowed ones fill only their own
    budget (then 503); the configured target still gets 200."""
    refused = {_probe(served, f"postgresql://u@10.255.0.{i}/x")[0] for i in range(100)}
    assert refused == {404}
    answers = [_probe(served, f"postgresql://u@{FAKE_HOST}:{port}/x")[0] for port in range(1, 11)]
    assert answers[:4] == [200] * 4
    assert set(answers[4:]) == {503}
    status, text = _probe(served, "main")
    assert status == 200
    assert "pg_up" in text
    _, metrics = get(f"{served}/metrics")
    assert 'dbpulse_targets_connections{state="url_reserved"} 4.0' in metrics
    assert 'dbpulse_targets_connections{state="reserved"} 1.0' in metrics
