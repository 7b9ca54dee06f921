"""The doctor's only I/O: one read-only transaction under statement and lock timeouts."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dbpulse.doctor.facts import Facts, RoleSetting, Row, ServerSetting, StatementsProbe
from dbpulse.dsn import target_name
from dbpulse.errors import first_line
from dbpulse.sidecar.collectors import migrations
from dbpulse.sidecar.explain import attempt, catalog_rows
from dbpulse.sidecar.scrub import scrub_text

# Enough to judge; the report lists the first MAX_ITEMS of each anyway.
ROW_LIMIT = 1000

SQL_SETTINGS = """
SELECT name, setting, source, boot_val FROM pg_settings
WHERE name IN ('max_connections', 'superuser_reserved_connections', 'reserved_connections',
               'statement_timeout', 'idle_in_transaction_session_timeout',
               'shared_preload_libraries')
"""

SQL_IDENTITY = """
SELECT current_database() AS datname, current_user AS role,
       current_setting('server_version_num')::int AS server_version,
       (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_stat_statements') AS pg_stat_statements_schema,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS reads_all_stats
"""

SQL_ROLE_EXISTS = "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %(role)s) AS found"

SQL_ROLE_SETTINGS = """
SELECT s.setrole <> 0 AS for_role, s.setdatabase <> 0 AS for_database, s.setconfig
FROM pg_db_role_setting s
WHERE s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = %(role)s))
  AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
"""

# Client sessions of every database: a long transaction anywhere holds back VACUUM.
SQL_LONG_TRANSACTIONS = """
SELECT pid, datname, usename, application_name, state,
       extract(epoch FROM now() - xact_start)::float8 AS xact_seconds
FROM pg_stat_activity
WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND now() - xact_start >= make_interval(secs => %(seconds)s)
ORDER BY xact_start
LIMIT %(limit)s
"""

SQL_TABLES_WITHOUT_PK = """
SELECT n.nspname AS schemaname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')
ORDER BY n.nspname, c.relname
LIMIT %(limit)s
"""


# The connected database's top statements by execution time (extension 1.8+ columns; an
# older extension is left unexamined rather than guessed at).
SQL_TOP_STATEMENTS = """
SELECT queryid, query FROM {}.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND queryid IS NOT NULL
ORDER BY total_exec_time DESC
LIMIT %(limit)s
"""
EXPLAIN_TIMEOUT = 1.0


class DoctorError(Exception):
    """The database could not be examined; the message is one line, password-free."""


def _rows(conn: psycopg.Connection[Row], sql: str, params: Any = None) -> list[Row]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def _probe_statements(conn: psycopg.Connection[Row], schema: str | None) -> StatementsProbe | None:
    """Read the view: its error is the one sure sign of "not loaded" to a role that may not
    read shared_preload_libraries."""
    if schema is None:
        return None
    query = sql.SQL("SELECT 1 FROM {}.pg_stat_statements LIMIT 1").format(sql.Identifier(schema))
    try:
        with conn.transaction():  # a savepoint: a failed read must not end the doctor's
            conn.execute(query)
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return "not_loaded"
    except psycopg.errors.InsufficientPrivilege:
        return "denied"
    return "readable"


def _top_plans(
    conn: psycopg.Connection[Row], schema: str, server_version: int, limit: int
) -> tuple[list[Row], dict[str, list[Row]]]:
    """Plan the top statements (each in a savepoint; a failure is that statement's error)."""
    top = sql.SQL(SQL_TOP_STATEMENTS).format(sql.Identifier(schema))
    try:
        with conn.transaction():
            rows = _rows(conn, top.as_string(conn), {"limit": limit})
    except psycopg.errors.UndefinedColumn:
        return [], {}
    planned: list[Row] = []
    for row in rows:
        text = row.get("query")
        plan, error = attempt(conn, text, server_version, EXPLAIN_TIMEOUT)
        planned.append(
            {
                "queryid": str(row["queryid"]),
                # Only the scrubbed text leaves; the raw one was for EXPLAIN alone.
                "query": scrub_text(str(text), 300) if text is not None else None,
                "plan": plan,
                "error": error,
            }
        )
    return planned, catalog_rows(conn, [p["plan"] for p in planned])


def fetch_facts(
    dsn: str,
    *,
    role: str | None = None,
    long_transaction_seconds: float = 300.0,
    connect_timeout: float = 5.0,
    statement_timeout: float = 10.0,
    explain_top: int = 10,
) -> Facts:
    target = target_name(dsn)
    try:
        conn = psycopg.connect(
            dsn,
            connect_timeout=max(1, round(connect_timeout)),
            application_name="dbpulse-doctor",
            row_factory=dict_row,
        )
    except psycopg.Error as exc:
        raise DoctorError(f"cannot connect to {target}: {first_line(exc)}") from exc
    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("SELECT set_config('lock_timeout', '100ms', true)")
            # Read statement_timeout's source before our own SET LOCAL replaces it
            # (reading pg_settings is a function scan: it cannot run away).
            settings = {
                row["name"]: ServerSetting(row["setting"], row["source"], row["boot_val"])
                for row in _rows(conn, SQL_SETTINGS)
            }
            conn.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                (f"{int(statement_timeout * 1000)}ms",),
            )
            identity = _rows(conn, SQL_IDENTITY)[0]
            checked_role = role or str(identity["role"])
            role_exists = bool(_rows(conn, SQL_ROLE_EXISTS, {"role": checked_role})[0]["found"])
            schema = identity["pg_stat_statements_schema"]
            limit = {"limit": ROW_LIMIT}
            probe = _probe_statements(conn, schema)
            top_plans: list[Row] | None = None
            plan_catalog: dict[str, list[Row]] = {}
            if probe == "readable" and explain_top > 0 and schema is not None:
                top_plans, plan_catalog = _top_plans(
                    conn, str(schema), int(identity["server_version"]), explain_top
                )
            return Facts(
                target=target,
                datname=str(identity["datname"]),
                role=checked_role,
                server_version=int(identity["server_version"]),
                settings=settings,
                role_settings=[
                    RoleSetting(r["for_role"], r["for_database"], tuple(r["setconfig"] or ()))
                    for r in _rows(conn, SQL_ROLE_SETTINGS, {"role": checked_role})
                ],
                pg_stat_statements_installed=schema is not None,
                pg_stat_statements_probe=probe,
                login_role=str(identity["role"]),
                reads_all_stats=bool(identity["reads_all_stats"]),
                role_exists=role_exists,
                invalid_indexes=_rows(conn, migrations.SQL_INVALID_INDEXES, limit),
                not_valid_constraints=_rows(conn, migrations.SQL_NOT_VALID_CONSTRAINTS, limit),
                fk_missing_index=_rows(conn, migrations.SQL_FK_MISSING_INDEX, limit),
                long_transactions=_rows(
                    conn, SQL_LONG_TRANSACTIONS, {**limit, "seconds": long_transaction_seconds}
                ),
                tables_without_pk=_rows(conn, SQL_TABLES_WITHOUT_PK, limit),
                top_plans=top_plans,
                plan_catalog=plan_catalog,
            )
    except psycopg.Error as exc:
        raise DoctorError(f"examining {target} failed: {first_line(exc)}") from exc
    finally:
        conn.close()
