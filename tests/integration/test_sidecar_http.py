"""The sidecar's HTTP server over a poller's snapshot: endpoints, formats, no database I/O."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from dbpulse.http import Endpoints, start_server
from dbpulse.localpg import LocalPostgres
from dbpulse.sidecar.collectors.database import DatabaseCollector
from tests.integration.collector_helpers import one_target_poller


def _get(url: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_http_endpoints_serve_snapshot(pg: LocalPostgres) -> None:
    """/metrics (text and OpenMetrics), /healthz, /readyz and /debug behave as documented."""
    poller, snap, conns = one_target_poller(pg.dsn, {"database": DatabaseCollector()})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snap)
    endpoints = Endpoints(
        registry=registry,
        readiness=lambda: snap.readiness(60),
        debug=snap.debug,
        debug_names=snap.collector_names,
    )
    server, _ = start_server("127.0.0.1", 0, endpoints)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert _get(base + "/healthz")[0] == 200
        status, _, body = _get(base + "/readyz")
        assert status == 503
        assert "not reachable" in body
        assert poller.run_once("database")
        assert _get(base + "/readyz")[0] == 200
        status, ctype, body = _get(base + "/metrics")
        assert status == 200
        assert ctype.startswith("text/plain")
        assert "pg_stat_database_xact_commit{" in body
        status, ctype, body = _get(base + "/metrics", "application/openmetrics-text; version=1.0.0")
        assert ctype.startswith("application/openmetrics-text")
        assert body.rstrip().endswith("# EOF")
        assert _get(base + "/debug/database")[0] == 200
        assert _get(base + "/debug/nope")[0] == 404
        assert _get(base + "/nope")[0] == 404
    finally:
        server.shutdown()
        conns.close()


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
def test_scrape_does_not_touch_database(path: str) -> None:
    """With the database unreachable, scrapes still answer at once from the snapshot."""
    poller, snap, conns = one_target_poller(
        "postgresql://postgres@127.0.0.1:1/x", {"database": DatabaseCollector()}
    )
    poller.run_once("database")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snap)
    server, _ = start_server("127.0.0.1", 0, Endpoints(registry=registry))
    try:
        status, _, _ = _get(f"http://127.0.0.1:{server.server_address[1]}{path}")
        assert status == 200
    finally:
        server.shutdown()
        conns.close()
