"""pg_stat_statements: the top-N statements by execution time, under a series budget.

Each poll reads ``pg_stat_statements(false)`` (no query text, so the server does not
read its query-text file) twice: per-database totals over every statement, and the
top-N by total execution time plus the statements currently held (below). Rows that
differ only by ``toplevel`` (14+) are summed into one statement.

Selection is stateful but pure (:func:`select`): a statement that ranked in the top-N
stays exported until ``hold_seconds`` after it last ranked there, so series do not flap
at the boundary. The budget is hard: at most ``(max_series - 2 x databases) // 6``
statements, the current top-N first, held statements in the room left over.

Query texts are fetched only for newly selected statements, at most once a minute,
with ``pg_stat_statements(true)``. That function always reads the whole query-text file
(a ``WHERE queryid = ...`` filter cannot make it cheaper), which is why texts are cached
for as long as a statement stays selected and never fetched for the rest. They are
scrubbed of quoted literals (utility statements such as ``ALTER ROLE ... PASSWORD`` keep
theirs), truncated to ``text_max_length``, and served only at ``/debug/statements``:
never as labels, never in logs.

Counter resets: ``pg_stat_statements_reset()`` (or eviction when ``pg_stat_statements.max``
is exceeded) makes a statement's counters start again from zero. The exporter passes
the values through as they are; Prometheus' ``rate()``/``increase()`` treat a decrease
as a counter reset, so graphs stay right and nothing here needs to compensate.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from psycopg import sql

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, CollectorError, Context, Row, Rows, query
from dbpulse.sql import scrub

# (dbid, userid, queryid): what pg_stat_statements keys a statement by (minus toplevel).
Key = tuple[int, int, int]

SQL_EXTENSION = """
SELECT current_database() AS db,
    (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_stat_statements') AS schema,
    (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'pg_stat_statements')
        AS version
"""


def _raw_sql(time_column: str) -> str:
    # Only the counters, one row per entry, no query text: reading the function is the
    # floor every pg_stat_statements exporter pays (it materialises every entry). Grouping,
    # totals and the top-N happen in summarise() on the sidecar's CPU instead of the
    # database's: with 5,000 entries the server-side version (a materialised CTE, float8
    # sums, ORDER BY ... LIMIT) cost 3-4x this plain read (benchmarks/README.md).
    return f"""
SELECT dbid::int8 AS dbid, userid::int8 AS userid, queryid, calls,
    {time_column} AS total_ms, rows, shared_blks_hit, shared_blks_read, temp_blks_written
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
SQL_RAW_V18 = _raw_sql("total_exec_time")
SQL_RAW_OLD = _raw_sql("total_time")

_SUMMED = ("calls", "total_ms", "rows", "shared_blks_hit", "shared_blks_read", "temp_blks_written")


def summarise(
    raw: Sequence[Row], names: Sequence[Row], top_n: int, held_queryids: set[int]
) -> tuple[list[Row], list[Row]]:
    """Per-database totals and top-N candidates (plus held ones) from raw entries (pure).

    Entries that differ only by ``toplevel`` (PostgreSQL 14+) are one statement here.
    """
    dbs = {int(r["oid"]): str(r["name"]) for r in names if r["is_db"]}
    roles = {int(r["oid"]): str(r["name"]) for r in names if not r["is_db"]}
    merged: dict[Key, dict[str, Any]] = {}
    totals: dict[int, list[float]] = {}
    for row in raw:
        dbid = int(row["dbid"])
        calls = float(row["calls"] or 0)
        total_ms = float(row["total_ms"] or 0.0)
        acc = totals.setdefault(dbid, [0.0, 0.0])
        acc[0] += calls
        acc[1] += total_ms
        if row["queryid"] is None:
            continue
        key = (dbid, int(row["userid"]), int(row["queryid"]))
        entry = merged.get(key)
        if entry is None:
            merged[key] = {col: float(row[col] or 0) for col in _SUMMED}
        else:
            for col in _SUMMED:
                entry[col] += float(row[col] or 0)
    top = heapq.nsmallest(top_n, merged, key=lambda k: (-merged[k]["total_ms"], *k))
    picked = set(top) | {k for k in merged if k[2] in held_queryids}
    candidates = [
        {
            "dbid": k[0],
            "userid": k[1],
            "queryid": k[2],
            "datname": dbs.get(k[0], str(k[0])),
            "user": roles.get(k[1], str(k[1])),
            **merged[k],
        }
        for k in sorted(picked, key=lambda k: (-merged[k]["total_ms"], *k))
    ]
    total_rows = [
        {"datname": dbs.get(dbid, str(dbid)), "calls": acc[0], "total_ms": acc[1]}
        for dbid, acc in totals.items()
    ]
    total_rows.sort(key=lambda r: str(r["datname"]))
    return total_rows, candidates


# Reads the whole query-text file on the server whatever the filter; see the docstring.
SQL_TEXTS = """
SELECT dbid::int8 AS dbid, userid::int8 AS userid, queryid, left(query, %(max)s) AS query
FROM {schema}.pg_stat_statements(true)
WHERE queryid = ANY(%(ids)s::int8[])
"""

# Minimum seconds between two reads of the query-text file.
TEXT_FETCH_INTERVAL = 60.0
# Characters fetched before scrubbing (a literal cut in half would not be recognised).
TEXT_FETCH_MAX = 10000

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
# The two per-database totals families.
TOTAL_FAMILIES = 2

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


def key_of(row: Row) -> Key:
    return (int(row["dbid"]), int(row["userid"]), int(row["queryid"]))


def statement_capacity(max_series: int, databases: int) -> int:
    """Statements that fit the budget next to the per-database totals."""
    return max(0, (max_series - TOTAL_FAMILIES * databases) // len(FAMILIES))


def rank(candidates: Sequence[Row]) -> list[Row]:
    """Rows by total execution time, heaviest first, ties broken like the SQL."""
    return sorted(candidates, key=lambda r: (-float(r.get("total_ms") or 0.0), *key_of(r)))


@dataclass(frozen=True)
class Selection:
    keys: list[Key]
    # keys ranking in the current top-N (the rest of ``keys`` are held)
    in_top: frozenset[Key]
    # the state for the next poll: selected key -> when it last ranked in the top-N
    last_in_top: dict[Key, float]
    capacity: int
    # held statements that did not fit the budget
    dropped_held: int


def select(
    ranked: Sequence[Key],
    last_in_top: Mapping[Key, float],
    now: float,
    *,
    top_n: int,
    capacity: int,
    hold_seconds: float,
) -> Selection:
    """Choose the statements to export; pure, the state goes in and comes out.

    ``ranked`` is every candidate heaviest first. The current top ``min(top_n,
    capacity)`` are always exported; statements that left the top-N less than
    ``hold_seconds`` ago fill the remaining budget, heaviest first. A statement that
    is no longer in pg_stat_statements (evicted or reset) is forgotten.
    """
    n = min(top_n, capacity)
    top = list(ranked[:n])
    held = [
        key for key in ranked[n:] if key in last_in_top and now - last_in_top[key] < hold_seconds
    ]
    room = max(0, capacity - len(top))
    kept = held[:room]
    state = {key: last_in_top[key] for key in kept}
    state.update(dict.fromkeys(top, now))
    return Selection(
        keys=top + kept,
        in_top=frozenset(top),
        last_in_top=state,
        capacity=capacity,
        dropped_held=len(held) - len(kept),
    )


def scrub_text(text: str, max_length: int) -> str:
    """Constants '?' (strings) or ? (numbers), comments gone, truncated; debug view only."""
    return scrub(text, max_length)


def _version(text: Any) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        return (0,)


@dataclass
class StatementsCollector:
    name: str = "statements"
    top_n: int = 200
    max_series: int = 2000
    hold_seconds: float = 600.0
    text_max_length: int = 200
    # Selection state: selected statement -> when it last ranked in the top-N.
    _last_in_top: dict[Key, float] = field(default_factory=dict, init=False, repr=False)
    # Scrubbed texts of selected statements (None: asked for, the server had none).
    _texts: dict[Key, str | None] = field(default_factory=dict, init=False, repr=False)
    _last_text_fetch: float | None = field(default=None, init=False, repr=False)

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context) -> Rows:
        ext = query(conn, SQL_EXTENSION)[0]
        if ext["schema"] is None:
            raise CollectorError(MISSING.format(db=ext["db"]))
        schema = sql.Identifier(str(ext["schema"]))
        modern = _version(ext["version"]) >= (1, 8)

        def in_schema(template: str) -> str:
            return sql.SQL(template).format(schema=schema).as_string(conn)

        try:
            raw = query(conn, in_schema(SQL_RAW_V18 if modern else SQL_RAW_OLD))
            names = query(conn, SQL_NAMES)
            totals, candidates = summarise(
                raw, names, self.top_n, {key[2] for key in self._last_in_top}
            )
            rows: Rows = {"totals": totals, "candidates": candidates}
            wanted = self._texts_wanted(ctx.now)
            if wanted:
                rows["texts_requested"] = [
                    {"dbid": k[0], "userid": k[1], "queryid": k[2]} for k in wanted
                ]
                rows["texts"] = query(
                    conn,
                    in_schema(SQL_TEXTS),
                    {"max": TEXT_FETCH_MAX, "ids": sorted({k[2] for k in wanted})},
                )
                self._last_text_fetch = ctx.now
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:
            raise CollectorError(NOT_LOADED) from exc
        return rows

    def _texts_wanted(self, now: float) -> list[Key]:
        if self.text_max_length <= 0:
            return []
        if self._last_text_fetch is not None and now - self._last_text_fetch < (
            TEXT_FETCH_INTERVAL
        ):
            return []
        return sorted(key for key in self._last_in_top if key not in self._texts)

    def build(self, rows: Rows, ctx: Context) -> BuildResult:
        totals = rows.get("totals", [])
        by_key = {key_of(row): row for row in rank(rows.get("candidates", []))}
        capacity = statement_capacity(self.max_series, len(totals))
        selection = select(
            list(by_key),
            self._last_in_top,
            ctx.now,
            top_n=self.top_n,
            capacity=capacity,
            hold_seconds=self.hold_seconds,
        )
        self._last_in_top = selection.last_in_top
        self._remember_texts(rows, selection.keys)

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
            debug=self._debug(selected, totals, selection, ctx.now),
            notices=notices,
        )

    def _remember_texts(self, rows: Rows, selected: Sequence[Key]) -> None:
        texts = dict(self._texts)
        for row in rows.get("texts_requested", []):
            texts.setdefault(key_of(row), None)
        for row in rows.get("texts", []):
            if row.get("queryid") is not None and row.get("query") is not None:
                texts[key_of(row)] = scrub_text(str(row["query"]), self.text_max_length)
        keep = set(selected)
        self._texts = {key: text for key, text in texts.items() if key in keep}

    def _debug(
        self, selected: list[Row], totals: list[Row], selection: Selection, now: float
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
                    "query": self._texts.get(key_of(row)),
                }
                for row in selected
            ],
        }


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


def create(settings: Settings) -> StatementsCollector:
    config = settings.collectors.statements
    return StatementsCollector(
        top_n=config.top_n,
        max_series=config.max_series,
        hold_seconds=config.hold_seconds,
        text_max_length=config.text_max_length,
    )
