"""pg_stat_statements counter families: the selected statements and per-database totals."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.sidecar.base import Row

# (column, metric name without _total, help, scale)
FAMILIES = (
    ("calls", "pg_stat_statements_calls", "times the statement was executed", 1.0),
    (
        "total_ms",
        "pg_stat_statements_seconds",
        "time spent executing the statement (excludes planning)",
        0.001,
    ),
    ("rows", "pg_stat_statements_rows", "rows retrieved or affected", 1.0),
    (
        "blk_read_ms",
        "pg_stat_statements_block_read_seconds",
        "time the statement spent reading shared blocks (needs track_io_timing)",
        0.001,
    ),
    (
        "blk_write_ms",
        "pg_stat_statements_block_write_seconds",
        "time the statement spent writing shared blocks (needs track_io_timing)",
        0.001,
    ),
    ("shared_blks_hit", "pg_stat_statements_shared_blks_hit", "shared buffer hits", 1.0),
    (
        "shared_blks_read",
        "pg_stat_statements_shared_blks_read",
        "shared blocks read from disk or OS cache",
        1.0,
    ),
    (
        "temp_blks_written",
        "pg_stat_statements_temp_blks_written",
        "temporary blocks written (sorts and hashes spilling to disk)",
        1.0,
    ),
)


def build_families(selected: Sequence[Row], totals: Sequence[Row]) -> list[Metric]:
    """Counters for the selected statements and per-database totals over all of them."""
    families: list[Metric] = []
    labels = ["datname", "user", "queryid"]
    for column, name, doc, scale in FAMILIES:
        fam = CounterMetricFamily(name, doc, labels=labels)
        for row in selected:
            if row.get(column) is not None:
                values = [str(row.get("datname") or ""), str(row.get("user") or "")]
                fam.add_metric([*values, str(row["queryid"])], float(row[column]) * scale)
        families.append(fam)
    for column, name, doc, scale in (
        ("calls", "pg_stat_statements_all_calls", "executions of every statement", 1.0),
        (
            "total_ms",
            "pg_stat_statements_all_seconds",
            "execution time of every statement, exported or not",
            0.001,
        ),
    ):
        fam = CounterMetricFamily(name, doc, labels=["datname"])
        for row in totals:
            if row.get(column) is not None:
                fam.add_metric([str(row.get("datname") or "")], float(row[column]) * scale)
        families.append(fam)
    return families
