"""Schema hazards that migrations leave behind, read from the connected database's catalog.

Invalid indexes (a failed ``CREATE INDEX CONCURRENTLY``), constraints added ``NOT VALID``
and never validated, foreign keys without an index, unused indexes and tables that are
read by sequential scans. Every query reads catalogs and statistics views only (no
``pg_relation_size``, which would take a lock on each relation), so it never waits on a
migration's ``ACCESS EXCLUSIVE`` lock. Each family is bounded to ``max_series`` rows, worst
first, and ``pg_migration_findings`` reports the true count so the bound hides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import MigrationsSettings, Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

_USER_SCHEMA = "n.nspname NOT IN ('pg_catalog', 'information_schema')"

# The first len(conkey) columns of an index, as a 1-based array (int2vector is 0-based).
_LEADING = "(string_to_array(x.indkey::text, ' ')::int2[])[1:cardinality({conkey})]"
# An index serves a foreign key when its leading columns are exactly the key's columns
# (in any order) and it is valid and not partial.
_INDEX_SERVES_FK = f"""
    x.indrelid = {{con}}.conrelid AND x.indisvalid AND x.indpred IS NULL
    AND {_LEADING.format(conkey="{con}.conkey")} @> {{con}}.conkey
    AND {_LEADING.format(conkey="{con}.conkey")} <@ {{con}}.conkey
"""

SQL_DATABASE = "SELECT current_database() AS datname"

# An index being built right now is invalid too; the progress collector reports those.
SQL_INVALID_INDEXES = f"""
SELECT current_database() AS datname, n.nspname AS schemaname, t.relname,
       i.relname AS indexrelname, x.indisunique AS is_unique, count(*) OVER () AS total
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE NOT x.indisvalid AND {_USER_SCHEMA}
  AND NOT EXISTS (
      SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = x.indexrelid)
ORDER BY n.nspname, t.relname, i.relname
LIMIT %(limit)s
"""

# conparentid <> 0 marks a partition's clone of its parent's constraint: report it once.
SQL_NOT_VALID_CONSTRAINTS = f"""
SELECT current_database() AS datname, n.nspname AS schemaname, t.relname, c.conname,
       c.contype::text AS contype, count(*) OVER () AS total
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE NOT c.convalidated AND c.contype IN ('c', 'f') AND c.conparentid = 0 AND {_USER_SCHEMA}
ORDER BY n.nspname, t.relname, c.conname
LIMIT %(limit)s
"""

SQL_FK_MISSING_INDEX = f"""
SELECT current_database() AS datname, n.nspname AS schemaname, t.relname, c.conname,
       array(
           SELECT a.attname::text
           FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
           ORDER BY k.ord
       ) AS columns,
       count(*) OVER () AS total
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE c.contype = 'f' AND c.conparentid = 0 AND {_USER_SCHEMA}
  AND NOT EXISTS (SELECT 1 FROM pg_index x WHERE {_INDEX_SERVES_FK.format(con="c")})
ORDER BY n.nspname, t.relname, c.conname
LIMIT %(limit)s
"""

# Unique and primary-key indexes enforce something even when never scanned; indexes
# backing an exclusion constraint or serving a foreign key are needed the same way.
# Size comes from relpages (set by CREATE INDEX and VACUUM) to stay lock-free.
SQL_UNUSED_INDEXES = f"""
SELECT * FROM (
    SELECT current_database() AS datname, s.schemaname, s.relname, s.indexrelname,
           i.relpages::bigint * current_setting('block_size')::bigint AS size_bytes,
           count(*) OVER () AS total
    FROM pg_stat_user_indexes s
    JOIN pg_index x ON x.indexrelid = s.indexrelid
    JOIN pg_class i ON i.oid = s.indexrelid
    WHERE s.idx_scan = 0 AND x.indisvalid AND NOT x.indisunique AND NOT x.indisprimary
      AND i.relpages::bigint * current_setting('block_size')::bigint >= %(min_bytes)s
      AND NOT EXISTS (SELECT 1 FROM pg_constraint e WHERE e.conindid = x.indexrelid)
      AND NOT EXISTS (
          SELECT 1 FROM pg_constraint f
          WHERE f.contype = 'f' AND {_INDEX_SERVES_FK.format(con="f")})
) u
ORDER BY size_bytes DESC, schemaname, relname, indexrelname
LIMIT %(limit)s
"""

SQL_SEQ_SCAN_HEAVY = """
SELECT current_database() AS datname, schemaname, relname, seq_scan, seq_tup_read,
       n_live_tup, count(*) OVER () AS total
FROM pg_stat_user_tables
WHERE seq_scan >= %(min_scans)s AND n_live_tup >= %(min_rows)s
ORDER BY seq_tup_read DESC, schemaname, relname
LIMIT %(limit)s
"""

# (rows key, metric name, help, label columns, value column or None for 1).
_FAMILIES: tuple[tuple[str, str, str, tuple[str, ...], str | None], ...] = (
    (
        "invalid_indexes",
        "pg_index_invalid",
        "1 per INVALID index (left by a failed CREATE INDEX CONCURRENTLY); "
        "drop it and build it again",
        ("datname", "schemaname", "relname", "indexrelname"),
        None,
    ),
    (
        "not_valid_constraints",
        "pg_constraint_not_valid",
        "1 per constraint added NOT VALID and never validated; "
        "run ALTER TABLE ... VALIDATE CONSTRAINT",
        ("datname", "schemaname", "relname", "conname"),
        None,
    ),
    (
        "fk_missing_index",
        "pg_foreign_key_missing_index",
        "1 per foreign key whose columns lead no valid index; "
        "deletes on the referenced table scan this table",
        ("datname", "schemaname", "relname", "conname"),
        None,
    ),
    (
        "unused_indexes",
        "pg_index_unused_bytes",
        "size of a non-unique index with no scans since statistics were reset",
        ("datname", "schemaname", "relname", "indexrelname"),
        "size_bytes",
    ),
    (
        "seq_scan_heavy",
        "pg_table_seq_scan_heavy",
        "sequential scans since statistics reset, for tables over the seq-scan thresholds",
        ("datname", "schemaname", "relname"),
        "seq_scan",
    ),
)


@dataclass
class MigrationsCollector:
    config: MigrationsSettings
    name: str = "migrations"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        cfg = self.config
        limit = {"limit": cfg.max_series}
        return {
            "database": query(conn, SQL_DATABASE),
            "invalid_indexes": query(conn, SQL_INVALID_INDEXES, limit),
            "not_valid_constraints": query(conn, SQL_NOT_VALID_CONSTRAINTS, limit),
            "fk_missing_index": query(conn, SQL_FK_MISSING_INDEX, limit),
            "unused_indexes": query(
                conn, SQL_UNUSED_INDEXES, {**limit, "min_bytes": cfg.unused_index_min_bytes}
            ),
            "seq_scan_heavy": query(
                conn,
                SQL_SEQ_SCAN_HEAVY,
                {**limit, "min_scans": cfg.seq_scan_min_scans, "min_rows": cfg.seq_scan_min_rows},
            ),
        }

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return build_result(rows, self.config.max_series)


def build_result(rows: Rows, max_series: int) -> BuildResult:
    """Every family, always (HELP/TYPE show even when the schema is clean); pure."""
    datname = str(rows["database"][0]["datname"]) if rows.get("database") else ""
    families: list[Metric] = []
    findings = GaugeMetricFamily(
        "pg_migration_findings",
        "hazards found per check, before the per-family series bound",
        labels=["datname", "check"],
    )
    notices: list[str] = []
    for key, metric, doc, labels, value_column in _FAMILIES:
        family = GaugeMetricFamily(metric, doc, labels=list(labels))
        found = rows.get(key, [])
        for row in found[:max_series]:
            value = 1.0 if value_column is None else float(row.get(value_column) or 0)
            family.add_metric([str(row.get(label) or "") for label in labels], value)
        families.append(family)
        total = int(found[0].get("total") or len(found)) if found else 0
        findings.add_metric([datname, key], float(total))
        if total > max_series:
            notices.append(
                f"{metric}: {total} found, exporting the first {max_series} "
                "(raise collectors.migrations.max_series to see more)"
            )
    families.append(findings)
    return BuildResult(
        families=families, debug={k: rows.get(k, []) for k, *_ in _FAMILIES}, notices=notices
    )


def create(settings: Settings) -> MigrationsCollector:
    return MigrationsCollector(settings.collectors.migrations)
