"""Prometheus itself scrapes the cached-plus-live body (it asks for gzip and OpenMetrics)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from dbpulse.http import Endpoints, start_server
from tests.e2e.prometheus import Prometheus
from tests.integration.collector_helpers import wait_for


def test_prometheus_reads_cached_and_live_parts() -> None:
    """Prometheus' Go client decodes the gzip, single-EOF body and stores both parts' series."""
    cached = CollectorRegistry(auto_describe=False)
    Gauge("e2e_cached_gauge", "from the cached part", registry=cached).set(11)
    live = CollectorRegistry(auto_describe=False)
    Gauge("e2e_live_gauge", "from the live part", registry=live).set(22)
    endpoints = Endpoints(registry=cached, live_registry=live, generation=lambda: 1)
    server, _ = start_server("127.0.0.1", 0, endpoints)
    prometheus = Prometheus({"http": f"127.0.0.1:{server.server_address[1]}"})
    try:

        def values() -> dict[str, float] | None:
            got: dict[str, float] = {}
            for name in ("e2e_cached_gauge", "e2e_live_gauge"):
                result: list[Any] = prometheus.query(name).get("data", {}).get("result", [])
                if result:
                    got[name] = float(result[0]["value"][1])
            return got if len(got) == 2 else None

        assert wait_for(values, timeout=60) == {"e2e_cached_gauge": 11.0, "e2e_live_gauge": 22.0}
        assert prometheus.targets_up() == {"http": "up"}
    finally:
        prometheus.stop()
        server.shutdown()
