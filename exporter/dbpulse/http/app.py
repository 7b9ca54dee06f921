"""The WSGI application: /metrics, /healthz, /readyz, /debug/<view>, /probe and /.

Scrapes read registries only (the sidecar's snapshot or the in-process metrics), so a
slow database can never make a scrape slow. Any WSGI server can host it; ours is in
``dbpulse.http.server``. TLS and basic auth (the security issue) wrap this app or the
server, not the routes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from prometheus_client.exposition import gzip_accepted

from dbpulse.http.endpoints import Endpoints
from dbpulse.http.exposition import Exposition

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# status, headers, body chunks
Reply = tuple[int, list[tuple[str, str]], list[bytes]]

TEXT = "text/plain; charset=utf-8"
# Known methods this read-only server refuses get 405 and an Allow header; unknown ones 501.
REFUSED = frozenset({"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"})
INDEX = "".join(f'<li><a href="{p}">{p}</a></li>' for p in ("/metrics", "/healthz", "/readyz"))
STATIC = {
    "/healthz": (TEXT, b"ok\n"),
    "/": ("text/html", f"<html><body><h1>dbpulse</h1><ul>{INDEX}</ul></body></html>".encode()),
}


class App:
    """Callable WSGI app over ``endpoints`` (read at every request)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self.exposition = Exposition(endpoints)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method in REFUSED:
            return _reply(
                start_response, 405, b"method not allowed\n", extra=[("Allow", "GET, HEAD")]
            )
        if method not in ("GET", "HEAD"):
            return _reply(start_response, 501, b"not implemented\n")
        status, headers, chunks = self._route(environ)
        length = sum(len(chunk) for chunk in chunks)
        start_response(_status(status), [*headers, ("Content-Length", str(length))])
        return [] if method == "HEAD" else chunks

    def _route(self, environ: dict[str, Any]) -> Reply:
        path = environ.get("PATH_INFO", "")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        endpoints = self.endpoints
        if path == "/metrics":
            return self._metrics(environ, query)
        if path == "/probe" and endpoints.probe is not None:
            status, payload, content_type = endpoints.probe(query)
            return status, [("Content-Type", content_type)], [payload]
        if path.startswith("/debug/") and endpoints.debug is not None:
            return self._debug(path.removeprefix("/debug/"))
        if path in STATIC:
            content_type, payload = STATIC[path]
            return 200, [("Content-Type", content_type)], [payload]
        if path == "/readyz":
            ready, reason = endpoints.readiness() if endpoints.readiness else (True, "ok")
            return _text(200 if ready else 503, reason)
        return _text(404, "not found")

    def _metrics(self, environ: dict[str, Any], query: dict[str, list[str]]) -> Reply:
        body = self.exposition.render(
            environ.get("HTTP_ACCEPT", ""),
            gzip=gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")),
            names=query.get("name[]"),
        )
        headers = [("Content-Type", body.content_type), ("Vary", "Accept-Encoding")]
        if body.gzipped:
            headers.append(("Content-Encoding", "gzip"))
        return 200, headers, list(body.chunks)

    def _debug(self, name: str) -> Reply:
        endpoints = self.endpoints
        names = endpoints.debug_names() if endpoints.debug_names else []
        if name not in names or endpoints.debug is None:
            return _text(404, f"no debug view {name!r}; have: {', '.join(names)}")
        payload = json.dumps(endpoints.debug(name), indent=2, default=str).encode()
        return 200, [("Content-Type", "application/json")], [payload + b"\n"]


def _text(status: int, line: str) -> Reply:
    return status, [("Content-Type", TEXT)], [f"{line}\n".encode()]


def _status(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def _reply(
    start_response: StartResponse,
    code: int,
    body: bytes,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    headers = [("Content-Type", TEXT), ("Content-Length", str(len(body))), *(extra or [])]
    start_response(_status(code), headers)
    return [body]
