"""Statements running longer than the slow threshold, for the sidecar's slow-query spans.

The runtime adds this collector only when tracing is enabled (it exports no metric
family; its ``BuildResult.facts.slow_queries`` feed tracing). It runs on the activity
collector's schedule.

Texts: the raw ``pg_stat_activity.query`` never leaves ``fetch`` (it is made literal-free
there). Where the running statement's ``query_id`` (14+) is known, pg_stat_statements'
text is preferred: constants there are already ``$n`` and it is not cut at
``track_activity_query_size``. ``pg_stat_statements(true)`` reads the server's whole
query-text file whatever the filter, so it is read only for statements the cache (the
collector's state, owned by the runtime) has not seen, misses included, in a savepoint:
a missing or unloaded extension leaves the pg_stat_activity text and the poll unharmed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query
from dbpulse.sidecar.facts import Facts, SlowQuery
from dbpulse.sidecar.scrub import literal_free
from dbpulse.tracecontext import SQL_APP_PATTERN, SQL_PATTERN

# pg_stat_statements keys a statement by database, user and query ID (the same ID in
# another database can be another statement's text).
Key = tuple[int, int, int]
# The collector's state: key -> literal-free text (None: pg_stat_statements had none).
TextCache = Mapping[Key, str | None]


def _slow_sql(query_id: str) -> str:
    return f"""
SELECT a.pid, a.datname, a.usename, a.application_name, {query_id} AS query_id,
    a.datid::int8 AS dbid, a.usesysid::int8 AS userid,
    EXTRACT(EPOCH FROM a.query_start)::float8 AS query_start_epoch,
    EXTRACT(EPOCH FROM now() - a.query_start)::float8 AS query_age_seconds,
    COALESCE(substring(a.query from {SQL_PATTERN}),
             substring(a.application_name from {SQL_APP_PATTERN})) AS traceparent,
    left(a.query, %(max)s) AS query_raw
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid() AND a.state = 'active'
    AND a.query_start <= now() - make_interval(secs => %(slow)s)
ORDER BY a.query_start
LIMIT %(limit)s
"""


SQL_SLOW_V14 = _slow_sql("a.query_id")
SQL_SLOW_OLD = _slow_sql("NULL::int8")
SLOW_TEXT_MAX = 4000
SLOW_LIMIT = 100

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
# Characters fetched before scrubbing (a literal cut in half would not be recognised).
TEXT_FETCH_MAX = 10000
MAX_CACHED = 2000


def _key(row: Row) -> Key | None:
    if row.get("query_id") is None or row.get("dbid") is None or row.get("userid") is None:
        return None
    return (int(row["dbid"]), int(row["userid"]), int(row["query_id"]))


@dataclass(frozen=True)
class SlowQueriesCollector:
    slow_query_seconds: float
    name: str = "slow_queries"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        sql_slow = SQL_SLOW_V14 if ctx.server_version_num >= 140000 else SQL_SLOW_OLD
        params = {"max": SLOW_TEXT_MAX, "slow": self.slow_query_seconds, "limit": SLOW_LIMIT}
        slow = query(conn, sql_slow, params)
        for row in slow:
            row["query_text"] = literal_free(row.pop("query_raw", None))
        cache: TextCache = state or {}
        wanted = sorted({k for row in slow if (k := _key(row)) is not None} - set(cache))
        rows: Rows = {"slow": slow}
        if wanted:
            texts = _fetch_texts(conn, wanted)
            if texts is not None:  # None: failed, not cached, tried again next poll
                rows["texts_requested"] = [
                    {"dbid": k[0], "userid": k[1], "query_id": k[2]} for k in wanted
                ]
                rows["texts"] = texts
        return rows

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        cache = remember(state or {}, rows)
        found = []
        for row in rows.get("slow", []):
            key = _key(row)
            text = cache.get(key) if key is not None else None
            query_id = row.get("query_id")
            start = row.get("query_start_epoch")
            found.append(
                SlowQuery(
                    pid=int(row.get("pid") or 0),
                    datname=str(row.get("datname") or ""),
                    application_name=str(row.get("application_name") or ""),
                    query_id=None if query_id is None else int(query_id),
                    query_start=None if start is None else float(start),
                    age_seconds=max(0.0, float(row.get("query_age_seconds") or 0.0)),
                    text=text or str(row.get("query_text") or ""),
                    text_source="pg_stat_statements" if text else "pg_stat_activity",
                    traceparent=str(row["traceparent"]) if row.get("traceparent") else None,
                )
            )
        # The debug view counts only: even literal-free texts stay out of /debug.
        debug = {"generated_at": ctx.now, "running": len(found), "cached_texts": len(cache)}
        return BuildResult(
            families=[], debug=debug, state=cache, facts=Facts(slow_queries=tuple(found))
        )


def remember(cache: TextCache, rows: Rows) -> dict[Key, str | None]:
    """The cache with this poll's lookups added, misses included (pure)."""
    requested = [k for row in rows.get("texts_requested", []) if (k := _key(row)) is not None]
    if not requested:
        return dict(cache)
    updated = {} if len(cache) + len(requested) > MAX_CACHED else dict(cache)  # simple bound
    updated.update(dict.fromkeys(requested))
    for row in rows.get("texts", []):
        key = _key(row)
        if key is not None and row.get("query"):
            updated[key] = str(row["query"])
    return updated


def _fetch_texts(conn: psycopg.Connection[Row], keys: list[Key]) -> list[Row] | None:
    """pg_stat_statements' texts for the keys, literal-free; None when it cannot be read."""
    ids = sorted({key[2] for key in keys})
    try:
        with conn.transaction():  # a savepoint: a failure here spares the poll
            schema = query(conn, SQL_SCHEMA)
            if not schema:
                return []
            statement = sql.SQL(SQL_TEXTS).format(schema=sql.Identifier(str(schema[0]["schema"])))
            found = query(conn, statement.as_string(conn), {"max": TEXT_FETCH_MAX, "ids": ids})
    except psycopg.Error:
        return None
    return [
        {
            "dbid": row["dbid"],
            "userid": row["userid"],
            "query_id": row["queryid"],
            "query": literal_free(str(row["query"])),
        }
        for row in found
        if row.get("query")
    ]


def create(settings: Settings) -> SlowQueriesCollector:
    return SlowQueriesCollector(settings.telemetry.slow_query_seconds)
