"""Query texts for the sidecar's slow-query spans, from pg_stat_statements by query_id.

pg_stat_statements keeps a statement's text with its constants replaced by ``$n`` and
is not cut at ``track_activity_query_size`` like ``pg_stat_activity.query``, so where
the running statement's ``query_id`` is there, that text is used. Utility statements
keep their literals in pg_stat_statements too, so the text is scrubbed and normalised
the same way before it is kept. ``pg_stat_statements(true)`` reads the server's whole
query-text file whatever the filter, so it is read only for query IDs not seen before
(cached, misses included, up to ``MAX_CACHED``), in a savepoint: a missing or unloaded
extension leaves the pg_stat_activity text in place and the poll unharmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from exporter.inprocess.fingerprint import normalize
from exporter.sidecar.base import Row, query
from exporter.sidecar.collectors.statements import TEXT_FETCH_MAX, scrub_text

__all__ = ["StatementTexts"]

MAX_CACHED = 2000
SQL_SCHEMA = """
SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""
SQL_TEXTS = """
SELECT DISTINCT ON (queryid) queryid, left(query, %(max)s) AS query
FROM {schema}.pg_stat_statements(true)
WHERE queryid = ANY(%(ids)s::int8[])
"""


@dataclass
class StatementTexts:
    """query_id -> normalised pg_stat_statements text (None: it had none)."""

    _cache: dict[int, str | None] = field(default_factory=dict)

    def fill(self, conn: psycopg.Connection[Row], rows: list[Row]) -> None:
        """Replace each row's ``query_text`` by pg_stat_statements' where it has one."""
        wanted = sorted(
            {int(r["query_id"]) for r in rows if r.get("query_id") is not None} - set(self._cache)
        )
        if wanted:
            self._fetch(conn, wanted)
        for row in rows:
            qid = row.get("query_id")
            text = self._cache.get(int(qid)) if qid is not None else None
            row["query_text_source"] = "pg_stat_statements" if text else "pg_stat_activity"
            if text:
                row["query_text"] = text

    def _fetch(self, conn: psycopg.Connection[Row], ids: list[int]) -> None:
        found: dict[int, str] = {}
        try:
            with conn.transaction():  # a savepoint: a failure here spares the poll
                schema = query(conn, SQL_SCHEMA)
                if schema:
                    statement = sql.SQL(SQL_TEXTS).format(
                        schema=sql.Identifier(str(schema[0]["schema"]))
                    )
                    for row in query(
                        conn, statement.as_string(conn), {"max": TEXT_FETCH_MAX, "ids": ids}
                    ):
                        if row.get("query"):
                            text = normalize(scrub_text(str(row["query"]), TEXT_FETCH_MAX))
                            found[int(row["queryid"])] = text[:2000]
        except psycopg.Error:
            return  # not cached: tried again with the next new slow statement
        if len(self._cache) + len(ids) > MAX_CACHED:
            self._cache.clear()  # simple bound; refilled on demand
        for qid in ids:
            self._cache[qid] = found.get(qid)
