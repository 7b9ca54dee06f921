"""postgres_exporter's pg_stat_progress_vacuum_* families, built from the progress rows.

postgres_exporter's current release names a vacuum in flight by ``datname`` and
``relname`` only, with a one-hot ``pg_stat_progress_vacuum_phase{phase}`` over its seven
phase names, ``heap_blks`` for the table's size and ``index_vacuums`` for the cycles.
Those names win over dbpulse's older ones (``heap_blks_total``, ``index_vacuum_count``);
dbpulse's own vacuum families (ratio, elapsed time, PostgreSQL 17's byte and index
counters) keep their ``pid`` and ``phase`` labels. ``max_dead_tuples``/``num_dead_tuples``
are served where the server has those columns (up to 16): on 17 the view counts bytes,
which dbpulse serves as ``*_dead_tuple_bytes`` rather than under a tuple count's name.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.sidecar.base import Row

# postgres_exporter's phase labels, in pg_stat_progress_vacuum's own order.
PHASES = (
    "initializing",
    "scanning heap",
    "vacuuming indexes",
    "vacuuming heap",
    "cleaning up indexes",
    "truncating heap",
    "performing final cleanup",
)
# (row column, family suffix, help)
COLUMNS = (
    ("heap_blks_total", "heap_blks", "heap blocks in the table being vacuumed"),
    ("heap_blks_scanned", "heap_blks_scanned", "heap blocks scanned so far"),
    ("heap_blks_vacuumed", "heap_blks_vacuumed", "heap blocks vacuumed so far"),
    ("index_vacuum_count", "index_vacuums", "completed index vacuum cycles"),
    ("max_dead_tuples", "max_dead_tuples", "dead tuples that fit before an index cycle (<=16)"),
    ("num_dead_tuples", "num_dead_tuples", "dead tuples collected so far (<=16)"),
)
LABELS = ["datname", "relname"]


def vacuum_families(rows: list[Row]) -> list[Metric]:
    """One series per vacuum in flight (the first row of a datname/relname pair wins)."""
    seen: dict[tuple[str, str], Row] = {}
    for row in rows:
        key = (_text(row.get("datname")), _text(row.get("relname")))
        seen.setdefault(key, row)
    phase = GaugeMetricFamily(
        "pg_stat_progress_vacuum_phase",
        "1 for the vacuum's current phase, 0 for the others",
        labels=[*LABELS, "phase"],
    )
    families: list[Metric] = [phase]
    for (datname, relname), row in seen.items():
        for name in PHASES:
            phase.add_metric([datname, relname, name], 1.0 if row.get("phase") == name else 0.0)
    for column, suffix, doc in COLUMNS:
        if rows and not any(column in row for row in rows):
            continue  # a column this server version does not have
        fam = GaugeMetricFamily(f"pg_stat_progress_vacuum_{suffix}", doc, labels=LABELS)
        for key, row in seen.items():
            if row.get(column) is not None:  # NULL: not visible to this role, not a 0
                fam.add_metric(list(key), float(row[column]))
        families.append(fam)
    return families


def _text(value: object) -> str:
    return "" if value is None else str(value)
