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

from dbpulse.sidecar.base import Row, query
from dbpulse.sidecar.collectors.statements import TEXT_FETCH_MAX
from dbpulse.sql import normalize

__all__ = ["StatementTexts", "literal_free"]

MAX_CACHED = 2000
TEXT_MAX = 2000


def literal_free(raw: str | None) -> str:
    """The statement with every literal and comment gone, at most TEXT_MAX characters.

    PostgreSQL's lexer decides; everything from an unterminated literal on (a text cut at
    track_activity_query_size) is one ``?``.
    """
    return normalize(raw)[:TEXT_MAX] if raw else ""


SQL_SCHEMA = """
SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""
SQL_TEXTS = """
SELECT DISTINCT ON (dbid, userid, queryid) dbid::int8 AS dbid, userid::int8 AS userid,
    queryid, left(query, %(max)s) AS query
FROM {schema}.pg_stat_statements(true)
WHERE queryid = ANY(%(ids)s::int8[])
"""
# pg_stat_statements keys a statement by database, user and query ID (the same ID in
# another database can be another statement's text).
Key = tuple[int, int, int]


def _key(row: Row) -> Key | None:
    if row.get("query_id") is None or row.get("dbid") is None or row.get("userid") is None:
        return None
    return (int(row["dbid"]), int(row["userid"]), int(row["query_id"]))


@dataclass
class StatementTexts:
    """(dbid, userid, query_id) -> normalised pg_stat_statements text (None: it had none)."""

    _cache: dict[Key, str | None] = field(default_factory=dict)

    def fill(self, conn: psycopg.Connection[Row], rows: list[Row]) -> None:
        """Replace each row's ``query_text`` by pg_stat_statements' where it has one."""
        keys = {key: row for row in rows if (key := _key(row)) is not None}
        wanted = sorted(set(keys) - set(self._cache))
        if wanted:
            self._fetch(conn, wanted)
        for row in rows:
            key = _key(row)
            text = self._cache.get(key) if key is not None else None
            row["query_text_source"] = "pg_stat_statements" if text else "pg_stat_activity"
            if text:
                row["query_text"] = text

    def _fetch(self, conn: psycopg.Connection[Row], keys: list[Key]) -> None:
        found: dict[Key, str] = {}
        ids = sorted({key[2] for key in keys})
        try:
            with conn.transaction():  # a savepoint: a failure here spares the poll
                schema = query(conn, SQL_SCHEMA)
                if schema:
                    statement = sql.SQL(SQL_TEXTS).format(
                        schema=sql.Identifier(str(schema[0]["schema"]))
                    )
                    params = {"max": TEXT_FETCH_MAX, "ids": ids}
                    for row in query(conn, statement.as_string(conn), params):
                        if row.get("query"):
                            key = (int(row["dbid"]), int(row["userid"]), int(row["queryid"]))
                            found[key] = literal_free(str(row["query"]))
        except psycopg.Error:
            return  # not cached: tried again with the next new slow statement
        if len(self._cache) + len(keys) > MAX_CACHED:
            self._cache.clear()  # simple bound; refilled on demand
        for key in keys:
            self._cache[key] = found.get(key)
