"""pg_stat_io (PostgreSQL 16+): I/O by backend type, object and context.

The view has one row per (backend_type, object, context) the server can produce: 30 on
16 and 17, 79 on 18 (WAL I/O, more backend types), so its series are bounded by the
server, never by the workload. Most rows never see any I/O (a standalone backend, the
slotsync worker...): only rows with a non-zero counter are exported, and cells that
cannot happen (NULL) never are. A row that starts doing I/O appears then; ``rate()``
misses its first increment only.

Units: bytes for reads, writes and extends (their operation counts are left out: bytes
carry the same information, and more of it on 18 where one read may combine blocks);
other operations as counts (PostgreSQL 18
reports ``read_bytes``/``write_bytes``/``extend_bytes``; 16 and 17 report ``op_bytes``
per operation, so bytes = operations x op_bytes); times in seconds (the view's
milliseconds, non-zero only with ``track_io_timing``, or ``track_wal_io_timing`` for WAL).
Before 16 the collector reads nothing and exports no series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

_COMMON = """
SELECT backend_type, object, context,
       read_time, write_time, writebacks, writeback_time, extend_time,
       hits, evictions, reuses, fsyncs, fsync_time,
"""
# PostgreSQL 18 replaced op_bytes with per-operation byte counters.
SQL_V18 = _COMMON + "       read_bytes, write_bytes, extend_bytes\nFROM pg_stat_io"
SQL_V16 = (
    _COMMON
    + """       reads * op_bytes AS read_bytes, writes * op_bytes AS write_bytes,
       extends * op_bytes AS extend_bytes
FROM pg_stat_io"""
)

LABELS = ["backend_type", "object", "context"]

# (column, family without _total, help, scale)
FAMILIES = (
    ("read_bytes", "pg_stat_io_read_bytes", "bytes read", 1.0),
    ("read_time", "pg_stat_io_read_time_seconds", "time spent in read operations", 0.001),
    ("write_bytes", "pg_stat_io_write_bytes", "bytes written", 1.0),
    ("write_time", "pg_stat_io_write_time_seconds", "time spent in write operations", 0.001),
    ("writebacks", "pg_stat_io_writebacks", "requests to the kernel to write data back", 1.0),
    (
        "writeback_time",
        "pg_stat_io_writeback_time_seconds",
        "time spent in writeback operations",
        0.001,
    ),
    ("extend_bytes", "pg_stat_io_extend_bytes", "bytes added by extend operations", 1.0),
    ("extend_time", "pg_stat_io_extend_time_seconds", "time spent in extend operations", 0.001),
    ("hits", "pg_stat_io_hits", "times a wanted block was found in a shared buffer", 1.0),
    ("evictions", "pg_stat_io_evictions", "blocks evicted from a buffer to reuse it", 1.0),
    ("reuses", "pg_stat_io_reuses", "buffers reused in a ring (bulk read, write, vacuum)", 1.0),
    ("fsyncs", "pg_stat_io_fsyncs", "fsync calls", 1.0),
    ("fsync_time", "pg_stat_io_fsync_time_seconds", "time spent in fsync calls", 0.001),
)


@dataclass(frozen=True)
class StatIOCollector:
    name: str = "stat_io"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        if ctx.server_version_num < 160000:
            return {"io": []}
        sql = SQL_V18 if ctx.server_version_num >= 180000 else SQL_V16
        return {"io": query(conn, sql)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult(families=build_families(rows.get("io", [])))


def build_families(io: list[Row]) -> list[Metric]:
    """One counter family per column, for the rows that did any I/O, NULL cells left out."""
    families: list[Metric] = []
    active = [row for row in io if any(row.get(column) for column, *_ in FAMILIES)]
    for column, name, doc, scale in FAMILIES:
        family = CounterMetricFamily(name, doc, labels=LABELS)
        for row in active:
            value = row.get(column)
            if value is not None:
                labels = [str(row.get(label) or "") for label in LABELS]
                family.add_metric(labels, float(value) * scale)
        families.append(family)
    return families


def create(_settings: Settings) -> StatIOCollector:
    return StatIOCollector()
