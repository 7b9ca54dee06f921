"""The server's database list, read at most once per poll round and shared by its readers.

Activity and locks zero-fill their per-database series from it, and discovery picks the
databases to poll from it: one query where there used to be three. The runtime owns one
list per target; the poll of a collector with ``needs_databases`` refreshes it inside the
poll's transaction when it is older than ``max_age`` (the target's shortest collector
interval: at most once per round).
"""

from __future__ import annotations

import threading

import psycopg

from dbpulse.sidecar.base import Row, query

SQL_DATABASES = """
SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname
"""
# A refresh due within this slack counts as done: rounds fire a hair early or late.
SLACK = 0.5


class DatabaseList:
    """Connectable, non-template database names, and when they were read."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._names: tuple[str, ...] = ()
        self._read_at: float | None = None

    @property
    def names(self) -> tuple[str, ...]:
        with self._lock:
            return self._names

    def fresh(self, now: float, max_age: float | None = None) -> bool:
        age = self.max_age if max_age is None else max_age
        with self._lock:
            return self._read_at is not None and now - self._read_at < age - SLACK

    def current(
        self, conn: psycopg.Connection[Row], now: float, max_age: float | None = None
    ) -> tuple[str, ...]:
        """The list, read again on ``conn`` first when it is older than ``max_age``."""
        if not self.fresh(now, max_age):
            names = tuple(str(row["datname"]) for row in query(conn, SQL_DATABASES))
            with self._lock:
                self._names, self._read_at = names, now
        return self.names
