"""pg_stat_statements: the top-N statements by execution time, under a series budget.

Each poll reads ``pg_stat_statements(false)`` once (no query text, so the server does
not read its query-text file); ``fetch`` returns the raw entries and ``build`` folds them
into per-database totals over every statement and the top-N by total execution time plus
the statements currently held (``statements_select``: the selection, its budget and the
state the runtime carries between polls). Rows that differ only by ``toplevel`` (14+)
are summed into one statement.

Query texts are fetched only for newly selected statements, at most once a minute,
with ``pg_stat_statements(true)``. That function always reads the whole query-text file
(a ``WHERE queryid = ...`` filter cannot make it cheaper), which is why texts are cached
for as long as a statement stays selected and never fetched for the rest. They are
scrubbed by PostgreSQL's own lexer (every constant and comment, utility statements such
as ``ALTER ROLE ... PASSWORD`` included; ``sidecar/scrub.py``), and served only at
``/debug/statements``: never as labels, never in logs. A text longer than
``text_max_length`` is cut there, and shown with its scrubbed tail and a short hash of the
whole scrubbed text, so statements that share a long prefix (an ORM's column list) stay
apart and the ``WHERE`` at the end still shows.

Counter resets: ``pg_stat_statements_reset()`` (or eviction when ``pg_stat_statements.max``
is exceeded) makes a statement's counters start again from zero. The exporter passes
the values through as they are; Prometheus' ``rate()``/``increase()`` treat a decrease
as a counter reset, so graphs stay right and nothing here needs to compensate.
"""

# layout-note: fetch, build and the /debug view of one collector; the selection and the
# layout-note: families already live in statements_select and statements_families.

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import sql

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, CollectorError, Context, Row, Rows, query
from dbpulse.sidecar.collectors.statements_families import FAMILIES, build_families
from dbpulse.sidecar.collectors.statements_select import (
    Key,
    Selection,
    StatementsState,
    key_of,
    rank,
    select,
    statement_capacity,
    summarise,
    texts_wanted,
)
from dbpulse.sidecar.scrub import scrub_text

__all__ = [
    "FAMILIES",
    "StatementsCollector",
    "StatementsState",
    "build_families",
    "create",
    "rank",
    "scrub_text",
    "select",
    "statement_capacity",
    "summarise",
]

SQL_EXTENSION = """
SELECT current_database() AS db,
    (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_stat_statements') AS schema,
    (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'pg_stat_statements')
        AS version
"""


def _raw_sql(time_column: str, blk_time: str) -> str:
    # Only the counters, one row per entry, no query text: reading the function is the
    # floor every pg_stat_statements exporter pays (it materialises every entry). Grouping,
    # totals and the top-N happen in summarise() on the sidecar's CPU instead of the
    # database's: with 5,000 entries the server-side version (a materialised CTE, float8
    # sums, ORDER BY ... LIMIT) cost 3-4x this plain read (benchmarks/README.md).
    return f"""
SELECT dbid::int8 AS dbid, userid::int8 AS userid, queryid, calls,
    {time_column} AS total_ms, rows, shared_blks_hit, shared_blks_read, temp_blks_written,
    {blk_time}_read_time AS blk_read_ms, {blk_time}_write_time AS blk_write_ms
FROM {{schema}}.pg_stat_statements(false)
"""


SQL_NAMES = """
SELECT true AS is_db, oid::int8 AS oid, datname::text AS name FROM pg_database
UNION ALL
SELECT false, oid::int8, rolname::text FROM pg_roles
"""

# Extension 1.8 (PostgreSQL 13) split total_time into total_plan_time + total_exec_time.
# The columns follow the *installed extension version*, which can lag the server's
# until ALTER EXTENSION ... UPDATE, so that is what picks the variant.
# Extension 1.11 (PostgreSQL 17) split blk_read_time into shared_ and local_; the shared
# one is what postgres_exporter reports as block_read_seconds_total.
SQL_RAW_V111 = _raw_sql("total_exec_time", "shared_blk")
SQL_RAW_V18 = _raw_sql("total_exec_time", "blk")
SQL_RAW_OLD = _raw_sql("total_time", "blk")

# Reads the whole query-text file on the server whatever the filter; see the docstring.
SQL_TEXTS = """
SELECT dbid::int8 AS dbid, userid::int8 AS userid, queryid, left(query, %(max)s) AS query
FROM {schema}.pg_stat_statements(true)
WHERE queryid = ANY(%(ids)s::int8[])
"""

# Characters fetched before scrubbing (a literal cut in half would not be recognised).
TEXT_FETCH_MAX = 10000
# The end of a cut text shown beside it (where an ORM's WHERE clause is).
TAIL_CHARS = 200

MISSING = (
    "pg_stat_statements is not installed in database {db}: add "
    "shared_preload_libraries = 'pg_stat_statements' to postgresql.conf, restart "
    "PostgreSQL, then run CREATE EXTENSION pg_stat_statements in {db} (the database "
    "dbpulse connects to); it reports on every database from there"
)
NOT_LOADED = (
    "pg_stat_statements is installed but not loaded: add "
    "shared_preload_libraries = 'pg_stat_statements' to postgresql.conf and restart PostgreSQL"
)
BUDGET_NOTICE = (
    "pg_stat_statements: top_n={top_n} does not fit in max_series={max_series} "
    "({capacity} statements fit); exporting the top {capacity} only, and no statement can "
    "be held against flapping: raise max_series or lower top_n"
)
HELD_DROPPED_NOTICE = (
    "pg_stat_statements: statements held for hold_seconds were dropped to stay within "
    "max_series; raise max_series or lower top_n to leave room for them"
)


def extension_version(text: Any) -> tuple[int, ...]:
    """pg_stat_statements' installed version ('1.10' -> (1, 10)); its columns follow it."""
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        return (0,)


@dataclass(frozen=True)
class StatementsCollector:
    name: str = "statements"
    top_n: int = 200
    max_series: int = 2000
    hold_seconds: float = 600.0
    text_max_length: int = 2000

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        ext = query(conn, SQL_EXTENSION)[0]
        if ext["schema"] is None:
            raise CollectorError(MISSING.format(db=ext["db"]))
        schema = sql.Identifier(str(ext["schema"]))
        version = extension_version(ext["version"])
        if version >= (1, 11):
            raw_sql = SQL_RAW_V111
        elif version >= (1, 8):
            raw_sql = SQL_RAW_V18
        else:
            raw_sql = SQL_RAW_OLD

        def in_schema(template: str) -> str:
            return sql.SQL(template).format(schema=schema).as_string(conn)

        try:
            rows: Rows = {
                "raw": query(conn, in_schema(raw_sql)),
                "names": query(conn, SQL_NAMES),
            }
            wanted = texts_wanted(state or StatementsState(), ctx.now, self.text_max_length)
            if wanted:
                rows["texts_requested"] = [
                    {"dbid": k[0], "userid": k[1], "queryid": k[2]} for k in wanted
                ]
                rows["texts"] = query(
                    conn,
                    in_schema(SQL_TEXTS),
                    {"max": TEXT_FETCH_MAX, "ids": sorted({k[2] for k in wanted})},
                )
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:
            raise CollectorError(NOT_LOADED) from exc
        return rows

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        previous: StatementsState = state or StatementsState()
        held = {key[2] for key in previous.last_in_top}
        totals, candidates = summarise(rows["raw"], rows["names"], self.top_n, held)
        return self.build_summary({**rows, "totals": totals, "candidates": candidates}, ctx, state)

    def build_summary(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        """Select and export from ``summarise``'s output (``totals``, ranked ``candidates``)."""
        previous: StatementsState = state or StatementsState()
        totals = rows.get("totals", [])
        by_key = {key_of(row): row for row in rows.get("candidates", [])}
        capacity = statement_capacity(self.max_series, len(totals))
        selection = select(
            list(by_key),
            previous.last_in_top,
            ctx.now,
            top_n=self.top_n,
            capacity=capacity,
            hold_seconds=self.hold_seconds,
        )
        texts = self._texts(previous.texts, rows, selection.keys)
        fetched = "texts_requested" in rows
        new_state = replace(
            previous,
            last_in_top=selection.last_in_top,
            texts=texts,
            last_text_fetch=ctx.now if fetched else previous.last_text_fetch,
        )
        selected = [by_key[key] for key in selection.keys]
        notices = []
        if self.top_n > capacity:
            notices.append(
                BUDGET_NOTICE.format(
                    top_n=self.top_n, max_series=self.max_series, capacity=capacity
                )
            )
        elif selection.dropped_held:
            notices.append(HELD_DROPPED_NOTICE)
        return BuildResult(
            families=build_families(selected, totals),
            debug=self._debug(selected, totals, selection, texts, ctx.now),
            notices=notices,
            state=new_state,
        )

    def _texts(self, known: Any, rows: Rows, selected: Sequence[Key]) -> dict[Key, str | None]:
        texts: dict[Key, str | None] = dict(known)
        for row in rows.get("texts_requested", []):
            texts.setdefault(key_of(row), None)
        for row in rows.get("texts", []):
            if row.get("queryid") is not None and row.get("query") is not None:
                # Kept whole (scrubbed): _debug cuts it and shows its tail and hash.
                texts[key_of(row)] = scrub_text(str(row["query"]), TEXT_FETCH_MAX)
        keep = set(selected)
        return {key: text for key, text in texts.items() if key in keep}

    def _debug(
        self,
        selected: list[Row],
        totals: list[Row],
        selection: Selection,
        texts: dict[Key, str | None],
        now: float,
    ) -> dict[str, Any]:
        all_calls = sum(float(r.get("calls") or 0) for r in totals)
        all_ms = sum(float(r.get("total_ms") or 0) for r in totals)
        sel_calls = sum(float(r.get("calls") or 0) for r in selected)
        sel_ms = sum(float(r.get("total_ms") or 0) for r in selected)
        return {
            "generated_at": now,
            "top_n": self.top_n,
            "capacity": selection.capacity,
            "hold_seconds": self.hold_seconds,
            "covered": {
                "calls": sel_calls / all_calls if all_calls else None,
                "seconds": sel_ms / all_ms if all_ms else None,
            },
            "statements": [
                {
                    "datname": row.get("datname"),
                    "user": row.get("user"),
                    # A string: int64 query IDs lose precision as JSON numbers.
                    "queryid": str(row["queryid"]),
                    "calls": row.get("calls"),
                    "seconds": float(row.get("total_ms") or 0) / 1000.0,
                    "rows": row.get("rows"),
                    "in_top_n": key_of(row) in selection.in_top,
                    "last_in_top_n": selection.last_in_top.get(key_of(row)),
                    **shown_text(texts.get(key_of(row)), self.text_max_length),
                }
                for row in selected
            ],
        }


def shown_text(text: str | None, max_length: int) -> dict[str, Any]:
    """A scrubbed text as /debug/statements shows it: whole when it fits, else cut, with
    its last characters and a hash of the whole (a cut scrubbed text reopens no literal)."""
    if text is None or len(text) <= max_length:
        return {"query": text, "query_truncated": False}
    return {
        "query": text[: max(0, max_length - 1)] + "\u2026",
        "query_truncated": True,
        "query_length": len(text),
        "query_tail": "\u2026" + text[-TAIL_CHARS:],
        "query_hash": hashlib.sha256(text.encode()).hexdigest()[:12],
    }


def create(settings: Settings) -> StatementsCollector:
    config = settings.collectors.statements
    return StatementsCollector(
        top_n=config.top_n,
        max_series=config.max_series,
        hold_seconds=config.hold_seconds,
        text_max_length=config.text_max_length,
    )
