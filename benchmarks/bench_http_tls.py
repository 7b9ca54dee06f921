"""The price of --web.config.file: /metrics over plain HTTP, TLS, and TLS with basic auth.

One process serves the same registry (2,000 series, encoded once: the transport is what
is measured) three times: without a web config,
with TLS (an ECDSA P-256 certificate), and with TLS plus one bcrypt user (cost 10). Each
is scraped in turn, ``--scrapes`` times, on a kept-alive connection (as Prometheus
scrapes) and on a new connection per scrape (a full handshake each time). Prints, and
writes to ``results/http_tls.md`` unless ``--no-write``, the median and p90 in ms.

    python benchmarks/bench_http_tls.py [--scrapes 200]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "exporter")]

from prometheus_client import CollectorRegistry, Gauge  # noqa: E402 - after the path tweak

from dbpulse.http import Endpoints, MetricsServer, start_server  # noqa: E402
from tests.tlscerts import bcrypt_hash, write_pki  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "http_tls.md"


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    gauge = Gauge("bench_series", "one of many", ["n"], registry=registry)
    for n in range(2000):
        gauge.labels(str(n)).set(n)
    return registry


def _connect(port: int, context: ssl.SSLContext | None) -> http.client.HTTPConnection:
    if context is None:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)


def _scrape(conn: http.client.HTTPConnection, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    conn.request("GET", "/metrics", headers=headers)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, response.status
    assert body
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dbpulse-bench-tls-"))
    pki = write_pki(tmp)
    tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    (tmp / "tls.yml").write_text(tls)
    (tmp / "auth.yml").write_text(tls + f"basic_auth_users:\n  bench: {bcrypt_hash('pw')}\n")
    client = ssl.create_default_context(cafile=str(pki.ca_file))
    auth = {"Authorization": "Basic " + base64.b64encode(b"bench:pw").decode()}
    registry = _registry()
    setups: dict[str, tuple[Path | None, ssl.SSLContext | None, dict[str, str]]] = {
        "plain HTTP": (None, None, {}),
        "TLS": (tmp / "tls.yml", client, {}),
        "TLS + basic auth": (tmp / "auth.yml", client, auth),
    }
    # A fixed generation: the body is encoded once, so what is measured is the transport.
    endpoints = Endpoints(registry=registry, generation=lambda: 1)
    servers: dict[str, MetricsServer] = {}
    for name, (config, _, _) in setups.items():
        servers[name], _ = start_server("127.0.0.1", 0, endpoints, web_config_file=config)
    kept = {n: _connect(servers[n].server_address[1], setups[n][1]) for n in setups}
    times: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(args.scrapes):
            for name, (_, context, headers) in setups.items():
                port = servers[name].server_address[1]
                times.setdefault((name, "kept-alive"), []).append(_scrape(kept[name], headers))
                fresh = _connect(port, context)
                times.setdefault((name, "new connection"), []).append(_scrape(fresh, headers))
                fresh.close()
    finally:
        for server in servers.values():
            server.shutdown()
    lines = [
        f"# /metrics over plain HTTP, TLS, TLS + basic auth ({args.scrapes} scrapes each, "
        "2,000 series, scraped in turn)",
        "",
        "| setup | connection | median ms | p90 ms |",
        "|---|---|---|---|",
    ]
    for (name, how), samples in times.items():
        p90 = statistics.quantiles(samples, n=10)[8]
        lines.append(f"| {name} | {how} | {statistics.median(samples):.2f} | {p90:.2f} |")
    cpus, load = os.cpu_count(), os.getloadavg()[0]
    lines += ["", f"{cpus} CPUs, 1-minute load average {load:.1f} at the end (a shared machine)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
