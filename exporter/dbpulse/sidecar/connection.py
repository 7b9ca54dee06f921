"""The sidecar's connections to one target: bounded, timed out, and self-healing.

Every transaction runs ``SET LOCAL statement_timeout`` and ``lock_timeout`` first, so a
poll can neither run away nor queue behind (and so hold up) the application's DDL.
statement_timeout is enforced by the server, which cannot help when the network itself
freezes mid-query (the answer never arrives); a client-side deadline (2 x statement_timeout
+ connect_timeout, at least 1 s of slack) then shuts the socket down so that the poll
fails as "no answer" instead of hanging the poller forever.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from dbpulse.dsn import redact, remember
from dbpulse.logging import get_logger

Conn = psycopg.Connection[dict[str, Any]]


# pg_monitor (or pg_read_all_stats, which it includes) is what lets the sidecar see other
# roles' sessions and statements; without it the views answer anyway, with those
# columns NULL, so the gap would otherwise be silent.
SQL_PRIVILEGES = """
SELECT current_user::text AS role,
    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
        OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats
"""

MISSING_PG_MONITOR = (
    "role {role} lacks pg_monitor: other roles' sessions show in pg_stat_activity without "
    "state, query or wait event, and their pg_stat_statements entries without queryid, so "
    "activity, blocking and statements metrics miss them; fix: GRANT pg_monitor TO {role}"
)


class Unavailable(Exception):
    """The target cannot be reached right now (the poller reports pg_up 0)."""


@dataclass
class Backoff:
    """Exponential backoff between reconnect attempts (pure, clock passed in)."""

    initial: float = 1.0
    maximum: float = 30.0
    failures: int = 0
    next_attempt: float = 0.0

    def failed(self, now: float) -> float:
        delay = float(min(self.maximum, self.initial * (2.0**self.failures)))
        self.failures += 1
        self.next_attempt = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.next_attempt = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_attempt


class _Deadline:
    """Cuts a connection's socket if a transaction outlives its deadline (a frozen link)."""

    def __init__(self, conn: Conn, seconds: float) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._done = False
        self.fired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            try:
                # shutdown() on a duplicate of the descriptor wakes the thread blocked on
                # the socket (it reads EOF); the descriptor itself stays libpq's to close.
                dup = socket.socket(fileno=os.dup(self._conn.fileno()))
                try:
                    dup.shutdown(socket.SHUT_RDWR)
                finally:
                    dup.close()
            except (OSError, psycopg.Error):
                pass

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


class ConnectionManager:
    """At most ``max_connections`` open connections, handed out one per poll."""

    def __init__(
        self,
        dsn: str,
        *,
        target: str,
        max_connections: int = 1,
        connect_timeout: float = 5.0,
        lock_timeout: float = 0.1,
        application_name: str = "dbpulse",
        acquire_timeout: float = 30.0,
    ) -> None:
        remember(dsn)  # every DSN dbpulse connects with is scrubbed from all output
        self._dsn = dsn
        self._target = target
        self._connect_timeout = connect_timeout
        self._lock_timeout_ms = max(1, int(lock_timeout * 1000))
        self._application_name = application_name
        self._acquire_timeout = acquire_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._closing = threading.Event()
        self._idle: list[Conn] = []
        self._lock = threading.Lock()
        self._backoff = Backoff()
        self._last_failure = "connection failed"
        self._up: bool | None = None
        self._server_version_num = 0
        self._privileges_checked = False
        self._log = get_logger(target=target)

    @property
    def up(self) -> bool:
        return bool(self._up)

    @property
    def server_version_num(self) -> int:
        return self._server_version_num

    def _connect(self) -> Conn:
        now = time.monotonic()
        if not self._backoff.ready(now):
            # A stable message (no countdown): the poller logs each distinct problem once.
            raise Unavailable(f"{self._last_failure} (waiting to reconnect)")
        try:
            conn: Conn = psycopg.connect(
                self._dsn,
                autocommit=False,
                connect_timeout=max(1, round(self._connect_timeout)),
                application_name=self._application_name,
                row_factory=dict_row,
            )
        except psycopg.Error as exc:
            delay = self._backoff.failed(time.monotonic())
            self._last_failure = _first_line(exc)
            self._mark(up=False, reason=self._last_failure, retry_in=delay)
            raise Unavailable(_first_line(exc)) from exc
        self._backoff.succeeded()
        self._server_version_num = conn.info.server_version
        self._check_privileges(conn)
        return conn

    def _check_privileges(self, conn: Conn) -> None:
        """Warn once when the role cannot read other roles' statistics."""
        if self._privileges_checked:
            return
        try:
            row = conn.execute(SQL_PRIVILEGES).fetchone()
            conn.rollback()
        except psycopg.Error:
            return  # the first poll will say what is wrong with this connection
        self._privileges_checked = True
        if row is not None and not row["read_all_stats"]:
            self._log.warning(
                "missing privilege", problem=MISSING_PG_MONITOR.format(role=row["role"])
            )

    def _mark(self, *, up: bool, reason: str = "", retry_in: float | None = None) -> None:
        # Log transitions only: a database that stays down must not flood the log.
        if self._up is not up:
            if up:
                self._log.info("database reachable", server_version=self._server_version_num)
            else:
                self._log.warning("database unreachable", reason=reason, retry_in_seconds=retry_in)
        self._up = up

    @contextmanager
    def transaction(self, statement_timeout: float) -> Iterator[Conn]:
        """A read-only transaction with this collector's timeouts on a pooled connection."""
        # Wait in short slices so that shutdown never sits behind a queued poll.
        give_up_at = time.monotonic() + self._acquire_timeout
        while not self._slots.acquire(timeout=0.2):
            if self._closing.is_set():
                raise Unavailable("shutting down")
            if time.monotonic() >= give_up_at:
                raise Unavailable("all poller connections are busy")
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed or conn.broken:
                conn = self._connect()
            # statement_timeout bounds each statement; a collector runs a few, so allow two
            # of them plus connect_timeout of slack before calling the link frozen.
            limit = 2 * statement_timeout + max(1.0, self._connect_timeout)
            deadline = _Deadline(conn, limit)
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION READ ONLY")
                    conn.execute(
                        "SELECT set_config('statement_timeout', %s, true),"
                        " set_config('lock_timeout', %s, true)",
                        (
                            f"{max(1, int(statement_timeout * 1000))}ms",
                            f"{self._lock_timeout_ms}ms",
                        ),
                    )
                    yield conn
            except psycopg.Error as exc:
                if deadline.fired:
                    message = f"no answer from the server within {limit:g}s (network stall?)"
                    self._last_failure = message
                    raise Unavailable(message) from exc
                raise
            finally:
                deadline.cancel()
                if conn.broken or conn.closed:
                    self._mark(up=False, reason="connection lost")
                    conn.close()
                else:
                    self._mark(up=True)
                    with self._lock:
                        self._idle.append(conn)
        finally:
            self._slots.release()

    def begin_close(self) -> None:
        """Refuse new polls; those waiting for a connection give up at once."""
        self._closing.set()

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def describe(self) -> str:
        return redact(self._dsn)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0]) if text else type(exc).__name__
