"""The per-table and per-index families, under postgres_exporter's names (pure).

Names, types, labels and units follow postgres_exporter's ``stat_user_tables``,
``statio_user_tables`` and ``stat_user_indexes`` collectors: ``last_*`` are Unix epoch
seconds (0 when it never happened), sizes are bytes, the table counters have no
``_total`` (``http/barecounter.py``) while the index ones have it in their names.
``pg_table_bloat_bytes`` is dbpulse's own. Tables and indexes are labelled ``datname``,
``schemaname``, ``relname`` (and ``indexrelname``); postgres_exporter's index families
carry no ``datname``, which dbpulse adds because discovery exports several databases'
indexes side by side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.http.barecounter import BareCounter
from dbpulse.sidecar.base import Row

TABLE_LABELS = ["datname", "schemaname", "relname"]
INDEX_LABELS = ["datname", "schemaname", "relname", "indexrelname"]

# (column, family, help); counters since the statistics were last reset.
TABLE_COUNTERS = (
    ("seq_scan", "pg_stat_user_tables_seq_scan", "sequential scans initiated on this table"),
    ("seq_tup_read", "pg_stat_user_tables_seq_tup_read", "live rows fetched by sequential scans"),
    ("idx_scan", "pg_stat_user_tables_idx_scan", "index scans initiated on this table"),
    ("idx_tup_fetch", "pg_stat_user_tables_idx_tup_fetch", "live rows fetched by index scans"),
    ("n_tup_ins", "pg_stat_user_tables_n_tup_ins", "rows inserted"),
    ("n_tup_upd", "pg_stat_user_tables_n_tup_upd", "rows updated"),
    ("n_tup_del", "pg_stat_user_tables_n_tup_del", "rows deleted"),
    ("n_tup_hot_upd", "pg_stat_user_tables_n_tup_hot_upd", "rows HOT updated (no index update)"),
    (
        "vacuum_count",
        "pg_stat_user_tables_vacuum_count",
        "times this table was vacuumed manually (not counting VACUUM FULL)",
    ),
    (
        "autovacuum_count",
        "pg_stat_user_tables_autovacuum_count",
        "times this table was vacuumed by autovacuum",
    ),
    (
        "analyze_count",
        "pg_stat_user_tables_analyze_count",
        "times this table was analyzed manually",
    ),
    (
        "autoanalyze_count",
        "pg_stat_user_tables_autoanalyze_count",
        "times this table was analyzed by autovacuum",
    ),
    ("heap_blks_read", "pg_statio_user_tables_heap_blocks_read", "disk blocks read from the table"),
    ("heap_blks_hit", "pg_statio_user_tables_heap_blocks_hit", "buffer hits in the table"),
    (
        "idx_blks_read",
        "pg_statio_user_tables_idx_blocks_read",
        "disk blocks read from all indexes on the table",
    ),
    ("idx_blks_hit", "pg_statio_user_tables_idx_blocks_hit", "buffer hits in all its indexes"),
    (
        "toast_blks_read",
        "pg_statio_user_tables_toast_blocks_read",
        "disk blocks read from the table's TOAST table",
    ),
    ("toast_blks_hit", "pg_statio_user_tables_toast_blocks_hit", "buffer hits in its TOAST table"),
    (
        "tidx_blks_read",
        "pg_statio_user_tables_tidx_blocks_read",
        "disk blocks read from the TOAST table's indexes",
    ),
    (
        "tidx_blks_hit",
        "pg_statio_user_tables_tidx_blocks_hit",
        "buffer hits in the TOAST table's indexes",
    ),
)

TABLE_GAUGES = (
    ("n_live_tup", "pg_stat_user_tables_n_live_tup", "estimated live rows"),
    ("n_dead_tup", "pg_stat_user_tables_n_dead_tup", "estimated dead rows"),
    (
        "n_mod_since_analyze",
        "pg_stat_user_tables_n_mod_since_analyze",
        "estimated rows changed since the last analyze",
    ),
    (
        "last_vacuum",
        "pg_stat_user_tables_last_vacuum",
        "last manual vacuum (not VACUUM FULL), Unix seconds; 0 if never",
    ),
    (
        "last_autovacuum",
        "pg_stat_user_tables_last_autovacuum",
        "last vacuum by autovacuum, Unix seconds; 0 if never",
    ),
    (
        "last_analyze",
        "pg_stat_user_tables_last_analyze",
        "last manual analyze, Unix seconds; 0 if never",
    ),
    (
        "last_autoanalyze",
        "pg_stat_user_tables_last_autoanalyze",
        "last analyze by autovacuum, Unix seconds; 0 if never",
    ),
    (
        "index_bytes",
        "pg_stat_user_tables_index_size_bytes",
        "disk space of the table's indexes, from the catalog's page counts (lock-free)",
    ),
    (
        "table_bytes",
        "pg_stat_user_tables_table_size_bytes",
        "disk space of the table and its TOAST table, from the catalog's page counts (lock-free)",
    ),
    (
        "bloat_bytes",
        "pg_table_bloat_bytes",
        "estimated heap bytes beyond what the live rows need: the larger of the dead rows' "
        "share and the heap beyond the pages the live rows fill (planner statistics)",
    ),
)

# Already ending in _total in postgres_exporter, so prometheus_client's counter naming
# gives exactly its names in either exposition format.
INDEX_COUNTERS = (
    ("idx_scan", "pg_stat_user_indexes_idx_scans", "index scans initiated on this index"),
    ("idx_tup_read", "pg_stat_user_indexes_idx_tup_reads", "index entries returned by scans"),
    (
        "idx_tup_fetch",
        "pg_stat_user_indexes_idx_tup_fetches",
        "live table rows fetched by simple index scans using this index",
    ),
)

# A heap tuple's header (23 bytes, MAXALIGNed) and its line pointer; a page's header.
TUPLE_HEADER = 24
LINE_POINTER = 4
PAGE_HEADER = 24
MAXALIGN = 8


def bloat_bytes(row: Row, block_size: int) -> float:
    """Heap bytes beyond what the live rows need: a cheap, statistics-based estimate.

    Two estimates, the larger wins. The dead-row share of the heap (space VACUUM can
    reclaim), from the statistics counters. And with planner statistics (``row_width``:
    the columns' average widths, NULLs discounted; absent when never analyzed or when the
    role may not read the columns) the heap beyond the pages the live rows need: a row
    takes its MAXALIGNed header and data plus a line pointer, a page holds ``fillfactor``
    percent of its space. The second sees space freed by VACUUM but never returned.
    Never negative.
    """
    heap = float(row.get("heap_bytes") or 0)
    if heap <= 0:
        return 0.0
    dead = float(row.get("n_dead_tup") or 0)
    total = dead + float(row.get("n_live_tup") or 0)
    dead_share = heap * dead / total if total > 0 else 0.0
    width = row.get("row_width")
    if width is None:
        return dead_share
    live = float(row["reltuples"]) if row.get("reltuples") is not None else -1.0
    if live < 0:  # never vacuumed or analyzed (PostgreSQL 14+ says -1)
        live = float(row.get("n_live_tup") or 0)
    tuple_bytes = math.ceil((TUPLE_HEADER + float(width)) / MAXALIGN) * MAXALIGN + LINE_POINTER
    fillfactor = float(row.get("fillfactor") or 100) / 100.0
    per_page = max(1, int((block_size - PAGE_HEADER) * fillfactor // tuple_bytes))
    needed = math.ceil(live / per_page) * block_size
    return max(0.0, dead_share, heap - needed)


def _table_labels(row: Row) -> list[str]:
    return [str(row.get(label) or "") for label in TABLE_LABELS]


def build_families(tables: Sequence[Row], indexes: Sequence[Row]) -> list[Metric]:
    """Every family, always declared (HELP/TYPE show even with no table selected)."""
    families: list[Metric] = []
    for column, name, doc in TABLE_COUNTERS:
        # postgres_exporter's name has no _total (http/barecounter.py).
        counter = BareCounter(name, doc, TABLE_LABELS)
        for row in tables:
            counter.add_metric(_table_labels(row), float(row.get(column) or 0))
        families.append(counter)
    for column, name, doc in TABLE_GAUGES:
        gauge = GaugeMetricFamily(name, doc, labels=TABLE_LABELS)
        for row in tables:
            gauge.add_metric(_table_labels(row), float(row.get(column) or 0))
        families.append(gauge)
    for column, name, doc in INDEX_COUNTERS:
        index_counter = CounterMetricFamily(name, doc, labels=INDEX_LABELS)
        for row in indexes:
            values = [str(row.get(label) or "") for label in INDEX_LABELS]
            index_counter.add_metric(values, float(row.get(column) or 0))
        families.append(index_counter)
    return families
