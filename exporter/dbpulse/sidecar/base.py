"""What a collector is: ``fetch`` does the I/O, ``build`` turns rows into metric families.

``build`` is pure so that it can be unit-tested with plain dict rows, including NULL
columns and rows shaped like an older server's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import psycopg
    from prometheus_client.metrics_core import Metric

Row = dict[str, Any]
Rows = dict[str, list[Row]]


@dataclass(frozen=True)
class Context:
    """What ``build`` may know besides the rows."""

    target: str
    server_version_num: int
    now: float


@dataclass
class BuildResult:
    families: list[Metric]
    # JSON-able detail served at /debug/<collector> (e.g. the blocking tree).
    debug: Any = None
    # Warnings the poller logs once per distinct text (e.g. "extension missing").
    notices: list[str] = field(default_factory=list)


class CollectorError(Exception):
    """A collector cannot run here; the message tells the operator what to do."""


class Collector(Protocol):
    name: str

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context) -> Rows: ...

    def build(self, rows: Rows, ctx: Context) -> BuildResult: ...


def query(conn: psycopg.Connection[Row], sql: str, params: Any = None) -> list[Row]:
    """Run one catalog query and return its rows as dicts."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())
