"""cheroot, completed: a connection cap, a whole-request deadline, 431, idle connections parked.

What cheroot lacks and this module adds (through its extension points
``ConnectionClass``/``RequestHandlerClass`` and ``process_conn``):

- a whole-request deadline: cheroot's ``timeout`` is per ``recv``, so a client dribbling
  header bytes would hold a worker forever; ``Deadlines`` cuts it. A client gets
  ``request_timeout`` to send its request (from accept, or from the first byte of a
  keep-alive request) and ``request_timeout`` again to take the answer; the app's own
  time is not counted (a /probe poll is bounded by its collectors' timeouts);
- a connection cap: beyond ``max_connections`` a new connection is closed at once;
- new connections wait for their first byte in cheroot's selector, not in a worker,
  so idle connections cost no thread;
- 431 for headers too large or too many (cheroot says 413, and counts none).

Workers read a request in blocking mode, so each client that has started a request
holds a worker until it finishes or its deadline cuts it: more such clients than
``threads`` delay other scrapes by up to ``request_timeout``.

- TLS handshakes in a worker, under the deadline (``tls_adapter``): cheroot's builtin
  adapter handshakes in the accept loop, where one silent TLS client would stall
  accepting for ``timeout``.
"""

from __future__ import annotations

import math
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

from cheroot import errors, wsgi
from cheroot.makefile import MakeFile
from cheroot.server import HTTPConnection, HTTPRequest

from dbpulse.http.app import StartResponse, WSGIApp
from dbpulse.http.deadline import Deadlines
from dbpulse.http.tls_adapter import DeferredTLSAdapter
from dbpulse.logging import get_logger

MAX_HEADER_BYTES = 64 * 1024  # request line plus headers, like the stdlib's 64 KiB line limit
MAX_HEADERS = 100  # the stdlib's limit (http.client._MAXHEADERS)
TOO_LARGE = "431 Request Header Fields Too Large"


class _Request(HTTPRequest):
    def read_request_headers(self) -> bool:
        try:
            ok = bool(super().read_request_headers())  # type: ignore[no-untyped-call]
        except errors.MaxSizeExceeded:
            ok = False
            self.simple_response(TOO_LARGE, "request headers too large")
        else:
            if ok and len(self.inheaders) > MAX_HEADERS:
                ok = False
                self.simple_response(TOO_LARGE, "too many request headers")
        if not ok:
            self.close_connection = True
        return ok


# The connection a worker thread is serving: the app wrapper finds its deadline by it.
_serving = threading.local()


class _Connection(HTTPConnection):
    RequestHandlerClass = _Request
    server: Server

    def __init__(self, server: Server, sock: socket.socket, makefile: Any = MakeFile) -> None:
        super().__init__(server, sock, makefile)
        self.fresh = True  # accepted, not yet handed to a worker
        self.handshaken = not isinstance(sock, ssl.SSLSocket)
        self.deadline: float | None = None
        self._counted = True
        server.count_connection(+1)

    def communicate(self) -> bool:
        server = self.server
        now = time.monotonic()
        deadline = self.deadline if self.deadline is not None else now + server.request_timeout
        self.deadline = None  # the next request on this connection gets its own
        if now >= deadline:  # spent its time waiting for a worker or for its first byte
            return False
        server.deadlines.watch(id(self), deadline, self.socket)
        _serving.connection = self
        try:
            if not self.handshaken:
                adapter = server.ssl_adapter
                if not isinstance(adapter, DeferredTLSAdapter) or not adapter.handshake(
                    self.socket
                ):
                    return False
                self.handshaken = True
            return bool(super().communicate())  # type: ignore[no-untyped-call]
        finally:
            _serving.connection = None
            server.deadlines.unwatch(id(self))

    def close(self) -> None:
        if self._counted:
            self._counted = False
            self.server.count_connection(-1)
        super().close()


class Server(wsgi.Server):
    ConnectionClass = _Connection

    def __init__(
        self,
        bind_addr: tuple[str, int],
        app: WSGIApp,
        *,
        threads: int,
        max_connections: int,
        request_timeout: float,
        tls: DeferredTLSAdapter | None = None,
    ) -> None:
        super().__init__(
            bind_addr,
            self._untimed(app),
            numthreads=threads,
            request_queue_size=128,  # absorb connection bursts in the kernel's accept queue
            timeout=max(
                1, math.ceil(request_timeout)
            ),  # per recv/send, and how long an idle connection stays
            shutdown_timeout=1,
        )
        self.server_name = "dbpulse"
        self.ssl_adapter = tls
        self.max_request_header_size = MAX_HEADER_BYTES
        self.max_request_body_size = MAX_HEADER_BYTES  # every endpoint is GET/HEAD
        self.keep_alive_conn_limit = max_connections
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.deadlines = Deadlines(check_every=min(0.25, request_timeout / 4))
        self.refused = 0
        self.bind_error: OSError | None = None
        self._count_lock = threading.Lock()
        self._open = 0

    def _untimed(self, app: WSGIApp) -> WSGIApp:
        """``app`` with the deadline paused while it runs, re-armed for writing its answer.

        Needs an app that does its work in the call (ours returns lists), not while
        the server iterates the result.
        """

        def call(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            conn: _Connection | None = getattr(_serving, "connection", None)
            if conn is None:
                return app(environ, start_response)
            self.deadlines.unwatch(id(conn))
            try:
                return app(environ, start_response)
            finally:
                deadline = time.monotonic() + self.request_timeout
                self.deadlines.watch(id(conn), deadline, conn.socket)

        return call

    def count_connection(self, delta: int) -> None:
        with self._count_lock:
            self._open += delta

    @property
    def open_connections(self) -> int:
        with self._count_lock:
            return self._open

    def process_conn(self, conn: _Connection) -> None:
        if conn.fresh:
            conn.fresh = False
            if self.open_connections > self.max_connections:
                self.refused += 1
                conn.close()
                return
            conn.deadline = time.monotonic() + self.request_timeout
            if not conn.rfile.has_data():
                self.put_conn(conn)  # wait for the first byte in the selector, not a worker
                return
        elif conn.deadline is None:
            conn.deadline = time.monotonic() + self.request_timeout
        super().process_conn(conn)

    def bind(self, family: int, type: int, proto: int = 0) -> None:
        # cheroot folds the bind error into a message without errno; keep the original
        # so callers can report "Address already in use" as such.
        try:
            super().bind(family, type, proto)
        except OSError as exc:
            self.bind_error = exc
            raise

    def error_log(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        # Client misbehaviour (resets, TLS junk) is routine for an exposed port: debug only.
        get_logger().debug("http server", message=str(msg)[:200], level=level)
