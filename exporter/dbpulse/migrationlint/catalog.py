"""The rule catalog: each rule's name, default level, the seed's fix, and its anchors.

One table feeds the rules (level, fix), the ignore-comment check (known names) and the
README's rule table (the squawk and strong_migrations names each rule maps to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["info", "warning", "error"]
LEVELS: tuple[Level, ...] = ("info", "warning", "error")


@dataclass(frozen=True)
class Rule:
    name: str
    level: Level
    summary: str
    fix: str
    squawk: str  # the squawk rule(s) covering the same hazard; "" when squawk has none
    strong_migrations: str  # the strong_migrations check key(s); "" when it has none


_CIC = (
    "CREATE INDEX CONCURRENTLY outside a transaction block (Alembic: "
    "op.create_index(..., postgresql_concurrently=True) inside "
    "`with op.get_context().autocommit_block():`); then check it is not left INVALID"
)
_MULTI_PHASE_COLUMN = (
    "multi-phase: add the new column, write to both, backfill in batches, move reads, "
    "stop writing the old one, drop it in a later deploy"
)

RULES: tuple[Rule, ...] = (
    Rule(
        "create-index-not-concurrently",
        "error",
        "CREATE INDEX without CONCURRENTLY on an existing table blocks writes for the build",
        _CIC,
        "require-concurrent-index-creation",
        "add_index, add_reference",
    ),
    Rule(
        "concurrently-in-transaction",
        "error",
        "CONCURRENTLY inside a transaction block fails (CREATE/DROP/REINDEX ... CONCURRENTLY)",
        "run it outside BEGIN ... COMMIT: Alembic's autocommit_block(), or a migration of its own",
        "ban-concurrent-index-creation-in-transaction",
        "",
    ),
    Rule(
        "add-column-not-null-no-default",
        "error",
        "ADD COLUMN ... NOT NULL without a DEFAULT fails on a table that has rows",
        "multi-phase: add it nullable, backfill in committed batches, then SET NOT NULL "
        "behind a validated CHECK (col IS NOT NULL)",
        "adding-required-field",
        "",
    ),
    Rule(
        "add-column-rewrite",
        "error",
        "ADD COLUMN that rewrites the table under ACCESS EXCLUSIVE (volatile default, serial, "
        "identity, stored generated column; any default before PostgreSQL 11)",
        "add the column nullable without a default, ALTER COLUMN ... SET DEFAULT for new rows, "
        "backfill existing rows in committed batches",
        "adding-field-with-default, adding-serial-primary-key-field",
        "add_column_default, add_column_default_callable, add_column_generated_stored, "
        "add_column_auto_incrementing",
    ),
    Rule(
        "set-not-null-without-check",
        "error",
        "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE",
        "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c in another "
        "transaction; then SET NOT NULL (PostgreSQL 12+ skips the scan) and DROP CONSTRAINT c",
        "adding-not-nullable-field",
        "change_column_null_postgresql",
    ),
    Rule(
        "add-foreign-key-not-valid",
        "error",
        "ADD FOREIGN KEY validates every row while blocking writes on both tables",
        "ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, then VALIDATE CONSTRAINT in a separate "
        "transaction (it takes only SHARE UPDATE EXCLUSIVE)",
        "adding-foreign-key-constraint",
        "add_foreign_key",
    ),
    Rule(
        "add-check-not-valid",
        "error",
        "ADD CHECK validates every row under ACCESS EXCLUSIVE",
        "ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE CONSTRAINT in a separate "
        "transaction",
        "constraint-missing-not-valid",
        "add_check_constraint",
    ),
    Rule(
        "validate-in-same-transaction",
        "warning",
        "VALIDATE CONSTRAINT in the transaction that added it NOT VALID keeps the ADD's lock "
        "for the whole validation",
        "commit between ADD ... NOT VALID and VALIDATE CONSTRAINT (a second migration, or "
        "an autocommit_block() around the VALIDATE)",
        "constraint-missing-not-valid",
        "validate_foreign_key, validate_check_constraint",
    ),
    Rule(
        "alter-column-type-rewrite",
        "error",
        "ALTER COLUMN ... TYPE rewrites the table and its indexes under ACCESS EXCLUSIVE",
        _MULTI_PHASE_COLUMN + " (safe without a rewrite: varchar widening, varchar to text, "
        "numeric precision increase, dropping a length/precision limit)",
        "changing-column-type",
        "change_column",
    ),
    Rule(
        "rename-column",
        "error",
        "RENAME COLUMN breaks the running code that still uses the old name",
        _MULTI_PHASE_COLUMN,
        "renaming-column",
        "rename_column",
    ),
    Rule(
        "rename-table",
        "error",
        "RENAME TABLE breaks the running code that still uses the old name",
        "multi-phase: create the new table, write to both, backfill, move reads, stop "
        "writing the old one, drop it later (or leave a view under the old name meanwhile)",
        "renaming-table",
        "rename_table",
    ),
    Rule(
        "drop-column",
        "warning",
        "DROP COLUMN breaks code (and ORM models) that still select it",
        "multi-phase: ship code that stops using the column first (SQLAlchemy: remove it from "
        "the model or mark it deferred), deploy, then drop it in a later migration",
        "ban-drop-column",
        "remove_column",
    ),
    Rule(
        "drop-table",
        "warning",
        "DROP TABLE breaks code that still uses the table, and loses its data",
        "multi-phase: ship code that stops using the table first, deploy, then drop it in a "
        "later migration",
        "ban-drop-table",
        "",
    ),
    Rule(
        "lock-timeout-missing",
        "warning",
        "a statement waiting for a strong lock queues every later query on the table "
        "behind it; without lock_timeout that wait is unbounded",
        "SET lock_timeout = '5s' (or SET LOCAL inside the transaction) before it, and retry "
        "the migration when it times out",
        "require-timeout-settings",
        "",
    ),
    Rule(
        "whole-table-update",
        "error",
        "UPDATE/DELETE without WHERE touches every row in one transaction (row locks, "
        "bloat, replication lag)",
        "backfill in batches, each committed: UPDATE ... WHERE id IN (SELECT id ... WHERE "
        "col IS NULL ORDER BY id LIMIT 10000) until no row changes",
        "",
        "backfilling data (update_all), change_column_null with a default",
    ),
    Rule(
        "missing-downgrade",
        "warning",
        "the revision's downgrade() does nothing: the deploy cannot be rolled back",
        "write the downgrade (and test it: dbpulse lint-migrations --roundtrip --dsn ...); "
        "if it truly cannot be undone, raise NotImplementedError with why",
        "",
        "",
    ),
    Rule(
        "add-unique-constraint",
        "error",
        "ADD UNIQUE/PRIMARY KEY builds its index under ACCESS EXCLUSIVE",
        "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... UNIQUE (or PRIMARY "
        "KEY) USING INDEX",
        "disallowed-unique-constraint, adding-primary-key-constraint",
        "",
    ),
    Rule(
        "vacuum-full-or-cluster",
        "error",
        "VACUUM FULL and CLUSTER rewrite the table under ACCESS EXCLUSIVE",
        "pg_repack or pg_squeeze (online), or plain VACUUM; never in a deploy migration",
        "prefer-repack",
        "",
    ),
    Rule(
        "index-pg14-corruption",
        "error",
        "CREATE INDEX / REINDEX CONCURRENTLY on PostgreSQL 14.0-14.3 can silently corrupt the "
        "index (needs --dsn: the server's minor version)",
        "upgrade the server to 14.4 or later first; reindex what was built concurrently on "
        "14.0-14.3",
        "",
        "add_index_corruption",
    ),
    Rule(
        "index-too-many-columns",
        "warning",
        "a non-unique index on more than three columns rarely beats one on its first few",
        "index the two or three columns that narrow the rows most",
        "",
        "add_index_columns",
    ),
    Rule(
        "drop-index-not-concurrently",
        "warning",
        "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table",
        "DROP INDEX CONCURRENTLY outside a transaction block (Alembic: autocommit_block())",
        "require-concurrent-index-deletion",
        "remove_index (opt-in)",
    ),
    Rule(
        "reindex-not-concurrently",
        "error",
        "REINDEX without CONCURRENTLY blocks writes (and reads using the index)",
        "REINDEX ... CONCURRENTLY (PostgreSQL 12+) outside a transaction block",
        "require-concurrent-reindex",
        "",
    ),
    Rule(
        "add-json-column",
        "warning",
        "a json column has no equality operator: SELECT DISTINCT / GROUP BY / UNION on it fail",
        "use jsonb",
        "",
        "add_column_json",
    ),
    Rule(
        "ignore-needs-reason",
        "error",
        "an ignore comment without `reason:` does not suppress anything",
        "add why it is safe: `-- dbpulse: ignore=RULE reason: table is empty`",
        "",
        "",
    ),
    Rule(
        "ignore-unknown-rule",
        "error",
        "an ignore comment names a rule that does not exist",
        "use a name from `dbpulse lint-migrations --list-rules`",
        "",
        "",
    ),
    Rule(
        "syntax-error",
        "error",
        "PostgreSQL's parser rejects the statement",
        "fix the SQL; nothing after a syntax error in that statement is checked",
        "syntax-error",
        "",
    ),
)

BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}
