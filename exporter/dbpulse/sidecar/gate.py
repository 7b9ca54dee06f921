"""Every connect to one target passes one gate: the reconnect backoff and the last error.

psycopg_pool opens connections in its worker threads and retries failures on its own
schedule, and a client waiting in ``getconn`` learns neither that a connect failed nor
why. The pool builds its connections through ``connection_class.connect``, so a
subclass whose ``connect`` passes the gate lets the manager (1) refuse, without touching
the network, every attempt while the backoff runs (no reconnect storm against a dead
target, whoever asks: a poll or the pool's own retry), and (2) report the real error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Self

import psycopg

from dbpulse.errors import first_line
from dbpulse.sidecar.backoff import Backoff

DictRow = dict[str, Any]


class Refused(Exception):
    """A connect attempt turned away by the backoff; the network was not touched."""


class Gate:
    """The backoff and the outcome of the latest connect attempt, shared across threads."""

    def __init__(self, on_failure: Callable[[str, float], None]) -> None:
        self._lock = threading.Lock()
        self._backoff = Backoff()
        self._on_failure = on_failure
        self.failures = 0  # how many attempts failed so far: waiters compare it
        self.last_failure = "connection failed"

    def backing_off(self) -> bool:
        with self._lock:
            return not self._backoff.ready(time.monotonic())

    def waiting_message(self) -> str:
        # A stable message (no countdown): the poller logs each distinct problem once.
        return f"{self.last_failure} (waiting to reconnect)"

    def before_connect(self) -> None:
        if self.backing_off():
            raise Refused(self.waiting_message())

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            delay = self._backoff.failed(time.monotonic())
            self.last_failure = first_line(exc)
            self.failures += 1
        self._on_failure(self.last_failure, delay)

    def lost(self, reason: str) -> None:
        """A connection died in use: the reason the next refused poll will give."""
        with self._lock:
            self.last_failure = reason

    def succeeded(self) -> None:
        with self._lock:
            self._backoff.succeeded()


def gated_connection_class(gate: Gate) -> type[psycopg.Connection[DictRow]]:
    """A psycopg Connection class whose every connect passes ``gate``."""

    class GatedConnection(psycopg.Connection[DictRow]):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            gate.before_connect()
            try:
                conn = super().connect(conninfo, **kwargs)
            except psycopg.Error as exc:
                gate.failed(exc)
                raise
            gate.succeeded()
            return conn

    return GatedConnection
