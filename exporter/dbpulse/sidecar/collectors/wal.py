"""pg_wal: how many WAL segment files the server keeps and their total size.

``pg_ls_waldir()`` may be executed only by superusers and members of ``pg_monitor``
(or roles granted EXECUTE on it). Without that right the collector asks
``has_function_privilege`` first instead of failing: the families are simply absent and
a notice, logged once, says which GRANT brings them, while the rest of the poll goes on
(a permission error inside the poll's transaction would otherwise abort the collector's
transaction). Only segment files (24 hex digits) are counted, not ``.history`` or
``.partial`` files or ``archive_status``, like postgres_exporter's ``wal`` collector,
whose names (``pg_wal_segments``, ``pg_wal_size_bytes``) these are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

SQL_ALLOWED = "SELECT has_function_privilege('pg_ls_waldir()', 'EXECUTE') AS allowed"
SQL = """
SELECT count(*) AS segments, COALESCE(sum(size), 0)::int8 AS size_bytes
FROM pg_ls_waldir()
WHERE name ~ '^[0-9A-F]{24}$'
"""
NO_PERMISSION = (
    "wal collector: this role may not run pg_ls_waldir(), so pg_wal_segments and "
    "pg_wal_size_bytes are not exported; GRANT pg_monitor TO <dbpulse role> brings them"
)


@dataclass
class WalCollector:
    name: str = "wal"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        allowed = query(conn, SQL_ALLOWED)
        if not (allowed and allowed[0].get("allowed")):
            return {"wal": [], "denied": [{}]}
        return {"wal": query(conn, SQL), "denied": []}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        notices = [NO_PERMISSION] if rows.get("denied") else []
        return BuildResult(families=build_families(rows["wal"]), notices=notices)


def build_families(rows: list[Row]) -> list[Metric]:
    if not rows:
        return []
    row = rows[0]
    families: list[Metric] = []
    for column, name, doc in (
        ("segments", "pg_wal_segments", "Number of WAL segments"),
        ("size_bytes", "pg_wal_size_bytes", "Total size of WAL segments"),
    ):
        fam = GaugeMetricFamily(name, doc)
        fam.add_metric([], float(row.get(column) or 0))
        families.append(fam)
    return families


def create(_settings: Settings) -> WalCollector:
    return WalCollector()
