"""pg_stat_database: per-database counters, size, and transaction-ID wraparound age."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

_COMMON = """
    s.datname, s.numbackends, s.xact_commit, s.xact_rollback, s.blks_read, s.blks_hit,
    s.tup_returned, s.tup_fetched, s.tup_inserted, s.tup_updated, s.tup_deleted,
    s.conflicts, s.temp_files, s.temp_bytes, s.deadlocks, s.blk_read_time, s.blk_write_time,
    pg_database_size(d.oid) AS size_bytes, age(d.datfrozenxid) AS frozen_xid_age
"""
_FROM = """
FROM pg_stat_database s JOIN pg_database d ON d.oid = s.datid
WHERE s.datname IS NOT NULL AND d.datallowconn
"""
# PostgreSQL 14 added session accounting to pg_stat_database.
SQL_V14 = f"""SELECT {_COMMON},
    s.sessions, s.sessions_abandoned, s.sessions_fatal, s.sessions_killed,
    s.session_time, s.active_time, s.idle_in_transaction_time {_FROM}"""
SQL_OLD = f"SELECT {_COMMON} {_FROM}"

# (column, metric suffix, help); counters of events since stats reset.
_COUNTERS = (
    ("xact_commit", "xact_commit", "transactions committed"),
    ("xact_rollback", "xact_rollback", "transactions rolled back"),
    ("blks_read", "blks_read", "disk blocks read"),
    ("blks_hit", "blks_hit", "buffer cache hits"),
    ("tup_returned", "tup_returned", "rows returned by scans"),
    ("tup_fetched", "tup_fetched", "rows fetched by index scans"),
    ("tup_inserted", "tup_inserted", "rows inserted"),
    ("tup_updated", "tup_updated", "rows updated"),
    ("tup_deleted", "tup_deleted", "rows deleted"),
    ("conflicts", "conflicts", "queries cancelled by recovery conflicts"),
    ("temp_files", "temp_files", "temporary files created"),
    ("temp_bytes", "temp_bytes", "bytes written to temporary files"),
    ("deadlocks", "deadlocks", "deadlocks detected"),
    ("sessions", "sessions", "sessions established"),
    ("sessions_abandoned", "sessions_abandoned", "sessions whose client disconnected abruptly"),
    ("sessions_fatal", "sessions_fatal", "sessions ended by fatal errors"),
    ("sessions_killed", "sessions_killed", "sessions terminated by an operator"),
)
# Millisecond columns, exported in seconds.
_MS_COUNTERS = (
    ("blk_read_time", "blk_read_time_seconds", "time spent reading blocks"),
    ("blk_write_time", "blk_write_time_seconds", "time spent writing blocks"),
    ("session_time", "session_time_seconds", "time spent in sessions"),
    ("active_time", "active_time_seconds", "time spent executing statements"),
    ("idle_in_transaction_time", "idle_in_transaction_time_seconds", "time idle in a transaction"),
)


@dataclass
class DatabaseCollector:
    name: str = "database"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        sql = SQL_V14 if ctx.server_version_num >= 140000 else SQL_OLD
        return {"databases": query(conn, sql)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult(families=build_families(rows["databases"]))


def build_families(databases: list[Row]) -> list[Metric]:
    families: list[Metric] = []
    for column, suffix, doc in _COUNTERS:
        fam = CounterMetricFamily(f"pg_stat_database_{suffix}", doc, labels=["datname"])
        for row in databases:
            if row.get(column) is not None:
                fam.add_metric([row["datname"]], float(row[column]))
        if fam.samples:
            families.append(fam)
    for column, suffix, doc in _MS_COUNTERS:
        fam = CounterMetricFamily(f"pg_stat_database_{suffix}", doc, labels=["datname"])
        for row in databases:
            if row.get(column) is not None:
                fam.add_metric([row["datname"]], float(row[column]) / 1000.0)
        if fam.samples:
            families.append(fam)
    gauges = (
        ("numbackends", "pg_stat_database_numbackends", "backends connected to the database", 1.0),
        ("size_bytes", "pg_database_size_bytes", "disk space used by the database", 1.0),
        (
            "frozen_xid_age",
            "pg_database_frozen_xid_age",
            "transactions since datfrozenxid; wraparound protection starts near 2^31",
            1.0,
        ),
    )
    for column, name, doc, scale in gauges:
        gauge = GaugeMetricFamily(name, doc, labels=["datname"])
        for row in databases:
            if row.get(column) is not None:
                gauge.add_metric([row["datname"]], float(row[column]) * scale)
        families.append(gauge)
    return families


def create(_settings: Settings) -> DatabaseCollector:
    return DatabaseCollector()
