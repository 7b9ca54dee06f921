"""The HTTP server's public face: start it, stop it, serve /metrics for an application.

Why cheroot (CherryPy's WSGI server): a fixed pool of worker threads (slow clients
cannot multiply threads), idle keep-alive connections parked in a selector instead of a
thread, correct status codes for bad requests (400, 414, 505), and TLS through an
``ssl.SSLContext`` (client-certificate verification, reloadable certificates) for the
security issue; basic auth is WSGI middleware (``auth``; the web config in ``webconfig``,
``webreload``, ``tlscontext``, ``tls_adapter``). waitress has no TLS; uvicorn/hypercorn
would need an ASGI bridge for the blocking /probe and answer oversized headers with a
bare 400. What cheroot lacks (deadline, cap) is in ``dbpulse.http.cheroot_server``.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from dbpulse import multiprocess
from dbpulse.http.app import App, WSGIApp
from dbpulse.http.auth import Guard
from dbpulse.http.cheroot_server import Server
from dbpulse.http.endpoints import Endpoints
from dbpulse.http.exposition import Refresher
from dbpulse.http.tls_adapter import DeferredTLSAdapter
from dbpulse.http.webreload import WebSource

_LOG = logging.getLogger("dbpulse.http")


class MetricsServer:
    """A running server: ``server_address``, ``shutdown()`` (the stdlib server's names)."""

    def __init__(
        self, server: Server, thread: threading.Thread, refresher: Refresher | None = None
    ) -> None:
        self._server = server
        self._thread = thread
        self._refresher = refresher

    @property
    def server_address(self) -> tuple[str, int]:
        host, port = self._server.bind_addr[:2]
        return str(host), int(port)

    @property
    def scheme(self) -> str:
        return "https" if self._server.ssl_adapter is not None else "http"

    @property
    def open_connections(self) -> int:
        return self._server.open_connections

    @property
    def refused_connections(self) -> int:
        return self._server.refused

    @property
    def cut_connections(self) -> int:
        return self._server.deadlines.cut

    def shutdown(self) -> None:
        self._server.stop()
        self._thread.join()
        self._server.deadlines.stop()
        if self._refresher is not None:
            self._refresher.stop()

    def server_close(self) -> None:
        """Nothing left to close after ``shutdown()``; kept for the stdlib's call sequence."""


def start_server(
    host: str,
    port: int,
    endpoints: Endpoints,
    *,
    threads: int = 16,
    max_connections: int = 128,
    request_timeout: float = 10.0,
    web_config_file: Path | None = None,
) -> tuple[MetricsServer, threading.Thread]:
    """Bind and serve in a daemon thread; raises OSError when the address is taken.

    ``web_config_file``: exporter-toolkit's web config (TLS, basic auth, headers); a bad
    one raises ConfigError before anything binds.
    """
    app = App(endpoints)
    served: WSGIApp = app
    tls = None
    if web_config_file is not None:
        source = WebSource(web_config_file)
        served = Guard(app, source)
        tls = DeferredTLSAdapter(source) if source.tls else None
    return serve_wsgi(
        host,
        port,
        served,
        threads=threads,
        max_connections=max_connections,
        request_timeout=request_timeout,
        # Only where there is a cache to keep warm: without a generation (an application's
        # serve_metrics) every scrape encodes anyway, and a thread waking five times a
        # second inside the application would be pure cost.
        refresher=(lambda: Refresher(app.exposition)) if endpoints.generation else None,
        tls=tls,
    )


def serve_wsgi(
    host: str,
    port: int,
    app: WSGIApp,
    *,
    threads: int = 16,
    max_connections: int = 128,
    request_timeout: float = 10.0,
    refresher: Callable[[], Refresher] | None = None,
    tls: DeferredTLSAdapter | None = None,
) -> tuple[MetricsServer, threading.Thread]:
    """Any WSGI app on this server (the benchmark serves a static file with it)."""
    server = Server(
        (host, port),
        app,
        threads=threads,
        max_connections=max_connections,
        request_timeout=request_timeout,
        tls=tls,
    )
    try:
        _prepare_as_daemons(server)
    except OSError as exc:
        server.deadlines.stop()
        raise (server.bind_error or exc) from None
    thread = threading.Thread(target=server.serve, name="dbpulse-http", daemon=True)
    thread.start()
    return MetricsServer(server, thread, refresher() if refresher is not None else None), thread


def _prepare_as_daemons(server: Server) -> None:
    """``server.prepare()`` (bind, start the worker threads) from a daemon thread.

    A thread is a daemon when the thread creating it is: prepared from the caller's
    thread, cheroot's workers would be non-daemon, and an application that called
    ``serve_metrics`` (a script, a gunicorn master on SIGINT) could never exit.
    """
    failed: list[BaseException] = []

    def prepare() -> None:
        try:
            server.prepare()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=prepare, name="dbpulse-http-prepare", daemon=True)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


def serve_metrics(
    port: int,
    addr: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
    web_config_file: Path | None = None,
) -> MetricsServer | None:
    """Serve ``/metrics`` for an application that has no HTTP endpoint of its own.

    ``registry=None``: prometheus_client's default registry, or in its multiprocess mode
    the merge of every process's files (``dbpulse.multiprocess.metrics_registry``), so
    whichever process serves it shows them all. This runs inside an application, often
    at import in each of several workers: an address it cannot bind (taken by a sibling
    worker, say) is logged and None returned, never raised.
    """
    try:
        served = registry or multiprocess.metrics_registry()
        server, _ = start_server(
            addr, port, Endpoints(registry=served), web_config_file=web_config_file
        )
    except (OSError, ValueError) as exc:  # ValueError: a missing multiprocess directory
        sibling = multiprocess.enabled() and getattr(exc, "errno", None) == errno.EADDRINUSE
        # Expected in multiprocess mode: the first worker to bind serves every worker.
        _LOG.log(
            logging.INFO if sibling else logging.WARNING,
            "dbpulse: not serving /metrics on %s:%s (%s)%s",
            addr,
            port,
            exc,
            "; another process serves every worker's metrics" if sibling else "",
        )
        return None
    return server
