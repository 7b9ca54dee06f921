"""The server over real sockets: connection cap, whole-request deadline, gzip, name[], caching."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from prometheus_client import CollectorRegistry, Gauge

from dbpulse.http import Endpoints, MetricsServer, start_server
from dbpulse.localpg import LocalPostgres
from dbpulse.settings import Settings
from dbpulse.sidecar.daemon import Sidecar
from tests.integration.collector_helpers import wait_for
from tests.unit.test_http_exposition import Counting, Generation

Probe = Callable[[dict[str, list[str]]], tuple[int, bytes, str]]


def _registry() -> tuple[CollectorRegistry, CollectorRegistry, Counting, Generation]:
    counting = Counting("big_gauge", 300)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(counting)
    live = CollectorRegistry(auto_describe=False)
    Gauge("live_gauge", "a live value", registry=live).set(7)
    return registry, live, counting, Generation()


@contextmanager
def _serving(
    request_timeout: float, probe: Probe | None = None
) -> Iterator[tuple[MetricsServer, Counting, Generation]]:
    """A small server (4 workers, 16 connections) over a counting registry."""
    registry, live, counting, generation = _registry()
    endpoints = Endpoints(registry=registry, live_registry=live, generation=generation, probe=probe)
    server, _ = start_server(
        "127.0.0.1", 0, endpoints, threads=4, max_connections=16, request_timeout=request_timeout
    )
    try:
        yield server, counting, generation
    finally:
        server.shutdown()


@pytest.fixture
def served() -> Iterator[tuple[MetricsServer, Counting, Generation]]:
    """The small server with a 1 s whole-request deadline."""
    with _serving(1.0) as parts:
        yield parts


def _get(
    server: MetricsServer, path: str, headers: dict[str, str] | None = None
) -> tuple[dict[str, str], bytes]:
    url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=headers or {}), timeout=10
    ) as resp:
        assert resp.status == 200
        return dict(resp.headers), resp.read()


def _closed_by_server(sock: socket.socket) -> bool:
    """True when the peer has closed (EOF or reset); False while it is still open."""
    sock.settimeout(0.05)
    try:
        return sock.recv(65536) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_gzip_body_decodes_to_the_plain_body(
    served: tuple[MetricsServer, Counting, Generation],
) -> None:
    """Accept-Encoding: gzip gets Content-Encoding: gzip whose decoded body equals the plain one."""
    server, *_ = served
    headers, plain = _get(server, "/metrics")
    assert "Content-Encoding" not in headers
    headers, packed = _get(server, "/metrics", {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed) == plain
    assert b"live_gauge 7.0" in plain
    assert b'big_gauge{i="299"}' in plain


def test_name_filter_over_http(served: tuple[MetricsServer, Counting, Generation]) -> None:
    """/metrics?name[]=live_gauge returns that family only."""
    server, *_ = served
    _, body = _get(server, "/metrics?name[]=live_gauge")
    assert b"live_gauge 7.0" in body
    assert b"big_gauge" not in body


def test_openmetrics_over_http_ends_with_one_eof(
    served: tuple[MetricsServer, Counting, Generation],
) -> None:
    """An OpenMetrics scrape (plain and gzip) has exactly one '# EOF', at the end."""
    server, *_ = served
    accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
    headers, body = _get(server, "/metrics", accept)
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.count(b"# EOF") == 1
    assert body.endswith(b"# EOF\n")
    _, packed = _get(server, "/metrics", {**accept, "Accept-Encoding": "gzip"})
    assert gzip.decompress(packed) == body


def test_cached_body_reused_until_generation_changes(
    served: tuple[MetricsServer, Counting, Generation],
) -> None:
    """Scrapes at one generation collect the registry once; a new generation collects again."""
    server, counting, generation = served
    for _ in range(5):
        _get(server, "/metrics")
        _get(server, "/metrics", {"Accept-Encoding": "gzip"})
    assert counting.collects == 1
    generation.value += 1
    _get(server, "/metrics")
    # The scrape or the background refresher (rarely both, racing) encoded the new one.
    assert counting.collects >= 2
    settled = counting.collects
    for _ in range(5):
        _get(server, "/metrics")
    assert counting.collects == settled


def test_connections_beyond_the_cap_are_refused_without_new_threads() -> None:
    """300 idle clients against a cap of 16: no thread per client, the excess closed at once."""
    # A long deadline: held connections must not expire (freeing slots) during the test.
    with _serving(60.0) as (server, *_):
        _check_cap(server)


def _check_cap(server: MetricsServer) -> None:
    _get(server, "/metrics")  # the pool is up
    threads_before = threading.active_count()
    clients = [
        socket.create_connection(("127.0.0.1", server.server_address[1])) for _ in range(300)
    ]
    try:
        wait_for(lambda: server.refused_connections >= 300 - 16)
        assert threading.active_count() <= threads_before
        assert server.open_connections <= 16
        assert sum(_closed_by_server(c) for c in clients) >= 300 - 16
    finally:
        for client in clients:
            client.close()
    # Once the held connections are gone, scrapes are served again.
    wait_for(lambda: server.open_connections == 0)
    _, body = _get(server, "/metrics")
    assert b"live_gauge" in body


def test_dribbling_client_is_cut_at_the_deadline(
    served: tuple[MetricsServer, Counting, Generation],
) -> None:
    """A client sending a header byte every 50 ms (never idle long enough for a recv timeout) is cut."""
    server, *_ = served
    client = socket.create_connection(("127.0.0.1", server.server_address[1]))
    client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    try:
        closed = False
        for _ in range(2000):  # far beyond the 1 s deadline; the test fails if never cut
            try:
                client.sendall(b"a")
            except OSError:
                closed = True
                break
            if _closed_by_server(client):
                closed = True
                break
        assert closed
        assert server.cut_connections >= 1
    finally:
        client.close()


def test_slow_app_is_not_cut_by_the_request_deadline() -> None:
    """A /probe that takes longer than the deadline still answers: only the client's own time counts."""

    def slow_probe(_query: dict[str, list[str]]) -> tuple[int, bytes, str]:
        time.sleep(2.5)  # the slow database behind /probe, 2.5x the 1 s deadline
        return 200, b"probed\n", "text/plain"

    with _serving(1.0, probe=slow_probe) as (server, *_):
        _, body = _get(server, "/probe?target=x")
        assert body == b"probed\n"
        assert server.cut_connections == 0


def test_scrape_answers_while_slow_clients_hold_connections(
    served: tuple[MetricsServer, Counting, Generation],
) -> None:
    """Idle connections beyond the worker count and half-sent requests leave a worker for a scrape."""
    server, *_ = served
    port = server.server_address[1]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]  # 2x the workers
    half = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    for sock in half:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    try:
        wait_for(lambda: server.open_connections >= 10)
        _, body = _get(server, "/metrics")
        assert b'big_gauge{i="0"}' in body
        assert not any(_closed_by_server(s) for s in idle)  # still held while the scrape ran
    finally:
        for sock in idle + half:
            sock.close()


def test_sidecar_endpoints_refresh_after_a_poll(pg: LocalPostgres) -> None:
    """Through Sidecar.endpoints() the cached body changes when a poll lands; snapshot age is served once."""
    settings = Settings.model_validate(
        {"dsn": pg.dsn, "collectors": {"statements": {"enabled": False}}}
    )
    sidecar = Sidecar.build(settings)
    server, _ = start_server("127.0.0.1", 0, sidecar.endpoints())
    try:
        _, before = _get(server, "/metrics")
        assert b"\npg_up 0.0\n" in before
        assert sidecar.poller.run_once("database")
        _, after = _get(server, "/metrics")
        assert b"\npg_up 1.0\n" in after
        assert b"pg_stat_database_xact_commit{" in after
        assert after.count(b"# TYPE dbpulse_snapshot_age_seconds gauge") == 1
        _, packed = _get(server, "/metrics", {"Accept-Encoding": "gzip"})
        assert b"pg_stat_database_xact_commit{" in gzip.decompress(packed)
    finally:
        server.shutdown()
        sidecar.close()


def test_serve_metrics_serves_an_application_registry() -> None:
    """dbpulse.serve_metrics (for apps without an HTTP endpoint) serves the given registry."""
    import dbpulse

    registry = CollectorRegistry(auto_describe=False)
    Gauge("app_gauge", "an application value", registry=registry).set(3)
    server = dbpulse.serve_metrics(0, registry=registry)
    try:
        _, body = _get(server, "/metrics")
        assert b"app_gauge 3.0" in body
        headers, packed = _get(server, "/metrics", {"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(packed) == body
    finally:
        server.shutdown()
