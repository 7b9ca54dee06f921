"""pg_replication_slots: which slots are active and how much WAL each one holds back.

An abandoned slot keeps every WAL segment since its ``restart_lsn`` until the disk is
full, the classic way a forgotten logical consumer takes a primary down. Names, labels
and semantics are postgres_exporter's ``replication_slots`` collector (0.20):

- ``pg_replication_slots_active`` and ``pg_replication_slots_pg_wal_lsn_diff`` (the WAL
  retained by the slot, in bytes) labelled ``slot_name``, ``database`` ('' for a
  physical slot);
- ``pg_replication_slots_slot_current_wal_lsn``, ``..._slot_confirmed_flush_lsn`` (only
  for an active slot; 0 for a physical one, which confirms nothing),
  ``..._slot_is_active``, and on PostgreSQL 13+ ``..._safe_wal_size_bytes`` (bytes of WAL
  that can still be written before the slot is lost; absent without
  ``max_slot_wal_keep_size``) and ``..._wal_status`` (1, with the status as a label),
  labelled ``slot_name``, ``slot_type``.

Every family also carries postgres_exporter 0.11.1's ``server`` label (its
``pg_replication_slots_active`` and ``..._pg_wal_lsn_diff`` had it; the others get it
too so that all of a slot's series join on the same labels).

On a standby ``pg_current_wal_lsn()`` raises: positions there use the last received LSN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

_HERE = """CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
    ELSE pg_current_wal_lsn() END"""
_SQL = f"""
SELECT slot_name, slot_type, database, active,
    pg_wal_lsn_diff({_HERE}, restart_lsn)::float8 AS retained_bytes,
    pg_wal_lsn_diff({_HERE}, '0/0')::float8 AS current_wal_lsn,
    pg_wal_lsn_diff(COALESCE(confirmed_flush_lsn, '0/0'), '0/0')::float8 AS confirmed_flush_lsn,
    {{v13}}
FROM pg_replication_slots
ORDER BY slot_name
"""
# PostgreSQL 13 added wal_status and safe_wal_size (max_slot_wal_keep_size).
SQL_V13 = _SQL.format(v13="safe_wal_size, wal_status")
SQL_OLD = _SQL.format(v13="NULL::int8 AS safe_wal_size, NULL::text AS wal_status")

DATABASE_LABELS = ["slot_name", "database", "server"]
SLOT_LABELS = ["slot_name", "slot_type", "server"]


@dataclass
class ReplicationSlotsCollector:
    name: str = "replication_slots"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        sql = SQL_V13 if ctx.server_version_num >= 130000 else SQL_OLD
        return {"slots": query(conn, sql)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult(families=build_families(rows["slots"], ctx.server))


def _text(value: Any, default: str) -> str:
    return default if value is None else str(value)


def build_families(slots: list[Row], server: str) -> list[Metric]:
    active = GaugeMetricFamily(
        "pg_replication_slots_active",
        "Flag indicating if the slot is active",
        labels=DATABASE_LABELS,
    )
    retained = GaugeMetricFamily(
        "pg_replication_slots_pg_wal_lsn_diff",
        "Replication lag in bytes: WAL retained by the slot (current position - restart_lsn)",
        labels=DATABASE_LABELS,
    )
    current = GaugeMetricFamily(
        "pg_replication_slots_slot_current_wal_lsn", "current wal lsn value", labels=SLOT_LABELS
    )
    flushed = GaugeMetricFamily(
        "pg_replication_slots_slot_confirmed_flush_lsn",
        "last lsn confirmed flushed to the replication slot",
        labels=SLOT_LABELS,
    )
    is_active = GaugeMetricFamily(
        "pg_replication_slots_slot_is_active",
        "whether the replication slot is active or not",
        labels=SLOT_LABELS,
    )
    safe = GaugeMetricFamily(
        "pg_replication_slots_safe_wal_size_bytes",
        "number of bytes that can be written to WAL such that this slot is not in danger "
        "of getting in state lost",
        labels=SLOT_LABELS,
    )
    status = GaugeMetricFamily(
        "pg_replication_slots_wal_status",
        "availability of WAL files claimed by this slot",
        labels=[*SLOT_LABELS, "wal_status"],
    )
    for row in slots:
        by_database = [_text(row.get("slot_name"), ""), _text(row.get("database"), ""), server]
        by_type = [
            _text(row.get("slot_name"), "unknown"),
            _text(row.get("slot_type"), "unknown"),
            server,
        ]
        flag = row.get("active")
        if flag is not None:
            active.add_metric(by_database, 1.0 if flag else 0.0)
            is_active.add_metric(by_type, 1.0 if flag else 0.0)
        if row.get("retained_bytes") is not None:
            retained.add_metric(by_database, float(row["retained_bytes"]))
        if row.get("current_wal_lsn") is not None:
            current.add_metric(by_type, float(row["current_wal_lsn"]))
        if flag and row.get("confirmed_flush_lsn") is not None:
            flushed.add_metric(by_type, float(row["confirmed_flush_lsn"]))
        if row.get("safe_wal_size") is not None:
            safe.add_metric(by_type, float(row["safe_wal_size"]))
        if row.get("wal_status") is not None:
            status.add_metric([*by_type, str(row["wal_status"])], 1.0)
    return [active, retained, current, flushed, is_active, safe, status]


def create(_settings: Settings) -> ReplicationSlotsCollector:
    return ReplicationSlotsCollector()
