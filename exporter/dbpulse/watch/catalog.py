"""What a migration left behind: indexes and constraints before and after, compared.

An index build that fails within milliseconds never shows in pg_stat_progress_create_index
between two polls, but a failed ``CREATE INDEX CONCURRENTLY`` always leaves its INVALID
index in pg_index: comparing the catalog taken before the migration with the one after
reports every build, however short. Objects are keyed by name (schema-qualified as
``::regclass`` prints them), so an index dropped and rebuilt under the same name is
compared with its earlier self.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from dbpulse.sidecar.base import query

# User schemas only: pg_catalog, information_schema and TOAST indexes are the server's.
SQL_INDEXES = """
SELECT x.indexrelid::regclass::text AS name, x.indrelid::regclass::text AS relname,
       x.indisvalid AS valid
FROM pg_index x
JOIN pg_class c ON c.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
"""

SQL_CONSTRAINTS = """
SELECT c.conname AS name, c.conrelid::regclass::text AS relname, c.contype::text AS type,
       c.convalidated AS valid
FROM pg_constraint c
JOIN pg_namespace n ON n.oid = c.connamespace
WHERE c.conrelid <> 0
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
"""

CONSTRAINT_TYPES = {"c": "check", "f": "foreign key", "p": "primary key", "u": "unique"}


@dataclass(frozen=True)
class Catalog:
    """Index name -> (table, valid); (table, constraint) -> (type, validated)."""

    indexes: dict[str, tuple[str, bool]]
    constraints: dict[tuple[str, str], tuple[str, bool]]


def read_catalog(conn: psycopg.Connection[Any]) -> Catalog:
    indexes = {
        str(r["name"]): (str(r["relname"]), bool(r["valid"])) for r in query(conn, SQL_INDEXES)
    }
    constraints = {
        (str(r["relname"]), str(r["name"])): (
            CONSTRAINT_TYPES.get(str(r["type"]), str(r["type"])),
            bool(r["valid"]),
        )
        for r in query(conn, SQL_CONSTRAINTS)
    }
    return Catalog(indexes, constraints)


@dataclass(frozen=True)
class Change:
    """One difference between the catalog before and after; ``bad`` ones fail the watch."""

    text: str
    bad: bool = False
    index: str | None = None  # the index this change is about, to match a build step
    table: str = ""


# The migration tool's own bookkeeping table is not part of the application's schema.
BOOKKEEPING_TABLES = frozenset({"alembic_version", "public.alembic_version"})


def compare(before: Catalog, after: Catalog) -> list[Change]:
    """What the migration created, dropped, invalidated or validated (pure)."""
    changes = _index_changes(before, after) + _constraint_changes(before, after)
    return [c for c in changes if c.table not in BOOKKEEPING_TABLES]


def _index_changes(before: Catalog, after: Catalog) -> list[Change]:
    changes: list[Change] = []
    for name, (table, valid) in sorted(after.indexes.items()):
        old = before.indexes.get(name)
        if old is None and valid:
            changes.append(Change(f"new index {name} on {table}: valid", index=name, table=table))
        elif old is None:
            changes.append(
                Change(
                    f"new index {name} on {table} left INVALID: "
                    f"DROP INDEX CONCURRENTLY {name}, fix the cause, build it again",
                    bad=True,
                    index=name,
                    table=table,
                )
            )
        elif old[1] and not valid:
            changes.append(
                Change(f"index {name} on {table} became INVALID", bad=True, index=name, table=table)
            )
        elif not old[1] and valid:
            changes.append(
                Change(f"index {name} on {table}: was INVALID, now valid", index=name, table=table)
            )
    changes += [
        Change(f"index {name} on {table} dropped", index=name, table=table)
        for name, (table, _) in sorted(before.indexes.items())
        if name not in after.indexes
    ]
    return changes


def _constraint_changes(before: Catalog, after: Catalog) -> list[Change]:
    changes: list[Change] = []
    for key, (kind, valid) in sorted(after.constraints.items()):
        table, name = key
        old = before.constraints.get(key)
        if old is None and valid:
            changes.append(
                Change(f"new {kind} constraint {name} on {table}: validated", table=table)
            )
        elif old is None:
            changes.append(
                Change(
                    f"new {kind} constraint {name} on {table} left NOT VALID: "
                    f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}",
                    bad=True,
                    table=table,
                )
            )
        elif not old[1] and valid:
            changes.append(Change(f"{kind} constraint {name} on {table}: validated", table=table))
    changes += [
        Change(f"{kind} constraint {name} on {table} dropped", table=table)
        for (table, name), (kind, _) in sorted(before.constraints.items())
        if (table, name) not in after.constraints
    ]
    return changes
