"""The sidecar's connections to one target: bounded, timed out, and self-healing.

A ``psycopg_pool.ConnectionPool`` holds them: at most ``max_connections``, none until the
first poll asks (``min_size=0``), so a target that is down at start costs nothing. Every
connect passes the target's gate (``gate.py``): reconnects back off from 1 s to 30 s, and a
poll that waited for a failed connect is told the error, not a pool timeout.

Every transaction is READ ONLY with ``SET LOCAL statement_timeout`` and ``lock_timeout``,
so a poll can neither run away nor queue behind (and so hold up) the application's DDL.
libpq keepalives and tcp_user_timeout let the kernel kill connections over a link that
dropped; a client-side deadline (``deadline.py``) covers the rest of a frozen network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from dbpulse.dsn import redact, remember
from dbpulse.logging import get_logger
from dbpulse.sidecar.backoff import Backoff
from dbpulse.sidecar.deadline import WATCHDOG, Alarm
from dbpulse.sidecar.gate import DictRow, Gate, gated_connection_class

__all__ = ["Backoff", "Conn", "ConnectionManager", "Unavailable"]

Conn = psycopg.Connection[DictRow]

# Dead-peer detection by the kernel, used unless the DSN sets its own: after 5 s of
# silence probe every 2 s, give up after 3 lost probes, and drop a connection whose sent
# data stays unacknowledged for 10 s. Ignored on Unix sockets.
KEEPALIVES: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}

# How often a poll waiting for a connection looks up from the pool: whether shutdown
# began or the connect it waits for failed (the pool tells its waiters neither).
WAIT_SLICE = 0.1

# psycopg_pool logs every retry and discard through the standard library; with no
# handler configured, Python would print them to stderr as plain text between our JSON
# lines. The manager logs what matters (up/down transitions, once) itself.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

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


def connect_kwargs(dsn: str, *, connect_timeout: float, application_name: str) -> dict[str, Any]:
    """psycopg.connect keyword arguments: ours, plus keepalives the DSN does not set."""
    try:
        given = conninfo_to_dict(dsn)
    except psycopg.Error:
        given = {}  # the connect itself will report what is wrong with the DSN
    return {
        **{key: value for key, value in KEEPALIVES.items() if key not in given},
        "autocommit": False,
        "connect_timeout": max(1, round(connect_timeout)),
        "application_name": application_name,
        "row_factory": dict_row,
    }


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
        self._connect_timeout = connect_timeout
        self._lock_timeout_ms = max(1, int(lock_timeout * 1000))
        self._acquire_timeout = acquire_timeout
        self._closing = threading.Event()
        self._in_flight: set[Alarm] = set()
        self._opened = False
        self._open_lock = threading.Lock()
        self._up: bool | None = None
        self._server_version_num = 0
        self._privileges_checked = False
        self._log = get_logger(target=target)
        self._gate = Gate(self._connect_failed)
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            dsn,
            connection_class=gated_connection_class(self._gate),
            kwargs=connect_kwargs(
                dsn, connect_timeout=connect_timeout, application_name=application_name
            ),
            min_size=0,
            max_size=max(1, max_connections),
            open=False,  # no threads and no connection until the first poll
            configure=self._configure,
            name=f"dbpulse-{target}",
            timeout=acquire_timeout,
            # A failed connect is retried once, at once, and the gate turns that retry
            # away without touching the network: reconnecting is the polls' business.
            reconnect_timeout=0.0,
            num_workers=1,
        )

    @property
    def up(self) -> bool:
        return bool(self._up)

    @property
    def server_version_num(self) -> int:
        return self._server_version_num

    def _configure(self, conn: Conn) -> None:
        """Runs on each new connection, in the pool's worker, before any poll gets it."""
        self._server_version_num = conn.info.server_version
        self._check_privileges(conn)

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

    def _connect_failed(self, reason: str, retry_in: float) -> None:
        if self._closing.is_set():
            return  # a connect that outlived close(): nobody polls any more, say nothing
        self._mark(up=False, reason=reason, retry_in=retry_in)

    def _mark(self, *, up: bool, reason: str = "", retry_in: float | None = None) -> None:
        # Log transitions only: a database that stays down must not flood the log.
        if self._up is not up:
            if up:
                self._log.info("database reachable", server_version=self._server_version_num)
            else:
                self._log.warning("database unreachable", reason=reason, retry_in_seconds=retry_in)
        self._up = up

    def _open(self) -> ConnectionPool[Conn]:
        with self._open_lock:
            if self._closing.is_set():
                raise Unavailable("shutting down")
            if not self._opened:
                self._pool.open()
                self._opened = True
        return self._pool

    def _acquire(self) -> Conn:
        pool = self._open()
        if self._gate.backing_off() and not pool.get_stats().get("pool_available"):
            raise Unavailable(self._gate.waiting_message())
        failures = self._gate.failures
        give_up_at = time.monotonic() + self._acquire_timeout
        while True:
            try:
                return pool.getconn(timeout=WAIT_SLICE)
            except PoolClosed:
                raise Unavailable("shutting down") from None
            except PoolTimeout:
                pass
            if self._closing.is_set():
                raise Unavailable("shutting down")
            if self._gate.failures != failures:
                raise Unavailable(self._gate.last_failure)
            if time.monotonic() >= give_up_at:
                raise Unavailable("all poller connections are busy")

    @contextmanager
    def transaction(self, statement_timeout: float) -> Iterator[Conn]:
        """A read-only transaction with this collector's timeouts on a pooled connection."""
        conn = self._acquire()
        try:
            # statement_timeout bounds each statement; a collector runs a few, so allow two
            # of them plus connect_timeout of slack before calling the link frozen.
            limit = 2 * statement_timeout + max(1.0, self._connect_timeout)
            alarm = WATCHDOG.arm(conn, limit)
            self._in_flight.add(alarm)
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
                if self._closing.is_set():  # cancelled or cut by interrupt(): not a fault
                    raise Unavailable("shutting down") from exc
                if alarm.fired:
                    message = f"no answer from the server within {limit:g}s (network stall?)"
                    self._gate.lost(message)
                    raise Unavailable(message) from exc
                raise
            finally:
                alarm.cancel()
                self._in_flight.discard(alarm)
        finally:
            # A lock or statement timeout leaves the connection usable: still up. Once
            # closing, a cut connection says nothing about the server.
            if not self._closing.is_set():
                lost = conn.broken or conn.closed
                self._mark(up=not lost, reason="connection lost" if lost else "")
            self._pool.putconn(conn)  # a broken one is discarded and replaced by the pool

    def begin_close(self) -> None:
        """Refuse new polls; those waiting for a connection give up at once."""
        self._closing.set()

    def interrupt(self, cut_after: float) -> None:
        """Shutdown: cancel the statements in flight; cut their sockets after ``cut_after``.

        A reachable server ends them at once, so their connections return to the pool and
        close() can say goodbye to the server; over a frozen link the cancel never arrives
        and cutting the socket is what frees the poll's thread.
        """
        self._closing.set()
        alarms = list(self._in_flight)
        if not alarms:
            return
        WATCHDOG.hurry(alarms, cut_after)
        for alarm in alarms:
            # One thread each: a cancel opens a connection, which a frozen link holds.
            threading.Thread(
                target=alarm.cancel_query,
                args=(cut_after,),
                name="dbpulse-cancel",
                daemon=True,
            ).start()

    def close(self) -> None:
        """Close idle connections now; ones in use close when their poll returns them."""
        self._closing.set()
        with self._open_lock:
            if self._opened:
                # Do not wait on a worker stuck in a connect (up to connect_timeout): it
                # is a daemon thread, and its connection is closed if it ever arrives.
                self._pool.close(timeout=0.2)

    def describe(self) -> str:
        return redact(self._dsn)
