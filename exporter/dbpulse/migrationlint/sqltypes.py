"""Pure facts about types and expressions: which type changes rewrite, which defaults are volatile.

PostgreSQL skips the table rewrite of ``ALTER COLUMN ... TYPE`` only when the old type is
binary coercible to the new one and the new limit cannot reject an old value; this module
knows the common cases (varchar widening, varchar <-> text, numeric precision increase,
dropping a limit). Volatility is judged by function name: the functions a default usually
calls are listed; others are "unknown" (``--dsn`` cannot settle it either without the
function's schema, so the rule says so instead of guessing).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pglast import ast

# Parser spellings to catalog names (the parser already maps most: integer -> int4).
_ALIASES = {
    "character varying": "varchar",
    "character": "bpchar",
    "char": "bpchar",
    "int": "int4",
    "integer": "int4",
    "bigint": "int8",
    "smallint": "int2",
    "decimal": "numeric",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "bit varying": "varbit",
}
SERIAL_TYPES = frozenset({"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"})

# Functions a column default calls that return a new value per row: the table is rewritten.
VOLATILE_FUNCTIONS = frozenset(
    {
        "random",
        "clock_timestamp",
        "timeofday",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "uuidv4",
        "uuidv7",
        "nextval",
        "setseed",
        "txid_current",
        "pg_current_xact_id",
    }
)
# Stable or immutable: evaluated once for ADD COLUMN, stored as the "missing" value (PG 11+).
NONVOLATILE_FUNCTIONS = frozenset(
    {
        "now",
        "transaction_timestamp",
        "statement_timestamp",
        "current_date",
        "localtimestamp",
        "to_jsonb",
        "jsonb_build_object",
        "json_build_object",
        "jsonb_build_array",
        "array",
        "lower",
        "upper",
        "coalesce",
        "concat",
        "make_interval",
        "timezone",
    }
)


@dataclass(frozen=True)
class ColumnType:
    name: str  # catalog name, "[]" appended for arrays
    mods: tuple[int, ...] = ()

    def render(self) -> str:
        base = self.name.removesuffix("[]")
        mods = f"({','.join(str(m) for m in self.mods)})" if self.mods else ""
        return base + mods + ("[]" if self.name.endswith("[]") else "")


def column_type(type_name: ast.TypeName) -> ColumnType:
    names = [n.sval or "" for n in type_name.names or () if isinstance(n, ast.String)]
    name = names[-1].lower() if names else "?"
    name = _ALIASES.get(name, name)
    mods: list[int] = []
    for mod in type_name.typmods or ():
        if isinstance(mod, ast.A_Const) and isinstance(mod.val, ast.Integer):
            mods.append(mod.val.ival or 0)
    if type_name.arrayBounds:
        name += "[]"
    return ColumnType(name, tuple(mods))


def rewrites(old: ColumnType, new: ColumnType) -> bool:  # noqa: PLR0911 - one return per safe cast
    """True when ``ALTER COLUMN TYPE old -> new`` (no USING) rewrites the table."""
    if old == new:
        return False
    if old.name == "varchar" and new.name == "text":
        return False
    if old.name == "text" and new.name == "varchar" and not new.mods:
        return False
    if old.name == new.name and old.name in {"varchar", "varbit"}:
        # Unlimited, or at least as long: no stored value can fail the new limit.
        if not new.mods:
            return False
        return not (old.mods and new.mods[0] >= old.mods[0])
    if old.name == new.name == "numeric":
        if not new.mods:
            return False
        if not old.mods:
            return True
        old_scale = old.mods[1] if len(old.mods) > 1 else 0
        new_scale = new.mods[1] if len(new.mods) > 1 else 0
        return not (new_scale == old_scale and new.mods[0] >= old.mods[0])
    return not (old.name == "cidr" and new.name == "inet")


def maybe_safe_target(new: ColumnType) -> bool:
    """A target that some old types reach without a rewrite (so an unknown old type is unsure)."""
    return new.name in {"text", "varchar", "numeric", "varbit", "inet"}


Volatility = Literal["volatile", "nonvolatile", "unknown"]


def _walk(node: object) -> Iterator[ast.Node]:
    if isinstance(node, ast.Node):
        yield node
        for name in node:
            yield from _walk(getattr(node, name))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from _walk(item)


def volatility(expr: ast.Node) -> tuple[Volatility, str]:
    """The expression's worst volatility, and the function that decided it."""
    worst: tuple[Volatility, str] = ("nonvolatile", "")
    for node in _walk(expr):
        if not isinstance(node, ast.FuncCall):
            continue
        names = [n.sval or "" for n in node.funcname or () if isinstance(n, ast.String)]
        name = names[-1].lower() if names else "?"
        if name in VOLATILE_FUNCTIONS:
            return ("volatile", name)
        if name not in NONVOLATILE_FUNCTIONS and worst[0] == "nonvolatile":
            worst = ("unknown", name)
    return worst
