"""pg_stat_database, its recovery conflicts, and pg_database: postgres_exporter's families.

Names, types, labels and units are postgres_exporter's (0.11.1, the version Debian
ships, whose dashboards and alerts are the ones to keep working): counters without
``_total`` (``http/barecounter.py``), times in milliseconds as the view has them, the
columns postgres_exporter leaves untyped (PostgreSQL 14's session accounting, checksum
failures) untyped, NULL as NaN, labels ``datid``, ``datname`` and ``server``, and every
row of the view, the shared-objects row (``datid="0"``, ``datname=""``) and the
templates included. dbpulse adds ``pg_database_frozen_xid_age`` (wraparound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.http.barecounter import BareCounter, PlainFamily
from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

_COMMON = """
    s.datid::int8 AS datid, COALESCE(s.datname, '') AS datname, s.numbackends,
    s.xact_commit, s.xact_rollback, s.blks_read, s.blks_hit, s.tup_returned, s.tup_fetched,
    s.tup_inserted, s.tup_updated, s.tup_deleted, s.conflicts, s.temp_files, s.temp_bytes,
    s.deadlocks, s.checksum_failures,
    EXTRACT(EPOCH FROM s.checksum_last_failure)::float8 AS checksum_last_failure,
    s.blk_read_time, s.blk_write_time,
    EXTRACT(EPOCH FROM s.stats_reset)::float8 AS stats_reset
"""
# PostgreSQL 14 added session accounting to pg_stat_database.
SQL_V14 = f"""SELECT {_COMMON},
    s.session_time, s.active_time, s.idle_in_transaction_time, s.sessions,
    s.sessions_abandoned, s.sessions_fatal, s.sessions_killed
FROM pg_stat_database s"""
SQL_OLD = f"SELECT {_COMMON} FROM pg_stat_database s"
SQL_CONFLICTS = """
SELECT datid::int8 AS datid, datname, confl_tablespace, confl_lock, confl_snapshot,
    confl_bufferpin, confl_deadlock
FROM pg_stat_database_conflicts
"""
# Every database, templates included (their size counts on disk too).
SQL_DATABASES = """
SELECT datname, pg_database_size(oid) AS size_bytes, datconnlimit,
    age(datfrozenxid) AS frozen_xid_age
FROM pg_database
"""

# (column, type, help): pg_stat_database's columns as postgres_exporter types them.
STAT_COLUMNS = (
    ("numbackends", "gauge", "backends currently connected to this database"),
    ("xact_commit", "counter", "transactions committed"),
    ("xact_rollback", "counter", "transactions rolled back"),
    ("blks_read", "counter", "disk blocks read"),
    ("blks_hit", "counter", "disk blocks found in the buffer cache"),
    ("tup_returned", "counter", "rows returned by queries"),
    ("tup_fetched", "counter", "rows fetched by queries"),
    ("tup_inserted", "counter", "rows inserted"),
    ("tup_updated", "counter", "rows updated"),
    ("tup_deleted", "counter", "rows deleted"),
    ("conflicts", "counter", "queries cancelled by conflicts with recovery"),
    ("temp_files", "counter", "temporary files created"),
    ("temp_bytes", "counter", "bytes written to temporary files"),
    ("deadlocks", "counter", "deadlocks detected"),
    ("checksum_failures", "unknown", "data page checksum failures (NaN: checksums off)"),
    ("checksum_last_failure", "unknown", "unix time of the last checksum failure"),
    ("blk_read_time", "counter", "milliseconds spent reading data file blocks"),
    ("blk_write_time", "counter", "milliseconds spent writing data file blocks"),
    ("stats_reset", "counter", "unix time these statistics were last reset (NaN: never)"),
    ("session_time", "unknown", "milliseconds spent by sessions (PostgreSQL 14+)"),
    ("active_time", "unknown", "milliseconds spent executing statements (PostgreSQL 14+)"),
    (
        "idle_in_transaction_time",
        "unknown",
        "milliseconds spent idle in a transaction (PostgreSQL 14+)",
    ),
    ("sessions", "unknown", "sessions established (PostgreSQL 14+)"),
    ("sessions_abandoned", "unknown", "sessions whose client disconnected abruptly"),
    ("sessions_fatal", "unknown", "sessions ended by fatal errors"),
    ("sessions_killed", "unknown", "sessions terminated by an operator"),
)
CONFLICT_COLUMNS = (
    ("confl_tablespace", "queries cancelled because of dropped tablespaces"),
    ("confl_lock", "queries cancelled because of lock timeouts"),
    ("confl_snapshot", "queries cancelled because of old snapshots"),
    ("confl_bufferpin", "queries cancelled because of pinned buffers"),
    ("confl_deadlock", "queries cancelled because of deadlocks"),
)


@dataclass
class DatabaseCollector:
    name: str = "database"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        sql = SQL_V14 if ctx.server_version_num >= 140000 else SQL_OLD
        return {
            "stats": query(conn, sql),
            "conflicts": query(conn, SQL_CONFLICTS),
            "databases": query(conn, SQL_DATABASES),
        }

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult(families=build_families(rows, ctx.server))


def _value(value: object) -> float:
    """postgres_exporter exports a NULL column as NaN (the series exists, with no value)."""
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


def _family(name: str, typ: str, doc: str, labels: list[str]) -> PlainFamily:
    return (
        BareCounter(name, doc, labels) if typ == "counter" else PlainFamily(name, doc, typ, labels)
    )


def build_families(rows: Rows, server: str) -> list[Metric]:
    families: list[Metric] = []
    stats = rows.get("stats", [])
    stat_labels = ["datid", "datname", "server"]
    for column, typ, doc in STAT_COLUMNS:
        present = [row for row in stats if column in row]
        if not present:  # a column this server version does not have
            continue
        fam = _family(f"pg_stat_database_{column}", typ, doc, stat_labels)
        for row in present:
            fam.add_metric([str(row["datid"]), str(row["datname"]), server], _value(row[column]))
        families.append(fam)
    conflicts = rows.get("conflicts", [])
    for column, doc in CONFLICT_COLUMNS:
        fam = BareCounter(f"pg_stat_database_conflicts_{column}", doc, stat_labels)
        for row in conflicts:
            fam.add_metric(
                [str(row["datid"]), str(row["datname"] or ""), server], _value(row.get(column))
            )
        families.append(fam)
    databases = rows.get("databases", [])
    for column, name, doc, labels in (
        ("size_bytes", "pg_database_size_bytes", "disk space used by the database", True),
        (
            "datconnlimit",
            "pg_database_connection_limit",
            "connection limit set for the database (-1: none)",
            True,
        ),
        (
            "frozen_xid_age",
            "pg_database_frozen_xid_age",
            "transactions since datfrozenxid; wraparound protection starts near 2^31",
            False,
        ),
    ):
        gauge = GaugeMetricFamily(
            name, doc, labels=["datname", "server"] if labels else ["datname"]
        )
        for row in databases:
            if row.get(column) is not None:
                values = [str(row["datname"]), server] if labels else [str(row["datname"])]
                gauge.add_metric(values, float(row[column]))
        families.append(gauge)
    return families


def create(_settings: Settings) -> DatabaseCollector:
    return DatabaseCollector()
