"""cheroot's TLS adapter, with the handshake moved out of the accept loop.

cheroot's ``BuiltinSSLAdapter`` handshakes inside ``wrap``, which runs in the one
thread accepting connections: a client that connects and stays silent would stop every
other client from being accepted for ``timeout`` seconds. Here ``wrap`` only attaches
the TLS state (``do_handshake_on_connect=False``, no I/O); the connection handshakes in
a worker (``handshake``, called by ``cheroot_server``) under the whole-request deadline.
(Python's ssl also bounds a whole ``do_handshake`` by the socket timeout, so a client
dribbling its ClientHello is cut after that long.)

``wrap`` takes the context current at accept time, so a rotated certificate is served
to every connection accepted after the files changed (``WebSource``).
"""

from __future__ import annotations

import socket
import ssl
from contextlib import suppress
from typing import Any

from cheroot.makefile import StreamReader, StreamWriter
from cheroot.ssl import Adapter

from dbpulse.http.tlscontext import sans_allowed
from dbpulse.http.webreload import WebSource

__all__ = ["DeferredTLSAdapter"]

_PLAIN_BODY = b"This port speaks HTTPS only (see --web.config.file).\n"
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    + f"Content-Length: {len(_PLAIN_BODY)}\r\n\r\n".encode()
    + _PLAIN_BODY
)


class DeferredTLSAdapter(Adapter):
    def __init__(self, source: WebSource) -> None:
        # Adapter's own __init__ wants certificate file names; ours come from the source.
        self.source = source
        self.context = None
        self.certificate = self.private_key = self.certificate_chain = self.ciphers = None

    def bind(self, sock: socket.socket) -> socket.socket:
        return sock

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, str]]:
        context = self.source.current().context
        if context is None:  # cannot happen: TLS is fixed for the server's lifetime
            raise ValueError("TLS adapter without a TLS context")
        wrapped = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, self.get_environ(wrapped)

    def get_environ(self, sock: Any = None) -> dict[str, str]:
        return {"wsgi.url_scheme": "https", "HTTPS": "on"}

    def makefile(self, sock: socket.socket, mode: str = "r", bufsize: int = -1) -> Any:
        cls = StreamReader if "r" in mode else StreamWriter
        return cls(sock, mode, bufsize if bufsize > 0 else 8192)

    def handshake(self, sock: ssl.SSLSocket) -> bool:
        """Complete the handshake (blocking, cut by the deadline); False: close the connection."""
        try:
            sock.do_handshake()
        except ssl.SSLError as exc:
            if exc.reason == "HTTP_REQUEST":  # plain HTTP to the TLS port: say so, in plain
                with suppress(OSError):
                    socket.socket.sendall(sock, PLAIN_HTTP_ANSWER)
            return False
        except (OSError, ValueError):  # timeouts, resets, a socket the deadline shut
            return False
        allowed = self.source.current().config.tls_server_config.client_allowed_sans
        return allowed is None or sans_allowed(sock, allowed)
