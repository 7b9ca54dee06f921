"""Bad HTTP requests get proper status codes; slow clients holding connections never stall scrapes."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from dbpulse.http import Endpoints, start_server
from dbpulse.localpg import LocalPostgres
from dbpulse.sidecar.base import Collector
from dbpulse.sidecar.collectors.activity import ActivityCollector
from dbpulse.sidecar.collectors.database import DatabaseCollector
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.poller import Poller, Schedule
from dbpulse.sidecar.snapshot import Snapshot

HANDLER_TIMEOUT = 10  # start_server(request_timeout=...)'s default


@pytest.fixture(scope="module")
def port(pg: LocalPostgres) -> Iterator[int]:
    """The sidecar's HTTP server over a snapshot filled by one real poll."""
    collectors: dict[str, Collector] = {
        "database": DatabaseCollector(),
        "activity": ActivityCollector(),
    }
    snap = Snapshot("t", dict.fromkeys(collectors, 3600.0))
    conns = ConnectionManager(pg.dsn, target="t")
    poller = Poller(
        collectors=collectors,
        schedules={n: Schedule(interval=60, timeout=5) for n in collectors},
        connections=conns,
        snapshot=snap,
    )
    assert all(poller.run_all_once().values())
    conns.close()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snap)
    endpoints = Endpoints(
        registry=registry,
        readiness=lambda: snap.readiness(3600),
        debug=snap.debug,
        debug_names=snap.collector_names,
    )
    server, _ = start_server("127.0.0.1", 0, endpoints)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def raw(port: int, data: bytes) -> tuple[int, bytes]:
    """Send raw bytes; return the status code of the answer (0: none) and its head."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                break
            head += chunk
    first = head.split(b"\r\n", 1)[0]
    if not first.startswith(b"HTTP/1."):
        return 0, head
    return int(first.split()[1]), head


def scrape(port: int) -> None:
    """A whole, good /metrics answer (how fast is benchmarks/bench_sidecar.py's business)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read()
    assert resp.status == 200
    assert b"pg_stat_database_xact_commit{" in body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /debug/nonexistent HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 405),
        (b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"GARBAGE\r\n\r\n", 400),
        (b"\x00\x16\x03\x01 binary junk\r\n\r\n", 400),
        (b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n", 505),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (
            b"GET /metrics HTTP/1.1\r\n"
            + b"".join(b"X-H%d: 1\r\n" % i for i in range(150))
            + b"\r\n",
            431,
        ),
        (b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    ],
    ids=[
        "unknown-path",
        "unknown-debug",
        "traversal",
        "post",
        "delete",
        "unknown-method",
        "garbage-line",
        "tls-to-http",
        "bad-version",
        "huge-url",
        "huge-header",
        "many-headers",
        "head",
    ],
)
def test_bad_request_gets_a_proper_status(port: int, request_bytes: bytes, status: int) -> None:
    """Each malformed or unsupported request is answered with a real HTTP status line and code."""
    got, head = raw(port, request_bytes)
    assert got == status, head[:300]
    if status == 405:
        assert b"Allow: GET, HEAD" in head
    scrape(port)  # and the server still answers


def test_twenty_slow_clients_do_not_stall_scrapes(port: int) -> None:
    """20 clients holding half-sent requests: scrapes still answer, and the server drops them after its timeout."""
    slow: list[socket.socket] = []
    for i in range(20):
        sock = socket.create_connection(("127.0.0.1", port), timeout=HANDLER_TIMEOUT + 10)
        # Half the clients stop mid-headers, half never send a byte.
        if i % 2:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(sock)
    try:
        for _ in range(30):
            scrape(port)
        # The handler timeout frees each slow client's thread: the server closes them all
        # (recv returns EOF; the socket's own timeout, HANDLER_TIMEOUT + 10, raising
        # socket.timeout here is what fails the test when they are never closed).
        for sock in slow:
            while sock.recv(65536):
                pass
    finally:
        for sock in slow:
            sock.close()
    scrape(port)


def test_request_body_is_never_parsed_as_a_request(port: int) -> None:
    """A GET or POST whose body looks like a request gets one answer; the body is not run as a request."""
    for method in (b"GET", b"POST"):
        smuggled = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        data = (
            method
            + b" /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
            + smuggled
        )
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status_lines = [line for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.")]
        assert len(status_lines) == 1, answer[:500]
        assert b" 404 " not in status_lines[0]
