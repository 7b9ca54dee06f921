"""``--dsn``: what the target database says (I/O only): server version, table sizes, column types.

Row counts are the planner's estimates (``reltuples``); a table never analysed counts as
empty only when it has no pages, else as unknown, so no finding is downgraded on a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from dbpulse.errors import first_line
from dbpulse.migrationlint.sqltypes import ColumnType

_TABLES = """
SELECT c.relname, CASE WHEN c.reltuples >= 0 THEN c.reltuples
                       WHEN c.relpages = 0 THEN 0 END AS rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
"""
_COLUMNS = """
SELECT c.relname, a.attname, t.typname, a.atttypmod, a.attndims
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


class LiveError(Exception):
    """The database cannot be reached or read."""


@dataclass
class Live:
    server_version_num: int
    rows: dict[str, float] = field(default_factory=dict)
    columns: dict[tuple[str, str], ColumnType] = field(default_factory=dict)


def catalog_type(typname: str, typmod: int, ndims: int) -> ColumnType:
    """pg_type name + atttypmod -> the parser's shape (varchar(n), numeric(p,s))."""
    base = typname.removeprefix("_")
    mods: tuple[int, ...] = ()
    if typmod >= 0:
        if base in {"varchar", "bpchar"}:
            mods = (typmod - 4,)
        elif base == "numeric":
            mods = ((typmod - 4) >> 16, (typmod - 4) & 0xFFFF)
        elif base in {"varbit", "bit"}:
            mods = (typmod,)
    return ColumnType(base + ("[]" if ndims or typname.startswith("_") else ""), mods)


def fetch(dsn: str, timeout: float = 10.0) -> Live:
    try:
        with psycopg.connect(dsn, connect_timeout=int(timeout), autocommit=True) as conn:
            live = Live(conn.info.server_version)
            for name, rows in conn.execute(_TABLES):
                if rows is None:
                    continue
                # The same name in two schemas: assume the larger (never downgrade wrongly).
                live.rows[name] = max(float(rows), live.rows.get(name, 0.0))
            for table, column, typname, typmod, ndims in conn.execute(_COLUMNS):
                live.columns[(table, column)] = catalog_type(typname, typmod, ndims)
            return live
    except psycopg.Error as err:
        raise LiveError(f"cannot read the database: {first_line(err)}") from None
