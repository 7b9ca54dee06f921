"""The application the multi-process tests serve: one instrumented engine per worker.

Imported by each gunicorn/uvicorn worker (``mpapp:wsgi`` / ``mpapp:asgi``) with
``MPAPP_URL`` (a SQLAlchemy URL) in its environment. Endpoints, each answering the
worker's pid:

- ``/query?n=N``: N ``SELECT count(*) FROM ticks`` on one connection;
- ``/hold``: waits on PostgreSQL advisory lock 42 (shared) inside a transaction, so its
  connection stays checked out until the test releases the lock;
- ``/metrics`` (not through the middleware): every worker's metrics, merged.

The ASGI handlers call the (sync) engine on the event loop on purpose: a worker busy
with ``/hold`` accepts nothing else, as a sync gunicorn worker, so the test can steer
its next request to another worker.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import make_asgi_app, make_wsgi_app
from sqlalchemy import create_engine, text

import dbpulse
import dbpulse.multiprocess
from dbpulse.inprocess.middleware import DBPulseASGIMiddleware, DBPulseWSGIMiddleware

POOL_SIZE = 3
MAX_OVERFLOW = 2
APPLICATION_NAME = "dbpulse-mp"

engine = create_engine(
    os.environ["MPAPP_URL"],
    pool_size=POOL_SIZE,
    max_overflow=MAX_OVERFLOW,
    pool_pre_ping=True,
    connect_args={
        "application_name": APPLICATION_NAME,
        "options": "-c statement_timeout=30000",
    },
)
dbpulse.instrument(engine, pool_name="mpapp")
if "MPAPP_METRICS_PORT" in os.environ:  # uvicorn: the first worker to bind serves them all
    dbpulse.serve_metrics(int(os.environ["MPAPP_METRICS_PORT"]))


def handle(path: str, query: str) -> bytes:
    """Run the endpoint's statements; the worker's pid is the answer."""
    if path == "/query":
        n = int(parse_qs(query).get("n", ["1"])[0])
        with engine.connect() as conn:
            for _ in range(n):
                conn.execute(text("SELECT count(*) FROM ticks"))
    elif path == "/hold":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock_shared(42)"))
    elif path != "/pid":
        raise LookupError(path)
    return str(os.getpid()).encode()


StartResponse = Callable[..., Any]


def _wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    try:
        body = handle(environ["PATH_INFO"], environ.get("QUERY_STRING", ""))
    except LookupError:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


_wsgi_routes = DBPulseWSGIMiddleware(_wsgi_app)
_wsgi_metrics = make_wsgi_app(registry=dbpulse.multiprocess.metrics_registry())


def wsgi(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI application (gunicorn)."""
    if environ["PATH_INFO"] == "/metrics":
        metrics: Iterable[bytes] = _wsgi_metrics(environ, start_response)
        return metrics
    return _wsgi_routes(environ, start_response)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def _asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        body = handle(scope["path"], scope.get("query_string", b"").decode())
        status = 200
    except LookupError:
        body, status = b"not found", 404
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


_asgi_routes = DBPulseASGIMiddleware(_asgi_app)
_asgi_metrics = make_asgi_app(registry=dbpulse.multiprocess.metrics_registry())


async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI application (uvicorn)."""
    if scope["type"] == "lifespan":
        message = await receive()
        while message["type"] != "lifespan.shutdown":
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http" and scope["path"] == "/metrics":
        await _asgi_metrics(scope, receive, send)
        return
    await _asgi_routes(scope, receive, send)
