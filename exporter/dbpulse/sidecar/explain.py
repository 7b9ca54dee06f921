"""EXPLAIN a statement's parameterised text, safely, inside the poll's transaction.

The text comes from pg_stat_statements (``$1``-style parameters, no constants). Only a
single SELECT, INSERT, UPDATE or DELETE is explained, never a utility statement, and
never with ANALYZE: nothing is executed. PostgreSQL 16+ plans it with
``EXPLAIN (GENERIC_PLAN)``; 13-15 prepare it and explain ``EXECUTE`` with NULL
arguments under ``plan_cache_mode = force_generic_plan``, which gives the same generic
plan (the arguments are never looked at). Each attempt runs in a savepoint with its own
short ``statement_timeout``, so a failure (a permission, a type the prepare cannot
infer) costs that statement's plan only, never the poll. The read-only transaction stays
read-only: EXPLAIN without ANALYZE of an UPDATE does not execute it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import psycopg

from dbpulse.plans.tree import nodes, root
from dbpulse.sidecar.base import Row, query
from dbpulse.sql.tree import ParseError, nodes_of, parse_tree

_EXPLAINABLE = frozenset({"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt"})
_PREPARED = "dbpulse_explain"
# Texts longer than this are not planned (a statement cut by track_activity_query_size
# would not parse anyway, and the planner's time grows with the text).
MAX_TEXT = 100_000


class NotExplainable(ValueError):
    """The text is not one plain SELECT/INSERT/UPDATE/DELETE."""


@lru_cache(maxsize=1024)
def parameters(text: str) -> int:
    """How many ``$n`` parameters the statement takes; NotExplainable if it is not one
    plain SELECT/INSERT/UPDATE/DELETE."""
    if len(text) > MAX_TEXT:
        raise NotExplainable("statement text too long to plan")
    try:
        tree = parse_tree(text)
    except ParseError as exc:
        raise NotExplainable("statement text does not parse") from exc
    stmts = tree.get("stmts", [])
    if len(stmts) != 1 or set(stmts[0].get("stmt", {})) - _EXPLAINABLE:
        raise NotExplainable("not a single SELECT, INSERT, UPDATE or DELETE")
    return max((int(ref.get("number", 0)) for ref in nodes_of(stmts[0], "ParamRef")), default=0)


def _one(conn: psycopg.Connection[Row], sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
    if row is None:
        raise psycopg.ProgrammingError("EXPLAIN returned no row")
    return next(iter(row.values()))


def _deallocate(conn: psycopg.Connection[Row]) -> None:
    # Prepared statements outlive a rolled-back savepoint; DEALLOCATE ALL would also drop
    # psycopg's own prepared statements on this connection.
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [_PREPARED])
        if cur.fetchone() is not None:
            cur.execute(f"DEALLOCATE {_PREPARED}")


def explain(
    conn: psycopg.Connection[Row], text: str, server_version_num: int, timeout: float
) -> Any:
    """The plan (EXPLAIN's JSON) of ``text``; raises NotExplainable or psycopg.Error."""
    params = parameters(text)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('statement_timeout') AS t,"
            " current_setting('plan_cache_mode') AS m"
        )
        row = cur.fetchone()
    saved, mode = (str(row["t"]), str(row["m"])) if row else ("0", "auto")
    try:
        with conn.transaction():  # a savepoint: a failed EXPLAIN leaves the poll intact
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    [f"{max(1, int(timeout * 1000))}ms"],
                )
            if server_version_num >= 160000:
                return _one(conn, f"EXPLAIN (GENERIC_PLAN, VERBOSE, FORMAT JSON) {text}")
            with conn.cursor() as cur:
                cur.execute("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")
                cur.execute(f"PREPARE {_PREPARED} AS {text}")
            args = f"({', '.join(['NULL'] * params)})" if params else ""
            return _one(conn, f"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {_PREPARED}{args}")
    finally:
        if server_version_num < 160000:
            _deallocate(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('statement_timeout', %s, true)", [saved])
            cur.execute("SELECT set_config('plan_cache_mode', %s, true)", [mode])


def attempt(
    conn: psycopg.Connection[Row], text: str | None, server_version_num: int, timeout: float
) -> tuple[Any, str | None]:
    """(plan, None) or (None, why not): a statement that cannot be planned is no failure.

    The server's message names a table or a permission, never a constant (the text is
    parameterised); only its first line is kept.
    """
    if text is None:
        return None, "query text not available (pg_read_all_stats needed?)"
    try:
        return explain(conn, text, server_version_num, timeout), None
    except NotExplainable as exc:
        return None, str(exc)
    except psycopg.Error as exc:
        message = str(exc).splitlines()[0] if str(exc) else ""
        return None, f"{type(exc).__name__}: {message}"


SQL_TABLES = """
SELECT n.nspname AS schemaname, c.relname, c.reltuples::float8 AS reltuples
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = ANY(%(names)s::text[]) AND c.relkind IN ('r', 'p', 'm')
"""
SQL_MEMORY = """
SELECT pg_size_bytes(current_setting('work_mem'))::float8 AS work_mem,
    current_setting('hash_mem_multiplier')::float8 AS hash_mem_multiplier
"""


def catalog_rows(conn: psycopg.Connection[Row], plans: list[Any]) -> dict[str, list[Row]]:
    """What advice needs to know about the tables ``plans`` read: their sizes, foreign
    keys without an index, and the memory a sort or hash may use."""
    names = sorted(
        {
            str(node["Relation Name"])
            for plan in plans
            if plan is not None
            for node in nodes(root(plan))
            if node.get("Relation Name")
        }
    )
    if not names:
        return {}
    # Imported here: the collectors package imports this module (regressions).
    from dbpulse.sidecar.collectors.migrations import SQL_FK_MISSING_INDEX

    return {
        "tables": query(conn, SQL_TABLES, {"names": names}),
        "fk_missing_index": query(conn, SQL_FK_MISSING_INDEX, {"limit": 1000}),
        "memory": query(conn, SQL_MEMORY),
    }
