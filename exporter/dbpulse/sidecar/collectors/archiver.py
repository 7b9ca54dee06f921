"""pg_stat_archiver: WAL segments archived, failures, and the age of the last success.

Names, types and labels are postgres_exporter's: ``pg_stat_archiver_archived_count``
and ``..._failed_count`` are counters named without ``_total`` (``BareCounter``, so
Prometheus stores them under exactly those names whichever format it negotiates), and
``..._last_archive_age`` is a gauge in seconds, all labelled ``server``. A failing
``archive_command`` keeps every unarchived segment in ``pg_wal``, so a growing
``failed_count`` with a growing ``last_archive_age`` is a disk-full warning. The age is
computed by the server (``now() - last_archived_time``); before anything was archived
it is NaN, as postgres_exporter 0.11.1 reports the NULL (the series exists, without a
value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.http.barecounter import BareCounter
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
        return BuildResult(families=build_families(rows["archiver"], ctx.server))


def build_families(rows: list[Row], server: str) -> list[Metric]:
    if not rows:
        return []
    row = rows[0]
    archived = BareCounter(
        "pg_stat_archiver_archived_count",
        "Number of WAL files that have been successfully archived",
        ["server"],
    )
    failed = BareCounter(
        "pg_stat_archiver_failed_count",
        "Number of failed attempts for archiving WAL files",
        ["server"],
    )
    age = GaugeMetricFamily(
        "pg_stat_archiver_last_archive_age",
        "Time in seconds since last WAL segment was successfully archived",
        labels=["server"],
    )
    for fam, column in ((archived, "archived_count"), (failed, "failed_count")):
        if row.get(column) is not None:
            fam.add_metric([server], float(row[column]))
    seconds = row.get("last_archive_age")
    # A segment archived after the poll's now() would show a tiny negative age.
    age.add_metric([server], math.nan if seconds is None else max(0.0, float(seconds)))
    return [archived, failed, age]


def create(_settings: Settings) -> ArchiverCollector:
    return ArchiverCollector()
