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

import json
from functools import lru_cache
from typing import Any

import psycopg
from pglast.parser import ParseError, parse_sql_json

from dbpulse.sidecar.base import Row

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
        tree = json.loads(parse_sql_json(text))
    except ParseError as exc:
        raise NotExplainable("statement text does not parse") from exc
    stmts = tree.get("stmts", [])
    if len(stmts) != 1 or set(stmts[0].get("stmt", {})) - _EXPLAINABLE:
        raise NotExplainable("not a single SELECT, INSERT, UPDATE or DELETE")
    highest = 0

    def walk(value: Any) -> None:
        nonlocal highest
        if isinstance(value, dict):
            ref = value.get("ParamRef")
            if isinstance(ref, dict):
                highest = max(highest, int(ref.get("number", 0)))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(stmts[0])
    return highest


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
