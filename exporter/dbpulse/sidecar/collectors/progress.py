"""pg_stat_progress_*: index builds, vacuums, analyzes, clusters and COPYs in flight.

Every row becomes one series per counter, labelled with its pid so that two operations
on one table stay apart; the series end with the operation.

Relation names: a progress view lists operations in *every* database, but ``pg_class``
only describes the database dbpulse is connected to (and ``relid::regclass`` would
resolve an OID against the wrong catalog). Names are resolved only for rows of the
current database; elsewhere ``relname`` is the relation's OID as text. Also, a
non-concurrent CREATE INDEX has not committed its index yet, so the index name is the
OID (or empty while ``index_relid`` is still 0) until the build finishes. Elapsed time
comes from ``pg_stat_activity.query_start`` (the statement, which matters for CREATE
INDEX CONCURRENTLY's several transactions), falling back to ``xact_start``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query
from dbpulse.sidecar.collectors.progress_ratio import progress_ratio
from dbpulse.sidecar.collectors.progress_vacuum import vacuum_families
from dbpulse.sidecar.facts import Facts, IndexBuild
from dbpulse.tracecontext import SQL_PATTERN

__all__ = ["ProgressCollector", "build_families", "create", "progress_ratio", "queries_for"]


def _name(oid_column: str, alias: str) -> str:
    """Name of a relation of the current database, else its OID ('' for OID 0)."""
    return f"""COALESCE(
        (SELECT {alias}.relname FROM pg_class {alias}
         WHERE {alias}.oid = p.{oid_column}
           AND p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())),
        NULLIF(p.{oid_column}, 0)::text, '')"""


def _progress_sql(view: str, columns: str, *, index: bool = False) -> str:
    index_name = f", {_name('index_relid', 'ci')} AS index_relname" if index else ""
    return f"""
SELECT p.pid, p.datname, {_name("relid", "c")} AS relname{index_name}, {columns},
    EXTRACT(EPOCH FROM now() - COALESCE(a.query_start, a.xact_start))::float8
        AS elapsed_seconds,
    substring(a.query from {SQL_PATTERN}) AS traceparent
FROM {view} p
LEFT JOIN pg_stat_activity a ON a.pid = p.pid
ORDER BY p.pid
"""


# PostgreSQL 12+.
SQL_CREATE_INDEX = _progress_sql(
    "pg_stat_progress_create_index",
    "p.command, p.phase, p.lockers_total, p.lockers_done, p.blocks_total, p.blocks_done,"
    " p.tuples_total, p.tuples_done, p.partitions_total, p.partitions_done",
    index=True,
)
# 9.6-16; 17 replaced the dead-tuple counters by dead-item counters and added indexes_*.
SQL_VACUUM_OLD = _progress_sql(
    "pg_stat_progress_vacuum",
    "p.phase, p.heap_blks_total, p.heap_blks_scanned, p.heap_blks_vacuumed,"
    " p.index_vacuum_count, p.max_dead_tuples, p.num_dead_tuples",
)
SQL_VACUUM_V17 = _progress_sql(
    "pg_stat_progress_vacuum",
    "p.phase, p.heap_blks_total, p.heap_blks_scanned, p.heap_blks_vacuumed,"
    " p.index_vacuum_count, p.max_dead_tuple_bytes, p.dead_tuple_bytes, p.num_dead_item_ids,"
    " p.indexes_total, p.indexes_processed",
)
# PostgreSQL 13+.
SQL_ANALYZE = _progress_sql(
    "pg_stat_progress_analyze",
    "p.phase, p.sample_blks_total, p.sample_blks_scanned, p.ext_stats_total,"
    " p.ext_stats_computed, p.child_tables_total, p.child_tables_done",
)
# PostgreSQL 12+ (CLUSTER and VACUUM FULL).
SQL_CLUSTER = _progress_sql(
    "pg_stat_progress_cluster",
    "p.phase, p.heap_tuples_scanned, p.heap_tuples_written, p.heap_blks_total,"
    " p.heap_blks_scanned, p.index_rebuild_count",
)
# PostgreSQL 14+; 17 added tuples_skipped.
SQL_COPY_V14 = _progress_sql(
    "pg_stat_progress_copy",
    "p.command, p.type, p.bytes_processed, p.bytes_total, p.tuples_processed, p.tuples_excluded",
)
SQL_COPY_V17 = _progress_sql(
    "pg_stat_progress_copy",
    "p.command, p.type, p.bytes_processed, p.bytes_total, p.tuples_processed,"
    " p.tuples_excluded, p.tuples_skipped",
)


@dataclass(frozen=True)
class View:
    """One progress view: its metric prefix, labels and exported columns."""

    key: str
    labels: tuple[str, ...]
    # (column, help); the metric is pg_stat_progress_<key>_<column>
    columns: tuple[tuple[str, str], ...]


_COMMON = ("datname", "relname", "pid")
VIEWS = (
    View(
        "create_index",
        ("datname", "relname", "index_relname", "pid", "command", "phase"),
        (
            ("blocks_done", "blocks processed in the current phase"),
            ("blocks_total", "blocks to process in the current phase"),
            ("tuples_done", "tuples processed in the current phase"),
            ("tuples_total", "tuples to process in the current phase"),
            ("lockers_done", "lockers already waited for"),
            ("lockers_total", "lockers to wait for, when waiting"),
            ("partitions_done", "partitions finished"),
            ("partitions_total", "partitions to build"),
        ),
    ),
    View(
        "vacuum",
        (*_COMMON, "phase"),
        # heap blocks, index cycles and dead tuples: postgres_exporter's families
        # (progress_vacuum.py); these are the ones it does not have.
        (
            ("max_dead_tuple_bytes", "dead tuple memory before an index cycle (17+)"),
            ("dead_tuple_bytes", "dead tuple memory used since the last index cycle (17+)"),
            ("num_dead_item_ids", "dead item identifiers collected (17+)"),
            ("indexes_total", "indexes to vacuum or clean up (17+)"),
            ("indexes_processed", "indexes vacuumed or cleaned up (17+)"),
        ),
    ),
    View(
        "analyze",
        (*_COMMON, "phase"),
        (
            ("sample_blks_total", "heap blocks to sample"),
            ("sample_blks_scanned", "heap blocks sampled"),
            ("ext_stats_total", "extended statistics to compute"),
            ("ext_stats_computed", "extended statistics computed"),
            ("child_tables_total", "child tables to process"),
            ("child_tables_done", "child tables processed"),
        ),
    ),
    View(
        "cluster",
        (*_COMMON, "phase"),
        (
            ("heap_tuples_scanned", "heap tuples scanned"),
            ("heap_tuples_written", "heap tuples written"),
            ("heap_blks_total", "heap blocks in the table"),
            ("heap_blks_scanned", "heap blocks scanned"),
            ("index_rebuild_count", "indexes rebuilt"),
        ),
    ),
    View(
        "copy",
        (*_COMMON, "command", "type"),
        (
            ("bytes_processed", "bytes processed"),
            ("bytes_total", "size of the source file (0 when unknown)"),
            ("tuples_processed", "tuples processed"),
            ("tuples_excluded", "tuples excluded by the WHERE clause"),
            ("tuples_skipped", "tuples skipped for malformed input (17+)"),
        ),
    ),
)


def queries_for(server_version_num: int) -> dict[str, str]:
    """The views this server has, each with the SQL shaped for its version."""
    v = server_version_num
    sql: dict[str, str] = {}
    if v >= 120000:
        sql["create_index"] = SQL_CREATE_INDEX
    sql["vacuum"] = SQL_VACUUM_V17 if v >= 170000 else SQL_VACUUM_OLD
    if v >= 130000:
        sql["analyze"] = SQL_ANALYZE
    if v >= 120000:
        sql["cluster"] = SQL_CLUSTER
    if v >= 140000:
        sql["copy"] = SQL_COPY_V17 if v >= 170000 else SQL_COPY_V14
    return sql


@dataclass
class ProgressCollector:
    name: str = "progress"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        return {key: query(conn, sql) for key, sql in queries_for(ctx.server_version_num).items()}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        builds = None if "create_index" not in rows else index_builds(rows["create_index"])
        return BuildResult(families=build_families(rows), facts=Facts(index_builds=builds))


def index_builds(rows: list[Row]) -> tuple[IndexBuild, ...]:
    """The index builds in flight, typed for tracing (pure)."""
    return tuple(
        IndexBuild(
            pid=int(row.get("pid") or 0),
            datname=_str(row.get("datname")),
            relname=_str(row.get("relname")),
            index_relname=_str(row.get("index_relname")),
            command=_str(row.get("command")) or "CREATE INDEX",
            phase=_str(row.get("phase")),
            elapsed_seconds=max(0.0, float(row.get("elapsed_seconds") or 0.0)),
            ratio=progress_ratio("create_index", row),
            traceparent=_str(row.get("traceparent")) or None,
        )
        for row in rows
    )


def _str(value: object) -> str:
    return "" if value is None else str(value)


def _labels(view: View, row: Row) -> list[str]:
    return ["" if row.get(label) is None else str(row[label]) for label in view.labels]


def build_families(rows: Rows) -> list[Metric]:
    families: list[Metric] = []
    for view in VIEWS:
        if view.key not in rows:  # the server has no such view
            continue
        # Families are emitted even with no operation in flight, so their HELP/TYPE is
        # always exposed and a dashboard can tell "nothing running" from "not collected".
        view_rows = rows[view.key]
        prefix = f"pg_stat_progress_{view.key}"
        labels = list(view.labels)
        for column, doc in view.columns:
            fam = GaugeMetricFamily(f"{prefix}_{column}", doc, labels=labels)
            for row in view_rows:
                if row.get(column) is not None:
                    fam.add_metric(_labels(view, row), float(row[column]))
            families.append(fam)
        ratio = GaugeMetricFamily(
            f"{prefix}_ratio",
            "fraction of the current phase done (0 when not measurable)",
            labels=labels,
        )
        elapsed = GaugeMetricFamily(
            f"{prefix}_elapsed_seconds",
            "seconds since the operation's statement started",
            labels=labels,
        )
        for row in view_rows:
            ratio.add_metric(_labels(view, row), progress_ratio(view.key, row))
            if row.get("elapsed_seconds") is not None:
                elapsed.add_metric(_labels(view, row), max(0.0, float(row["elapsed_seconds"])))
        families.append(ratio)
        families.append(elapsed)
        if view.key == "vacuum":
            families.extend(vacuum_families(view_rows))
    return families


def create(_settings: Settings) -> ProgressCollector:
    return ProgressCollector()
