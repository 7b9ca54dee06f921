"""The rules: one parsed statement plus the context before it -> hits (pure, no I/O).

Each hazard of the seed's zero-downtime decision matrix is a rule here, with the seed's
fix (``catalog``). Tables this migration created are exempt from the lock and rewrite
rules: nobody else can be using them yet. With ``--dsn`` the context knows table sizes,
and a rewrite or scan of a small table drops to level info.
"""
# layout-note: one function per statement kind, dispatched by ``check``;
# layout-note: ALTER TABLE's sub-commands get their own helpers (most hazards live there).

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType

from dbpulse.migrationlint.catalog import BY_NAME, Level
from dbpulse.migrationlint.model import Hit
from dbpulse.migrationlint.sqltypes import (
    SERIAL_TYPES,
    column_type,
    maybe_safe_target,
    rewrites,
    volatility,
)
from dbpulse.migrationlint.state import Context, relname

# ALTER TABLE sub-commands that take less than a write-blocking lock.
_WEAK_ALTERS = {
    AlterTableType.AT_ValidateConstraint,  # SHARE UPDATE EXCLUSIVE
    AlterTableType.AT_SetStatistics,
    AlterTableType.AT_SetOptions,
    AlterTableType.AT_ResetOptions,
    AlterTableType.AT_ClusterOn,
}
_JSON = "json"


def hit(rule: str, message: str, *, level: Level | None = None, fix: str | None = None) -> Hit:
    entry = BY_NAME[rule]
    return Hit(rule, level or entry.level, message, fix if fix is not None else entry.fix)


def sized(ctx: Context, table: str, found: Hit, *, empty_only: bool = False) -> Hit:
    """Level info when the catalog says ``table`` is small (empty, with ``empty_only``)."""
    rows = ctx.rows(table)
    if rows is None or rows > (0 if empty_only else ctx.small_rows):
        return found
    return Hit(
        found.rule,
        "info",
        f"{found.message} (fine here: {table} has ~{rows:,.0f} rows per the catalog)",
        found.fix,
    )


def _option(options: tuple[ast.Node, ...] | None, name: str) -> bool:
    return any(isinstance(o, ast.DefElem) and o.defname == name for o in options or ())


def strong_lock(node: ast.Node, ctx: Context) -> tuple[str, str] | None:  # noqa: PLR0911 - one return per statement kind
    """(lock, table) when ``node`` waits for a lock that blocks writes on an existing table."""
    if isinstance(node, ast.AlterTableStmt) and node.objtype == ObjectType.OBJECT_TABLE:
        table = relname(node.relation)
        cmds = [c for c in node.cmds or () if isinstance(c, ast.AlterTableCmd)]
        if table in ctx.created or all(c.subtype in _WEAK_ALTERS for c in cmds):
            return None
        fk_only = all(
            c.subtype == AlterTableType.AT_AddConstraint
            and isinstance(c.def_, ast.Constraint)
            and c.def_.contype == ConstrType.CONSTR_FOREIGN
            for c in cmds
        )
        return ("SHARE ROW EXCLUSIVE" if fk_only else "ACCESS EXCLUSIVE", table)
    if isinstance(node, ast.IndexStmt) and not node.concurrent:
        table = relname(node.relation)
        return None if table in ctx.created else ("SHARE", table)
    if isinstance(node, ast.RenameStmt) and node.relation is not None:
        table = relname(node.relation)
        return None if table in ctx.created else ("ACCESS EXCLUSIVE", table)
    if isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE:
        names = [_object_name(o) for o in node.objects or ()]
        existing = [n for n in names if n not in ctx.created]
        return ("ACCESS EXCLUSIVE", existing[0]) if existing else None
    if (
        isinstance(node, ast.DropStmt)
        and node.removeType == ObjectType.OBJECT_INDEX
        and not node.concurrent
    ):
        names = [_object_name(o) for o in node.objects or ()]
        existing = [n for n in names if n not in ctx.created_indexes]
        return ("ACCESS EXCLUSIVE", f"the table of index {existing[0]}") if existing else None
    if isinstance(node, ast.TruncateStmt):
        tables = [relname(r) for r in node.relations or () if isinstance(r, ast.RangeVar)]
        existing = [t for t in tables if t not in ctx.created]
        return ("ACCESS EXCLUSIVE", existing[0]) if existing else None
    return None


def _object_name(obj: object) -> str:
    parts = obj if isinstance(obj, tuple) else (obj,)
    names = [p.sval or "" for p in parts if isinstance(p, ast.String)]
    return names[-1].lower() if names else ""


def _lock_timeout(node: ast.Node, ctx: Context) -> list[Hit]:
    if ctx.has_lock_timeout or ctx.lock_warned:
        return []
    lock = strong_lock(node, ctx)
    if lock is None:
        return []
    mode, table = lock
    return [
        hit(
            "lock-timeout-missing",
            f"waits for {mode} on {table} with no lock_timeout set: while it waits (behind "
            "any long transaction), every query on the table queues behind it",
        )
    ]


_PG14_CORRUPTION = range(140000, 140004)  # 14.0-14.3; fixed in 14.4
_MAX_INDEX_COLUMNS = 3  # strong_migrations' threshold for a non-unique index


def _pg14(ctx: Context, what: str) -> list[Hit]:
    if ctx.server_version_num not in _PG14_CORRUPTION:
        return []
    minor = (ctx.server_version_num or 0) % 100
    return [hit("index-pg14-corruption", f"{what} on PostgreSQL 14.{minor}")]


def _index(node: ast.IndexStmt, ctx: Context) -> list[Hit]:
    table = relname(node.relation)
    hits: list[Hit] = []
    columns = len(node.indexParams or ())
    if not node.unique and columns > _MAX_INDEX_COLUMNS:
        message = f"index {node.idxname or ''} on {table} has {columns} columns"
        hits.append(hit("index-too-many-columns", message))
    if node.concurrent:
        hits += _pg14(ctx, "CREATE INDEX CONCURRENTLY")
        if ctx.in_transaction:
            message = "CREATE INDEX CONCURRENTLY in a transaction"
            hits.append(hit("concurrently-in-transaction", message))
        return hits
    if table in ctx.created:
        return hits
    kind = "CREATE UNIQUE INDEX" if node.unique else "CREATE INDEX"
    message = f"{kind} {node.idxname or ''} on {table} without CONCURRENTLY blocks its writes"
    return [*hits, sized(ctx, table, hit("create-index-not-concurrently", message))]


def _inline_constraint(table: str, name: str, con: ast.Constraint, ctx: Context) -> list[Hit]:
    """REFERENCES / CHECK / UNIQUE written into ADD COLUMN: validated or built at once."""
    if con.contype == ConstrType.CONSTR_FOREIGN:
        found = hit(
            "add-foreign-key-not-valid",
            f"ADD COLUMN {name} ... REFERENCES validates at once (it cannot be NOT VALID inline)",
            fix="add the column without REFERENCES, then ADD CONSTRAINT ... FOREIGN KEY ... "
            "NOT VALID and VALIDATE CONSTRAINT in a separate transaction",
        )
    elif con.contype == ConstrType.CONSTR_CHECK:
        found = hit("add-check-not-valid", f"ADD COLUMN {name} ... CHECK")
    elif con.contype in {ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY}:
        found = hit("add-unique-constraint", f"ADD COLUMN {name} ... UNIQUE")
    else:
        return []
    return [sized(ctx, table, found)]


def _default_rewrite(where: str, default: ast.Node, ctx: Context) -> Hit | None:
    kind, func = volatility(default)
    if kind == "volatile":
        message = f"{where} DEFAULT calls volatile {func}(): every row is rewritten"
        return hit("add-column-rewrite", message)
    if kind == "unknown":
        message = (
            f"{where} DEFAULT calls {func}(): a rewrite if it is volatile "
            "(check pg_proc.provolatile)"
        )
        return hit("add-column-rewrite", message, level="warning")
    if ctx.server_major is not None and ctx.server_major < 11:
        return hit("add-column-rewrite", f"{where} DEFAULT rewrites the table before PostgreSQL 11")
    return None


def _add_column(table: str, col: ast.ColumnDef, ctx: Context) -> list[Hit]:
    hits: list[Hit] = []
    name = col.colname or "?"
    where = f"{table}.{name}"
    ctype = column_type(col.typeName) if col.typeName is not None else None
    if ctype is not None and ctype.name == _JSON:
        hits.append(hit("add-json-column", f"column {where} is json"))
    if table in ctx.created:
        return hits
    constraints = [c for c in col.constraints or () if isinstance(c, ast.Constraint)]
    kinds = {c.contype for c in constraints}
    default = next(
        (c.raw_expr for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None
    )
    fills = ""  # why every existing row gets a value computed for it: a rewrite
    if ConstrType.CONSTR_IDENTITY in kinds:
        fills = "an identity column"
    if any(
        c.contype == ConstrType.CONSTR_GENERATED and c.generated_kind == "s" for c in constraints
    ):
        fills = "a stored generated column"
    if ctype is not None and ctype.name in SERIAL_TYPES:
        fills = f"a {ctype.name} column (nextval() default)"
    for con in constraints:
        hits.extend(_inline_constraint(table, name, con, ctx))
    rewrite = hit("add-column-rewrite", f"{where} is {fills}") if fills else None
    if rewrite is None and default is not None:
        rewrite = _default_rewrite(where, default, ctx)
    if rewrite is not None:
        hits.append(sized(ctx, table, rewrite))
    if ConstrType.CONSTR_NOTNULL in kinds and default is None and not fills:
        message = f"{where} NOT NULL without a DEFAULT fails if {table} has any row"
        found = hit("add-column-not-null-no-default", message)
        hits.append(sized(ctx, table, found, empty_only=True))
    return hits


def _alter_type(table: str, cmd: ast.AlterTableCmd, ctx: Context) -> list[Hit]:
    col = (cmd.name or "?").lower()
    if table in ctx.created or not isinstance(cmd.def_, ast.ColumnDef):
        return []
    if cmd.def_.typeName is None:
        return []
    new = column_type(cmd.def_.typeName)
    old = ctx.column_types.get((table, col))
    where = f"{table}.{col}"
    if cmd.def_.raw_default is not None:
        message = f"{where} TYPE {new.render()} USING ... rewrites every row"
    elif old is None:
        if maybe_safe_target(new):
            message = (
                f"{where} TYPE {new.render()}: current type unknown (pass --dsn), a rewrite "
                "unless it is a safe widening"
            )
            return [sized(ctx, table, hit("alter-column-type-rewrite", message, level="warning"))]
        message = f"{where} TYPE {new.render()} rewrites the table"
    elif rewrites(old, new):
        message = f"{where} {old.render()} -> {new.render()} rewrites the table"
    else:
        return []
    return [sized(ctx, table, hit("alter-column-type-rewrite", message))]


def _add_constraint(table: str, con: ast.Constraint, ctx: Context) -> list[Hit]:
    if table in ctx.created:
        return []
    name = con.conname or ""
    if con.contype == ConstrType.CONSTR_FOREIGN and not con.skip_validation:
        target = relname(con.pktable)
        message = f"FOREIGN KEY {name} on {table} -> {target} without NOT VALID"
        return [sized(ctx, table, hit("add-foreign-key-not-valid", message))]
    if con.contype == ConstrType.CONSTR_CHECK and not con.skip_validation:
        message = f"CHECK {name} on {table} without NOT VALID"
        return [sized(ctx, table, hit("add-check-not-valid", message))]
    if con.contype in {ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY} and not con.indexname:
        kind = "PRIMARY KEY" if con.contype == ConstrType.CONSTR_PRIMARY else "UNIQUE"
        message = f"ADD {kind} {name} on {table} builds its index while blocking reads and writes"
        return [sized(ctx, table, hit("add-unique-constraint", message))]
    return []


def _alter_cmd(table: str, cmd: ast.AlterTableCmd, ctx: Context) -> list[Hit]:  # noqa: PLR0911 - one return per sub-command
    sub = cmd.subtype
    if sub == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
        return _add_column(table, cmd.def_, ctx)
    if sub == AlterTableType.AT_AlterColumnType:
        return _alter_type(table, cmd, ctx)
    if sub == AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
        return _add_constraint(table, cmd.def_, ctx)
    if table in ctx.created:
        return []
    col = (cmd.name or "?").lower()
    if sub == AlterTableType.AT_SetNotNull:
        validated = (table, col) in ctx.not_null_checks
        if validated and (ctx.server_major is None or ctx.server_major >= 12):
            return []
        why = (
            "before PostgreSQL 12 even a validated CHECK does not spare the scan"
            if validated
            else "no validated CHECK (" + col + " IS NOT NULL) precedes it"
        )
        return [sized(ctx, table, hit("set-not-null-without-check", f"{table}.{col}: {why}"))]
    if (
        sub == AlterTableType.AT_ValidateConstraint
        and ctx.in_transaction
        and col in ctx.not_valid_in_tx
    ):
        message = f"VALIDATE CONSTRAINT {col} in the transaction that added it on {table}"
        return [hit("validate-in-same-transaction", message)]
    if sub == AlterTableType.AT_DropColumn:
        return [hit("drop-column", f"DROP COLUMN {table}.{col}")]
    return []


def _alter(node: ast.AlterTableStmt, ctx: Context) -> list[Hit]:
    if node.objtype != ObjectType.OBJECT_TABLE:
        return []
    table = relname(node.relation)
    hits: list[Hit] = []
    for cmd in node.cmds or ():
        if isinstance(cmd, ast.AlterTableCmd):
            hits.extend(_alter_cmd(table, cmd, ctx))
    return hits


def _rename(node: ast.RenameStmt, ctx: Context) -> list[Hit]:
    table = relname(node.relation)
    if table in ctx.created:
        return []
    if node.renameType == ObjectType.OBJECT_COLUMN:
        message = f"RENAME COLUMN {table}.{node.subname} TO {node.newname}"
        return [hit("rename-column", message)]
    if node.renameType == ObjectType.OBJECT_TABLE:
        return [hit("rename-table", f"RENAME TABLE {table} TO {node.newname}")]
    return []


def _drop(node: ast.DropStmt, ctx: Context) -> list[Hit]:
    names = [_object_name(o) for o in node.objects or ()]
    if node.removeType == ObjectType.OBJECT_TABLE:
        return [hit("drop-table", f"DROP TABLE {n}") for n in names if n not in ctx.created]
    if node.removeType != ObjectType.OBJECT_INDEX:
        return []
    if node.concurrent:
        if ctx.in_transaction:
            return [hit("concurrently-in-transaction", "DROP INDEX CONCURRENTLY in a transaction")]
        return []
    existing = [n for n in names if n not in ctx.created_indexes]
    return [hit("drop-index-not-concurrently", f"DROP INDEX {n}") for n in existing]


def _whole_table(node: ast.UpdateStmt | ast.DeleteStmt, ctx: Context) -> list[Hit]:
    table = relname(node.relation)
    if node.whereClause is not None or table in ctx.created:
        return []
    verb = "UPDATE" if isinstance(node, ast.UpdateStmt) else "DELETE FROM"
    message = f"{verb} {table} without WHERE, in one transaction"
    return [sized(ctx, table, hit("whole-table-update", message))]


def _maintenance(node: ast.Node, ctx: Context) -> list[Hit]:
    if isinstance(node, ast.VacuumStmt) and _option(node.options, "full"):
        return [hit("vacuum-full-or-cluster", "VACUUM FULL")]
    if isinstance(node, ast.ClusterStmt):
        return [hit("vacuum-full-or-cluster", f"CLUSTER {relname(node.relation)}".strip())]
    if isinstance(node, ast.ReindexStmt):
        if not _option(node.params, "concurrently"):
            return [
                hit("reindex-not-concurrently", f"REINDEX {node.name or relname(node.relation)}")
            ]
        found = _pg14(ctx, "REINDEX CONCURRENTLY")
        if ctx.in_transaction:
            found.append(
                hit("concurrently-in-transaction", "REINDEX CONCURRENTLY in a transaction")
            )
        return found
    return []


def _create(node: ast.CreateStmt) -> list[Hit]:
    table = relname(node.relation)
    return [
        hit("add-json-column", f"column {table}.{elt.colname} is json")
        for elt in node.tableElts or ()
        if isinstance(elt, ast.ColumnDef)
        and elt.typeName is not None
        and column_type(elt.typeName).name == _JSON
    ]


def check(node: ast.Node, ctx: Context) -> list[Hit]:
    """Every hit for one statement, given what the statements before it established."""
    hits = _lock_timeout(node, ctx)
    if isinstance(node, ast.IndexStmt):
        hits += _index(node, ctx)
    elif isinstance(node, ast.AlterTableStmt):
        hits += _alter(node, ctx)
    elif isinstance(node, ast.RenameStmt):
        hits += _rename(node, ctx)
    elif isinstance(node, ast.DropStmt):
        hits += _drop(node, ctx)
    elif isinstance(node, ast.UpdateStmt | ast.DeleteStmt):
        hits += _whole_table(node, ctx)
    elif isinstance(node, ast.CreateStmt):
        hits += _create(node)
    else:
        hits += _maintenance(node, ctx)
    return hits
