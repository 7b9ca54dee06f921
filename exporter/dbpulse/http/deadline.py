"""A whole-request deadline: one thread cuts connections whose request runs past it.

cheroot's ``timeout`` bounds each ``recv``/``send``, so a client dribbling one header
byte every few seconds would hold a worker thread indefinitely (slowloris). Shutting the
socket down from outside makes the worker's blocked read return end-of-file at once,
so the worker frees itself through cheroot's normal error path.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress


class Deadlines:
    """Watched sockets and their deadlines (``time.monotonic()`` seconds)."""

    def __init__(self, check_every: float) -> None:
        self._check_every = check_every
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[float, socket.socket]] = {}
        self._stop = threading.Event()
        self.cut = 0  # connections cut so far (tests and debugging read it)
        self._thread = threading.Thread(target=self._run, name="dbpulse-http-deadline", daemon=True)
        self._thread.start()

    def watch(self, key: int, deadline: float, sock: socket.socket) -> None:
        with self._lock:
            self._watched[key] = (deadline, sock)

    def unwatch(self, key: int) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._check_every):
            now = time.monotonic()
            with self._lock:
                expired = [k for k, (deadline, _) in self._watched.items() if deadline <= now]
                socks = [self._watched.pop(k)[1] for k in expired]
            for sock in socks:
                self.cut += 1  # counted first: whoever sees the cut also sees the count
                with suppress(OSError):  # the client may have gone already
                    sock.shutdown(socket.SHUT_RDWR)
