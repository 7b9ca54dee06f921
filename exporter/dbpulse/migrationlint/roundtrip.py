"""``--roundtrip``: upgrade, downgrade step by step to base, upgrade again, on a throwaway database.

The database is created on the DSN's server and dropped afterwards. Before each upgrade
step the schema is snapshotted from the catalog (tables, columns with types, nullability
and defaults, indexes, constraints, and the enum types, sequences and views a downgrade
most often forgets: ``op.drop_table`` leaves a ``sa.Enum``'s type behind); after that
step's downgrade it must be the same.
The first step that fails or differs is the report.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbpulse.errors import first_line
from dbpulse.migrationlint.alembic_source import driver_error, run_driver
from dbpulse.migrationlint.sqlsource import SourceError

_SNAPSHOT = """
SELECT 'table ' || n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND {user_schemas} AND c.relname <> 'alembic_version'
UNION ALL
SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' '
       || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {user_schemas}
  AND c.relname <> 'alembic_version'
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
       || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {user_schemas} AND c.relname <> 'alembic_version'
UNION ALL
SELECT 'constraint ' || n.nspname || '.' || c.relname || ' ' || k.conname || ' '
       || pg_get_constraintdef(k.oid) || CASE WHEN k.convalidated THEN '' ELSE ' NOT VALID' END
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {user_schemas} AND c.relname <> 'alembic_version'
UNION ALL
SELECT 'type ' || n.nspname || '.' || t.typname || ' enum ('
       || string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder) || ')'
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE {user_schemas}
GROUP BY n.nspname, t.typname
UNION ALL
SELECT CASE c.relkind WHEN 'S' THEN 'sequence ' ELSE 'view ' END
       || n.nspname || '.' || c.relname
       || CASE WHEN c.relkind = 'S' THEN '' ELSE ' ' || pg_get_viewdef(c.oid) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('S', 'v', 'm') AND {user_schemas}
""".format(
    user_schemas="n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname !~ '^pg_toast'"
)
_DIFF_SHOWN = 8


class RoundtripError(Exception):
    """The server cannot host the throwaway database (connect, CREATE DATABASE)."""


@dataclass
class Step:
    action: str  # "upgrade a1", "downgrade a1 -> base", "upgrade head again"
    ok: bool
    detail: str = ""


@dataclass
class RoundtripReport:
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> Step | None:
        return next((s for s in self.steps if not s.ok), None)


def snapshot(dsn: str) -> frozenset[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return frozenset(row[0] for row in conn.execute(_SNAPSHOT))


def diff(before: frozenset[str], after: frozenset[str]) -> str:
    """``+ x`` for what is new after the downgrade, ``- y`` for what it failed to restore."""
    lines = [f"+ {x}" for x in sorted(after - before)] + [f"- {x}" for x in sorted(before - after)]
    shown = lines[:_DIFF_SHOWN]
    if len(lines) > _DIFF_SHOWN:
        shown.append(f"... and {len(lines) - _DIFF_SHOWN} more")
    return "; ".join(shown)


def _with_dbname(dsn: str, dbname: str) -> str:
    return make_conninfo(dsn, dbname=dbname)


def _url(dsn: str) -> str:
    """A SQLAlchemy URL for Alembic from a libpq DSN (keyword or URI form)."""
    from sqlalchemy.engine import URL

    parts = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    port = parts.pop("port", None)
    url = URL.create(
        "postgresql+psycopg",
        username=parts.pop("user", None),
        password=parts.pop("password", None),
        host=parts.pop("host", None),
        port=int(port) if port else None,
        database=parts.pop("dbname", None),
        query=parts,
    )
    return url.render_as_string(hide_password=False)


def run(
    ini: Path,
    dsn: str,
    order: list[str],
    say: Callable[[str], None],
    *,
    python: str | None = None,
) -> RoundtripReport:
    """The whole roundtrip on a database created for it; ``order``: revisions base to head."""
    name = f"dbpulse_roundtrip_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as err:
        raise RoundtripError(f"cannot create a throwaway database: {first_line(err)}") from None
    try:
        target = _with_dbname(dsn, name)
        url = _url(target)

        def step(verb: str, revision: str) -> str:
            return _step(ini, url, verb, revision, python=python)

        return _roundtrip(step, target, order, say)
    finally:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(drop)
        except psycopg.Error as err:
            say(f"could not drop the throwaway database {name}: {first_line(err)}")


def _version(dsn: str) -> str | None:
    """The throwaway database's alembic_version: proof the step ran there."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return str(row[0]) if row else None


def _step(ini: Path, url: str, verb: str, target: str, *, python: str | None) -> str:
    try:
        result = run_driver(
            "run",
            str(ini.resolve()),
            verb,
            target,
            cwd=ini.resolve().parent,
            python=python,
            url=url,
        )
    except SourceError as err:
        return str(err)
    return "" if result.returncode == 0 else driver_error(result)


def _roundtrip(
    step: Callable[[str, str], str], dsn: str, order: list[str], say: Callable[[str], None]
) -> RoundtripReport:
    report = RoundtripReport()
    before: list[frozenset[str]] = []
    for rev in order:
        before.append(snapshot(dsn))
        error = step("upgrade", rev)
        if not error and _version(dsn) != rev:
            error = (
                f"the throwaway database is not at {rev} after the upgrade: env.py migrated "
                "another database (its URL must come from the Alembic config or an engine)"
            )
        report.steps.append(Step(f"upgrade to {rev}", not error, error))
        say(f"upgrade to {rev}: {'failed: ' + error if error else 'ok'}")
        if error:
            return report
    at_head = snapshot(dsn)
    for index in range(len(order) - 1, -1, -1):
        target = order[index - 1] if index > 0 else "base"
        action = f"downgrade {order[index]} -> {target}"
        error = step("downgrade", target)
        if error:
            report.steps.append(Step(action, False, error))
            say(f"{action}: failed: {error}")
            return report
        changed = diff(before[index], snapshot(dsn))
        detail = (
            f"schema differs from before upgrade to {order[index]}: {changed}" if changed else ""
        )
        report.steps.append(Step(action, not changed, detail))
        say(f"{action}: {detail or 'ok'}")
        if changed:
            return report
    error = step("upgrade", "head")
    changed = "" if error else diff(at_head, snapshot(dsn))
    detail = error or (f"schema differs from the first upgrade: {changed}" if changed else "")
    report.steps.append(Step("upgrade head again", not detail, detail))
    say(f"upgrade head again: {detail or 'ok'}")
    return report
