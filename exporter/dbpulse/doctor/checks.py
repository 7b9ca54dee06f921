"""Pure checks: facts in, findings out, each with what it means and how to fix it."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dbpulse.doctor.facts import Facts, PoolPlan, RoleSetting, Row, ServerSetting

Level = Literal["ok", "info", "warning", "error"]
LEVELS: tuple[Level, ...] = ("ok", "info", "warning", "error")

# Above this share of the usable connections, a deploy (old and new pods side by side),
# a migration or an operator's psql session tips the server over.
POOL_HEADROOM = 0.8
LONG_TRANSACTION_SECONDS = 300.0
MAX_ITEMS = 50

# pg_settings sources that mean "this session's own value, not the server's".
_SESSION_SOURCES = {"user", "database", "database user", "client", "session"}
_UNITS_MS = {
    "us": 0.001,
    "ms": 1.0,
    "s": 1000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
    "d": 86_400_000.0,
}


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    title: str
    detail: str = ""
    fix: str = ""
    items: list[str] = field(default_factory=list)


def quote_ident(name: str) -> str:
    """PostgreSQL identifier quoting, for the SQL the fixes suggest."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def parse_duration_ms(text: str) -> float | None:
    """'30s', '5min', '1500' (milliseconds) -> milliseconds; None when unparseable."""
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([a-z]*)\s*", text.strip().strip("'\""))
    if not match:
        return None
    number, unit = float(match[1]), match[2] or "ms"
    scale = _UNITS_MS.get(unit)
    return None if scale is None else number * scale


def resolve_role_setting(
    name: str, role_settings: Sequence[RoleSetting], server: ServerSetting | None
) -> tuple[str, str]:
    """The value a new session of the role gets, and where it comes from.

    PostgreSQL applies, most specific first: role in this database, role anywhere,
    anyone in this database, then the server configuration.
    """
    order = ((True, True), (True, False), (False, True))
    for for_role, for_database in order:
        for row in role_settings:
            if (row.for_role, row.for_database) != (for_role, for_database):
                continue
            for entry in row.config:
                key, _, value = entry.partition("=")
                if key == name:
                    where = {
                        (True, True): "ALTER ROLE ... IN DATABASE",
                        (True, False): "ALTER ROLE",
                        (False, True): "ALTER DATABASE",
                    }[(for_role, for_database)]
                    return value, where
    if server is None:
        return "0", "unknown"
    if server.source in _SESSION_SOURCES:
        # Our own session's value is role/database specific: fall back to the built-in one.
        return server.boot_value, "built-in default"
    return server.value, f"server ({server.source})"


def check_pool(facts: Facts, plan: PoolPlan | None) -> Finding:
    if plan is None:
        return Finding(
            "pool_sizing",
            "info",
            "pool sizing not checked",
            "pass --pool-size (and --max-overflow, --workers, --replicas) to check it",
        )
    max_conn = facts.int_setting("max_connections", 100)
    reserved = facts.int_setting("superuser_reserved_connections") + facts.int_setting(
        "reserved_connections"
    )
    usable = max_conn - reserved
    formula = (
        f"(pool_size {plan.pool_size} + max_overflow {plan.max_overflow}) x workers "
        f"{plan.workers} x replicas {plan.replicas} = {plan.demand}; usable = max_connections "
        f"{max_conn} - reserved {reserved} = {usable}"
    )
    processes = plan.workers * plan.replicas
    per_process = max(0, int(usable * POOL_HEADROOM) // processes)
    fix = (
        f"keep pool_size + max_overflow <= {per_process} per process, or raise "
        f"max_connections to at least {int(plan.demand / POOL_HEADROOM) + reserved} "
        "(needs a restart), or put PgBouncer (transaction mode) in front"
    )
    if plan.demand > usable:
        return Finding(
            "pool_sizing",
            "error",
            "connection pools can open more connections than the server accepts",
            f"{formula}. At peak, checkouts fail with 'too many clients already'.",
            fix,
        )
    if plan.demand > usable * POOL_HEADROOM:
        return Finding(
            "pool_sizing",
            "warning",
            f"connection pools use over {POOL_HEADROOM:.0%} of the usable connections",
            f"{formula}. A rolling deploy runs old and new pods at once and needs headroom.",
            fix,
        )
    return Finding("pool_sizing", "ok", "connection pools fit max_connections", formula)


def _timeout_check(facts: Facts, name: str, title: str, why: str, suggested: str) -> Finding:
    value, source = resolve_role_setting(name, facts.role_settings, facts.settings.get(name))
    millis = parse_duration_ms(value)
    role = quote_ident(facts.role)
    if millis is None or millis > 0:
        return Finding(name, "ok", f"{name} is {value} for role {facts.role}", f"from {source}")
    return Finding(
        name,
        "warning",
        f"{title} for role {facts.role}",
        f"{name} is 0 ({source}): {why}",
        f"ALTER ROLE {role} SET {name} = '{suggested}'; (new sessions pick it up; "
        "set it per transaction with SET LOCAL where a job needs longer)",
    )


def check_statement_timeout(facts: Facts) -> Finding:
    return _timeout_check(
        facts,
        "statement_timeout",
        "no statement_timeout",
        "a runaway query holds its connection and locks until someone kills it",
        "30s",
    )


def check_idle_in_transaction_timeout(facts: Facts) -> Finding:
    return _timeout_check(
        facts,
        "idle_in_transaction_session_timeout",
        "no idle_in_transaction_session_timeout",
        "a transaction left open by a crashed request keeps its locks and blocks VACUUM",
        "60s",
    )


def check_pg_stat_statements(facts: Facts) -> Finding:
    preload = facts.settings.get("shared_preload_libraries")
    loaded = preload is not None and "pg_stat_statements" in [
        lib.strip() for lib in preload.value.split(",")
    ]
    if not loaded:
        return Finding(
            "pg_stat_statements",
            "warning",
            "pg_stat_statements is not loaded",
            "without it there is no per-query time, calls or I/O (the statements collector "
            "and the slow-query dashboard stay empty)",
            "add pg_stat_statements to shared_preload_libraries, restart, then "
            "CREATE EXTENSION pg_stat_statements;",
        )
    if not facts.pg_stat_statements_installed:
        return Finding(
            "pg_stat_statements",
            "warning",
            f"pg_stat_statements is loaded but not installed in database {facts.datname}",
            "the view is missing, so nothing can read the statistics",
            "CREATE EXTENSION pg_stat_statements;",
        )
    return Finding("pg_stat_statements", "ok", "pg_stat_statements is loaded and installed")


def _items(rows: list[Row], render: Callable[[Row], str]) -> list[str]:
    shown = [render(row) for row in rows[:MAX_ITEMS]]
    if len(rows) > MAX_ITEMS:
        shown.append(f"... and {len(rows) - MAX_ITEMS} more")
    return shown


def check_fk_missing_index(facts: Facts) -> Finding:
    rows = facts.fk_missing_index
    if not rows:
        return Finding("fk_missing_index", "ok", "every foreign key has an index")

    def fix(row: Row) -> str:
        columns = ", ".join(quote_ident(str(col)) for col in row.get("columns") or [])
        table = qualified(row["schemaname"], row["relname"])
        return f"{row['conname']}: CREATE INDEX CONCURRENTLY ON {table} ({columns});"

    return Finding(
        "fk_missing_index",
        "warning",
        f"{len(rows)} foreign key(s) without an index",
        "every DELETE or key UPDATE on the referenced table scans the referencing table "
        "(and locks while doing so)",
        "create the index concurrently (outside a transaction), one per foreign key:",
        _items(rows, fix),
    )


def check_invalid_indexes(facts: Facts) -> Finding:
    rows = facts.invalid_indexes
    if not rows:
        return Finding("invalid_indexes", "ok", "no invalid indexes")

    def fix(row: Row) -> str:
        index = qualified(row["schemaname"], row["indexrelname"])
        unique = " (unique: remove the duplicate rows first)" if row.get("is_unique") else ""
        return f"{row['relname']}: DROP INDEX CONCURRENTLY {index};{unique}"

    return Finding(
        "invalid_indexes",
        "error",
        f"{len(rows)} invalid index(es) left by a failed CREATE INDEX CONCURRENTLY",
        "an invalid index serves no query but every write still updates it, and re-running "
        "the migration fails because the name is taken",
        "drop it, fix the cause, then build it again (or REINDEX INDEX CONCURRENTLY):",
        _items(rows, fix),
    )


def check_not_valid_constraints(facts: Facts) -> Finding:
    rows = facts.not_valid_constraints
    if not rows:
        return Finding("not_valid_constraints", "ok", "every constraint is validated")

    def fix(row: Row) -> str:
        table = qualified(row["schemaname"], row["relname"])
        return f"ALTER TABLE {table} VALIDATE CONSTRAINT {quote_ident(row['conname'])};"

    return Finding(
        "not_valid_constraints",
        "warning",
        f"{len(rows)} constraint(s) added NOT VALID and never validated",
        "existing rows were never checked, and the planner cannot rely on the constraint; "
        "usually the second phase of a migration that did not run",
        "validate (takes SHARE UPDATE EXCLUSIVE: reads and writes continue):",
        _items(rows, fix),
    )


def check_long_transactions(facts: Facts, threshold: float = LONG_TRANSACTION_SECONDS) -> Finding:
    rows = [r for r in facts.long_transactions if float(r.get("xact_seconds") or 0) >= threshold]
    if not rows:
        return Finding("long_transactions", "ok", f"no transaction open longer than {threshold:g}s")

    def item(row: Row) -> str:
        return (
            f"pid {row['pid']} ({row.get('usename') or '?'}, "
            f"{row.get('application_name') or 'no application_name'}, "
            f"{row.get('state') or '?'}) open {float(row['xact_seconds']):.0f}s"
        )

    return Finding(
        "long_transactions",
        "warning",
        f"{len(rows)} transaction(s) open longer than {threshold:g}s",
        "they hold locks a migration will queue behind, and keep VACUUM from removing dead rows",
        "find the code path that leaves them open; end one now with "
        "SELECT pg_terminate_backend(pid); and set idle_in_transaction_session_timeout",
        _items(rows, item),
    )


def check_tables_without_pk(facts: Facts) -> Finding:
    rows = facts.tables_without_pk
    if not rows:
        return Finding("tables_without_pk", "ok", "every table has a primary key")
    return Finding(
        "tables_without_pk",
        "warning",
        f"{len(rows)} table(s) without a primary key",
        "logical replication cannot replicate their UPDATEs and DELETEs, online migration "
        "tools need a key, and ORMs cannot identify rows",
        "ALTER TABLE ... ADD PRIMARY KEY (...); (build a unique index concurrently first, "
        "then ADD PRIMARY KEY USING INDEX):",
        _items(rows, lambda row: qualified(row["schemaname"], row["relname"])),
    )


def run_checks(
    facts: Facts,
    plan: PoolPlan | None,
    long_transaction_seconds: float = LONG_TRANSACTION_SECONDS,
) -> list[Finding]:
    """Every check, in the order the report shows them."""
    return [
        check_pool(facts, plan),
        check_statement_timeout(facts),
        check_idle_in_transaction_timeout(facts),
        check_pg_stat_statements(facts),
        check_invalid_indexes(facts),
        check_not_valid_constraints(facts),
        check_fk_missing_index(facts),
        check_long_transactions(facts, long_transaction_seconds),
        check_tables_without_pk(facts),
    ]


def worst(findings: Sequence[Finding]) -> Level:
    return max((f.level for f in findings), key=LEVELS.index, default="ok")


def exit_code(findings: Sequence[Finding]) -> int:
    """1 when any finding is an error, so ``dbpulse doctor`` can gate a deploy."""
    return 1 if worst(findings) == "error" else 0
