"""What the statements so far have established, as an immutable value (pure).

``advance(ctx, node)`` returns the context after one statement: the open transaction,
whether lock_timeout is set, which tables this migration created (an index on a table
nobody else can see yet needs no CONCURRENTLY), which NOT NULL checks are validated,
and the column types seen (so ``ALTER COLUMN TYPE`` knows what it changes from).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pglast import ast
from pglast.enums import (
    AlterTableType,
    ConstrType,
    NullTestType,
    TransactionStmtKind,
    VariableSetKind,
)

from dbpulse.migrationlint.sqltypes import ColumnType, column_type

_BEGIN = {TransactionStmtKind.TRANS_STMT_BEGIN, TransactionStmtKind.TRANS_STMT_START}
_END = {
    TransactionStmtKind.TRANS_STMT_COMMIT,
    TransactionStmtKind.TRANS_STMT_ROLLBACK,
    TransactionStmtKind.TRANS_STMT_PREPARE,
}


@dataclass(frozen=True)
class Context:
    server_major: int | None = None  # from --dsn or --pg-version; None: a supported release
    server_version_num: int | None = None  # from --dsn only: e.g. 140003 (minor releases)
    table_rows: Mapping[str, float] = field(default_factory=dict)  # --dsn: estimated rows
    live: bool = False  # table_rows came from the target database (--dsn)
    small_rows: int = 10_000  # at or below: a rewrite or scan is fine (level info)
    in_transaction: bool = False
    lock_timeout: bool = False  # SET lock_timeout (session) in this migration or before it
    local_lock_timeout: bool = False  # SET LOCAL lock_timeout in the open transaction
    preamble_lock_timeout: bool = False  # set before the first migration (env.py)
    lock_warned: bool = False  # lock-timeout-missing reported once per migration
    created: frozenset[str] = frozenset()  # tables created by this migration
    created_in_run: frozenset[str] = frozenset()  # ... or by an earlier one in this lint run
    filled: frozenset[str] = frozenset()  # tables an INSERT or COPY in this run writes to
    created_indexes: frozenset[str] = frozenset()
    not_valid_in_tx: frozenset[str] = frozenset()  # constraints added NOT VALID, still uncommitted
    pending_not_null: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    not_null_checks: frozenset[tuple[str, str]] = frozenset()  # validated CHECK (col IS NOT NULL)
    column_types: Mapping[tuple[str, str], ColumnType] = field(default_factory=dict)

    @property
    def has_lock_timeout(self) -> bool:
        return self.lock_timeout or self.local_lock_timeout

    def rows(self, table: str) -> float | None:
        """Estimated rows: the catalog's; 0 for a table the database does not have yet that
        an earlier migration of this run creates and nothing fills; else unknown."""
        if table in self.table_rows:
            return self.table_rows[table]
        if self.live and table in self.created_in_run and table not in self.filled:
            return 0.0
        return None

    def small(self, table: str) -> float | None:
        """The table's row estimate when it is small enough for a rewrite; else None."""
        rows = self.rows(table)
        return rows if rows is not None and rows <= self.small_rows else None


def start_unit(ctx: Context) -> Context:
    """A new migration begins: what it creates is its own; a SET from before it carries over
    only when it came from outside any migration (env.py), since each may deploy alone."""
    return replace(
        ctx,
        created=frozenset(),
        created_indexes=frozenset(),
        lock_timeout=ctx.preamble_lock_timeout,
        lock_warned=False,
    )


def relname(rel: ast.RangeVar | None) -> str:
    return (rel.relname or "").lower() if rel is not None else ""


def _set_value_on(node: ast.VariableSetStmt) -> bool:
    """True unless the SET turns the timeout off (0, or RESET / DEFAULT)."""
    if node.kind != VariableSetKind.VAR_SET_VALUE:
        return False
    for arg in node.args or ():
        if isinstance(arg, ast.A_Const):
            val = arg.val
            if isinstance(val, ast.Integer):
                return val.ival != 0
            if isinstance(val, ast.String):
                return (val.sval or "").strip() not in {"0", "0ms", "0s", ""}
    return True


def not_null_column(expr: ast.Node | None) -> str | None:
    """``col IS NOT NULL`` -> col: the CHECK that lets SET NOT NULL skip its scan."""
    if (
        isinstance(expr, ast.NullTest)
        and expr.nulltesttype == NullTestType.IS_NOT_NULL
        and isinstance(expr.arg, ast.ColumnRef)
    ):
        fields = [f.sval or "" for f in expr.arg.fields or () if isinstance(f, ast.String)]
        return fields[-1].lower() if fields else None
    return None


def _added_constraint(
    ctx: Context,
    table: str,
    con: ast.Constraint,
    *,
    not_valid: set[str],
    pending: dict[str, tuple[str, str]],
    checks: set[tuple[str, str]],
) -> None:
    """Record an ADD CONSTRAINT into the sets being built (``_advance_alter``'s helper)."""
    name = (con.conname or "").lower()
    column = not_null_column(con.raw_expr) if con.contype == ConstrType.CONSTR_CHECK else None
    if con.skip_validation:
        if ctx.in_transaction and name:
            not_valid.add(name)
        if column and name:
            pending[name] = (table, column)
    elif column:
        checks.add((table, column))


def _advance_alter(ctx: Context, node: ast.AlterTableStmt) -> Context:
    table = relname(node.relation)
    types = dict(ctx.column_types)
    not_valid = set(ctx.not_valid_in_tx)
    pending = dict(ctx.pending_not_null)
    checks = set(ctx.not_null_checks)
    for cmd in node.cmds or ():
        if not isinstance(cmd, ast.AlterTableCmd):
            continue
        if cmd.subtype == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
            if cmd.def_.colname and cmd.def_.typeName is not None:
                types[(table, cmd.def_.colname.lower())] = column_type(cmd.def_.typeName)
        elif cmd.subtype == AlterTableType.AT_AlterColumnType and isinstance(
            cmd.def_, ast.ColumnDef
        ):
            if cmd.name and cmd.def_.typeName is not None:
                types[(table, cmd.name.lower())] = column_type(cmd.def_.typeName)
        elif cmd.subtype == AlterTableType.AT_AddConstraint and isinstance(
            cmd.def_, ast.Constraint
        ):
            _added_constraint(
                ctx, table, cmd.def_, not_valid=not_valid, pending=pending, checks=checks
            )
        elif cmd.subtype == AlterTableType.AT_ValidateConstraint and cmd.name:
            found = pending.pop(cmd.name.lower(), None)
            if found:
                checks.add(found)
    return replace(
        ctx,
        column_types=types,
        not_valid_in_tx=frozenset(not_valid),
        pending_not_null=pending,
        not_null_checks=frozenset(checks),
    )


def _advance_create(ctx: Context, node: ast.CreateStmt) -> Context:
    table = relname(node.relation)
    types = dict(ctx.column_types)
    for elt in node.tableElts or ():
        if isinstance(elt, ast.ColumnDef) and elt.colname and elt.typeName is not None:
            types[(table, elt.colname.lower())] = column_type(elt.typeName)
    return replace(
        ctx,
        created=ctx.created | {table},
        created_in_run=ctx.created_in_run | {table},
        column_types=types,
    )


def advance(ctx: Context, node: ast.Node, *, warned: bool = False) -> Context:  # noqa: PLR0911 - one return per statement kind
    """The context after ``node``; ``warned``: the rules just reported a missing lock_timeout."""
    if warned:
        ctx = replace(ctx, lock_warned=True)
    if isinstance(node, ast.TransactionStmt):
        if node.kind in _BEGIN:
            return replace(ctx, in_transaction=True)
        if node.kind in _END:
            return replace(
                ctx, in_transaction=False, local_lock_timeout=False, not_valid_in_tx=frozenset()
            )
        return ctx
    if isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() == "lock_timeout":
        on = _set_value_on(node)
        if node.is_local:
            return replace(ctx, local_lock_timeout=on and ctx.in_transaction)
        return replace(ctx, lock_timeout=on)
    if isinstance(node, ast.CreateStmt):
        return _advance_create(ctx, node)
    if isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
        # CREATE TABLE AS fills the table: new for this migration, not empty for the next.
        name = relname(node.into.rel)
        return replace(ctx, created=ctx.created | {name}, filled=ctx.filled | {name})
    if isinstance(node, ast.InsertStmt | ast.CopyStmt):
        return replace(ctx, filled=ctx.filled | {relname(node.relation)})
    if isinstance(node, ast.IndexStmt) and node.idxname:
        return replace(ctx, created_indexes=ctx.created_indexes | {node.idxname.lower()})
    if isinstance(node, ast.AlterTableStmt):
        return _advance_alter(ctx, node)
    return ctx


def mark_preamble(ctx: Context) -> Context:
    """Outside any migration (env.py's own statements): a SET there covers every migration."""
    return replace(ctx, preamble_lock_timeout=ctx.lock_timeout)
