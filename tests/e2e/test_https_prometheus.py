"""Prometheus scrapes a real `dbpulse sidecar` over TLS with basic auth (--web.config.file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.prometheus import Prometheus
from tests.integration.collector_helpers import wait_for
from tests.sidecar_process import SidecarProcess, fetch
from tests.tlscerts import bcrypt_hash, issue, make_ca


def test_prometheus_scrapes_sidecar_over_tls_with_basic_auth(pg_dsn: str, tmp_path: Path) -> None:
    """A config in exporter-toolkit's exact format: Prometheus (https, ca_file, basic_auth) gets pg_up 1."""
    ca = make_ca()
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem())
    issue(ca, "dbpulse", server=True).write(tmp_path, "server")
    web_config = tmp_path / "web-config.yml"
    web_config.write_text(
        "tls_server_config:\n"
        "  cert_file: server.crt\n"
        "  key_file: server.key\n"
        "  min_version: TLS12\n"
        "http_server_config:\n"
        "  headers:\n"
        "    X-Content-Type-Options: nosniff\n"
        "basic_auth_users:\n"
        f"  prometheus: {bcrypt_hash('scrape-pass')}\n"
    )
    sidecar = SidecarProcess(pg_dsn, extra_args=["--web.config.file", str(web_config)])
    prometheus = None
    try:
        options = {
            "scheme": "https",
            "tls_config": {"ca_file": str(tmp_path / "ca.crt")},
            "basic_auth": {"username": "prometheus", "password": "scrape-pass"},
        }
        prometheus = Prometheus({"dbpulse": f"127.0.0.1:{sidecar.port}"}, job_options=options)

        def pg_up() -> float | None:
            result: list[Any] = prometheus.query("pg_up").get("data", {}).get("result", [])
            return float(result[0]["value"][1]) if result else None

        assert wait_for(pg_up, timeout=60) == 1.0, prometheus.logs()
        assert prometheus.targets_up() == {"dbpulse": "up"}
        # The same port refuses plain HTTP scrapes: TLS is the only way in.
        assert fetch(sidecar.url + "/metrics") == (
            400,
            "This port speaks HTTPS only (see --web.config.file).\n",
        )
        assert f"https://127.0.0.1:{sidecar.port}/metrics" in "".join(sidecar.output)
    finally:
        if prometheus is not None:
            prometheus.stop()
        assert sidecar.stop() == 0
