"""Checks of what the database holds now: schema left half-migrated, open transactions.

Invalid indexes, NOT VALID constraints, foreign keys without an index, tables without a
primary key, and transactions open too long. Pure: facts in, findings out.
"""

from __future__ import annotations

from dbpulse.doctor.facts import Facts, Row
from dbpulse.doctor.findings import MAX_ITEMS, Finding, items, qualified, quote_ident
from dbpulse.plans import advice
from dbpulse.plans.tree import root, summary

LONG_TRANSACTION_SECONDS = 300.0


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
        items(rows, fix),
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
        items(rows, fix),
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
        items(rows, fix),
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
        items(rows, item),
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
        items(rows, lambda row: qualified(row["schemaname"], row["relname"])),
    )


def check_plan_advice(facts: Facts) -> Finding | None:
    """Advice from the plans of the top statements (None when they were not planned)."""
    if facts.top_plans is None:
        return None
    catalog = advice.catalog_facts(facts.plan_catalog)
    lines: list[str] = []
    planned = 0
    for entry in facts.top_plans:
        if entry.get("plan") is None:
            continue
        planned += 1
        top = root(entry["plan"])
        for finding in advice.advise(top, catalog):
            lines.append(
                f"queryid {entry['queryid']} ({summary(top)}): {finding.message}; "
                f"fix: {finding.fix}"
            )
    if not lines:
        return Finding(
            "plan_advice",
            "ok",
            f"no plan advice for the top {planned} statement(s)",
        )
    shown = lines[:MAX_ITEMS] + (
        [f"... and {len(lines) - MAX_ITEMS} more"] if len(lines) > MAX_ITEMS else []
    )
    return Finding(
        "plan_advice",
        "warning",
        f"{len(lines)} finding(s) in the plans of the top {planned} statement(s)",
        "generic plans (EXPLAIN, never ANALYZE) of the statements that take the most "
        "time: sequential scans a filter could avoid, N+1-like nested loops, sorts and "
        "hashes past work_mem, joins on foreign keys without an index",
        "apply the fix named on each line (indexes: CREATE INDEX CONCURRENTLY, outside a "
        "transaction)",
        shown,
    )
