"""The HTTP endpoints: /metrics, /healthz, /readyz, /debug/<collector> and /probe.

Scrapes read the registry only (the sidecar's snapshot or the in-process metrics), so a
slow database can never make a scrape slow.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder


@dataclass
class Endpoints:
    registry: CollectorRegistry
    readiness: Callable[[], tuple[bool, str]] | None = None
    debug: Callable[[str], Any] | None = None
    debug_names: Callable[[], list[str]] | None = None
    # /probe?target=NAME: query parameters in, (status, body, content type) out.
    probe: Callable[[dict[str, list[str]]], tuple[int, bytes, str]] | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of connections (slow clients,
    # many scrapers) overflows it and the kernel drops a scrape's SYN, costing it a 1 s
    # retransmit. Let the accept queue absorb bursts.
    request_queue_size = 128
    endpoints: Endpoints


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # A client that stops sending mid-request must not hold a thread forever.
    timeout = 10
    protocol_version = "HTTP/1.1"
    server_version = "dbpulse"
    # The stdlib default (HTTP/0.9) answers an unparsable request line with a bare body
    # and no status line; assume 1.0 so that garbage gets a real "400 Bad Request".
    default_request_version = "HTTP/1.0"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        endpoints = self.server.endpoints
        if path == "/probe" and endpoints.probe is not None:
            status, body, content_type = endpoints.probe(parse_qs(url.query))
            self._send(status, body, content_type)
        elif path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, encoder(endpoints.registry), content_type)
        elif path == "/healthz":
            self._send(200, b"ok\n")
        elif path == "/readyz":
            ready, reason = endpoints.readiness() if endpoints.readiness else (True, "ok")
            self._send(200 if ready else 503, f"{reason}\n".encode())
        elif path.startswith("/debug/") and endpoints.debug is not None:
            name = path.removeprefix("/debug/")
            names = endpoints.debug_names() if endpoints.debug_names else []
            if name not in names:
                self._send(404, f"no debug view {name!r}; have: {', '.join(names)}\n".encode())
                return
            body = json.dumps(endpoints.debug(name), indent=2, default=str).encode()
            self._send(200, body + b"\n", "application/json")
        elif path == "/":
            links = "".join(
                f'<li><a href="{p}">{p}</a></li>' for p in ("/metrics", "/healthz", "/readyz")
            )
            self._send(
                200,
                f"<html><body><h1>dbpulse</h1><ul>{links}</ul></body></html>".encode(),
                "text/html",
            )
        else:
            self._send(404, b"not found\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _not_allowed(self) -> None:
        # Known methods this read-only server refuses: 405 (unknown ones stay 501). The
        # body is never read, so the connection closes rather than parse it as a request.
        self.close_connection = True
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", "19")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"method not allowed\n")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _send(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Access logs would drown the collector logs at a 15 s scrape interval.
        return


def start_server(host: str, port: int, endpoints: Endpoints) -> tuple[_Server, threading.Thread]:
    """Bind and serve in a daemon thread; raises OSError when the address is taken."""
    server = _Server((host, port), _Handler)
    server.endpoints = endpoints
    thread = threading.Thread(target=server.serve_forever, name="dbpulse-http", daemon=True)
    thread.start()
    return server, thread


def serve_metrics(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry | None = None
) -> _Server:
    """Serve ``/metrics`` for an application that has no HTTP endpoint of its own."""
    server, _ = start_server(addr, port, Endpoints(registry=registry or REGISTRY))
    return server
