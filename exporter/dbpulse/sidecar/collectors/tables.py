"""Per-table and per-index statistics and I/O of the connected database, under a budget.

Reads ``pg_stat_user_tables``, ``pg_statio_user_tables`` and ``pg_stat_user_indexes``
with the catalog's page counts (sizes) and planner statistics (row widths, for the bloat
estimate) in two queries, and exports postgres_exporter's ``pg_stat_user_tables_*``,
``pg_statio_user_tables_*`` and ``pg_stat_user_indexes_*`` families for the worst
tables only (``tables_select``: ranking, budget, hold). With discovery it runs in every
database of the target, and the target's budget is split among them by what each wants
(``sidecar/allotment.py``).

Sizes come from ``pg_class.relpages`` (kept by VACUUM, ANALYZE and CREATE INDEX) rather
than ``pg_table_size()``: the functions open every relation under a lock and would queue
behind a migration's ``ACCESS EXCLUSIVE``; the catalog never waits. A table not yet
vacuumed or analyzed therefore shows size 0 until autovacuum first visits it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily

from dbpulse.settings import Settings
from dbpulse.sidecar.allotment import Wants
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query
from dbpulse.sidecar.collectors.tables_families import bloat_bytes, build_families
from dbpulse.sidecar.collectors.tables_select import (
    costs,
    indexes_by_table,
    overdue,
    rank,
    select,
    wanted,
)

_BLOCK = "current_setting('block_size')::int8"


def _option(name: str) -> str:
    # A per-table storage parameter (ALTER TABLE ... SET (name = ...)), else NULL.
    return (
        "(SELECT o.option_value FROM pg_options_to_table(c.reloptions) o "
        f"WHERE o.option_name = '{name}')"
    )


# Every column read exists on PostgreSQL 13 through 18 (the newer ones, such as 16's
# last_seq_scan or 18's total_vacuum_time, are not exported), so one statement serves
# every supported version.
SQL_TABLES = f"""
SELECT current_database() AS datname, s.relid::int8 AS relid,
       s.schemaname::text AS schemaname, s.relname::text AS relname,
       s.seq_scan, s.seq_tup_read, s.idx_scan, s.idx_tup_fetch,
       s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_tup_hot_upd,
       s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
       COALESCE(EXTRACT(EPOCH FROM s.last_vacuum), 0)::float8 AS last_vacuum,
       COALESCE(EXTRACT(EPOCH FROM s.last_autovacuum), 0)::float8 AS last_autovacuum,
       COALESCE(EXTRACT(EPOCH FROM s.last_analyze), 0)::float8 AS last_analyze,
       COALESCE(EXTRACT(EPOCH FROM s.last_autoanalyze), 0)::float8 AS last_autoanalyze,
       s.vacuum_count, s.autovacuum_count, s.analyze_count, s.autoanalyze_count,
       io.heap_blks_read, io.heap_blks_hit, io.idx_blks_read, io.idx_blks_hit,
       io.toast_blks_read, io.toast_blks_hit, io.tidx_blks_read, io.tidx_blks_hit,
       {_BLOCK} AS block_size,
       c.reltuples::float8 AS reltuples,
       c.relpages::int8 * {_BLOCK} AS heap_bytes,
       (COALESCE(t.relpages, 0)::int8 + COALESCE((
           SELECT sum(ti.relpages) FROM pg_index tx JOIN pg_class ti ON ti.oid = tx.indexrelid
           WHERE tx.indrelid = c.reltoastrelid), 0)::int8) * {_BLOCK} AS toast_bytes,
       COALESCE((
           SELECT sum(i.relpages) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           WHERE x.indrelid = s.relid), 0)::int8 * {_BLOCK} AS index_bytes,
       COALESCE({_option("autovacuum_vacuum_threshold")},
                current_setting('autovacuum_vacuum_threshold'))::float8 AS vacuum_threshold,
       COALESCE({_option("autovacuum_vacuum_scale_factor")},
                current_setting('autovacuum_vacuum_scale_factor'))::float8
           AS vacuum_scale_factor,
       COALESCE({_option("fillfactor")}, '100')::float8 AS fillfactor,
       w.row_width
FROM pg_stat_user_tables s
JOIN pg_statio_user_tables io ON io.relid = s.relid
JOIN pg_class c ON c.oid = s.relid
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
LEFT JOIN (
    SELECT schemaname, tablename, sum((1 - null_frac) * avg_width)::float8 AS row_width
    FROM pg_stats WHERE NOT inherited
    GROUP BY schemaname, tablename
) w ON w.schemaname = s.schemaname AND w.tablename = s.relname
"""

SQL_INDEXES = f"""
SELECT current_database() AS datname, s.relid::int8 AS relid,
       s.schemaname::text AS schemaname, s.relname::text AS relname,
       s.indexrelname::text AS indexrelname, s.idx_scan, s.idx_tup_read, s.idx_tup_fetch,
       c.relpages::int8 * {_BLOCK} AS size_bytes
FROM pg_stat_user_indexes s
JOIN pg_class c ON c.oid = s.indexrelid
"""

DROPPED_NOTICE = (
    "tables: tables that rank among the worst did not fit in the series budget "
    "(collectors.tables.max_series, shared by the target's databases); raise it or "
    "lower top_n"
)


@dataclass(frozen=True)
class TablesState:
    """What the tables collector carries from one poll to the next."""

    # selected relid -> when it last ranked in the top-N
    last_in_top: Mapping[int, float] = field(default_factory=dict)
    # what this database would export with the target's whole budget; discovery splits
    # the budget among the databases by it (sidecar/allotment.py)
    wants: Wants | None = None


@dataclass(frozen=True)
class TablesCollector:
    name: str = "tables"
    top_n: int = 20
    max_series: int = 1200
    hold_seconds: float = 600.0

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        return {"tables": query(conn, SQL_TABLES), "indexes": query(conn, SQL_INDEXES)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        previous: TablesState = state or TablesState()
        tables = rows.get("tables", [])
        indexes = indexes_by_table(rows.get("indexes", []))
        cost = costs(tables, indexes)
        by_relid = {int(row["relid"]): row for row in tables}
        ranked = [int(row["relid"]) for row in rank(tables)]
        # With discovery, this database's part of the target's budget (allotment.py).
        top_n, budget = self.top_n, self.max_series
        if ctx.allotment is not None:
            top_n, budget = ctx.allotment.top_n, ctx.allotment.max_series
        selection = select(
            ranked,
            cost,
            previous.last_in_top,
            ctx.now,
            top_n=top_n,
            budget=budget,
            hold_seconds=self.hold_seconds,
        )
        wants = wanted(ranked, cost, top_n=self.top_n, max_series=self.max_series)
        chosen = [_with_sizes(by_relid[key]) for key in selection.keys]
        chosen_indexes = [index for key in selection.keys for index in indexes.get(key, [])]
        datname = str(tables[0]["datname"]) if tables else ""
        families = build_families(chosen, chosen_indexes)
        counted = GaugeMetricFamily(
            "dbpulse_tables_count",
            "user tables per database: exported (within the series budget) or omitted",
            labels=["datname", "state"],
        )
        if tables:
            counted.add_metric([datname, "exported"], float(len(chosen)))
            counted.add_metric([datname, "omitted"], float(len(tables) - len(chosen)))
        families.append(counted)
        notices = [DROPPED_NOTICE] if selection.dropped else []
        return BuildResult(
            families=families,
            debug={
                "generated_at": ctx.now,
                "datname": datname,
                "tables": len(tables),
                "budget": selection.budget,
                "used": selection.used,
                "top_n": top_n,
                "wants": {"tables": wants.items, "series": wants.series},
                "hold_seconds": self.hold_seconds,
                "selected": [
                    {
                        "schemaname": row.get("schemaname"),
                        "relname": row.get("relname"),
                        "in_top_n": int(row["relid"]) in selection.in_top,
                        "overdue_for_vacuum": overdue(row),
                        "n_dead_tup": row.get("n_dead_tup"),
                        "table_bytes": row.get("table_bytes"),
                        "index_bytes": row.get("index_bytes"),
                        "bloat_bytes": row.get("bloat_bytes"),
                        "series": cost[int(row["relid"])],
                    }
                    for row in chosen
                ],
            },
            notices=notices,
            state=TablesState(last_in_top=selection.last_in_top, wants=wants),
        )


def _with_sizes(row: Row) -> Row:
    """The row with the exported sizes: table (heap + TOAST) and estimated bloat."""
    heap = float(row.get("heap_bytes") or 0)
    block_size = int(row.get("block_size") or 8192)
    return {
        **row,
        "table_bytes": heap + float(row.get("toast_bytes") or 0),
        "bloat_bytes": bloat_bytes(row, block_size),
    }


def create(settings: Settings) -> TablesCollector:
    config = settings.collectors.tables
    return TablesCollector(
        top_n=config.top_n, max_series=config.max_series, hold_seconds=config.hold_seconds
    )
