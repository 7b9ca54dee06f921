"""pg_stat_archiver: WAL segments archived, failures, and the age of the last success.

Names and types are postgres_exporter's (``pg_stat_archiver_archived_count`` and
``..._failed_count`` counters, ``..._last_archive_age`` gauge in seconds). A failing
``archive_command`` keeps every unarchived segment in ``pg_wal``, so a growing
``failed_count`` with a growing ``last_archive_age`` is a disk-full warning. The age is
computed by the server (``now() - last_archived_time``) and is absent until something
has been archived (postgres_exporter 0.11.1 printed NaN there; its current release
omits it, as here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

SQL = """
SELECT archived_count, failed_count,
    EXTRACT(EPOCH FROM now() - last_archived_time)::float8 AS last_archive_age
FROM pg_stat_archiver
"""


@dataclass
class ArchiverCollector:
    name: str = "archiver"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        return {"archiver": query(conn, SQL)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult(families=build_families(rows["archiver"]))


def build_families(rows: list[Row]) -> list[Metric]:
    row = rows[0] if rows else {}
    archived = CounterMetricFamily(
        "pg_stat_archiver_archived_count",
        "Number of WAL files that have been successfully archived",
    )
    failed = CounterMetricFamily(
        "pg_stat_archiver_failed_count", "Number of failed attempts for archiving WAL files"
    )
    age = GaugeMetricFamily(
        "pg_stat_archiver_last_archive_age",
        "Time in seconds since last WAL segment was successfully archived",
    )
    for fam, column in ((archived, "archived_count"), (failed, "failed_count")):
        if row.get(column) is not None:
            fam.add_metric([], float(row[column]))
    if row.get("last_archive_age") is not None:
        # A segment archived after the poll's now() would show a tiny negative age.
        age.add_metric([], max(0.0, float(row["last_archive_age"])))
    return [archived, failed, age]


def create(_settings: Settings) -> ArchiverCollector:
    return ArchiverCollector()
