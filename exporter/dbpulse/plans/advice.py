"""Advice from a plan, in the seed handbook's words (pure).

The seed's EXPLAIN checklist: sequential scans on large tables (add an index), high loop
counts (the N+1 of SQL), sorts and hashes that do not fit in memory (an index on the
ORDER BY columns, or more work_mem), and foreign keys without an index. Each rule reads
the plan JSON and a few catalog facts and returns a finding with the fix to apply.
Plans here are estimates (EXPLAIN without ANALYZE never runs the statement), so every
rule speaks of estimated rows and loops.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from dbpulse.plans.tree import Plan, describe_node, nodes
from dbpulse.sql.tree import ParseError, nodes_of, parse_tree

RULES = (
    "seq-scan-large-table",
    "nested-loop-many-loops",
    "sort-spills",
    "hash-spills",
    "foreign-key-join-without-index",
)
_JOIN_CONDITIONS = ("Hash Cond", "Merge Cond", "Join Filter", "Index Cond", "Recheck Cond")
_MB = 1024 * 1024


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key whose referencing columns no index leads with."""

    schema: str
    table: str
    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class CatalogFacts:
    """What the rules need to know beyond the plan, read from the statement's database."""

    # (schema, table) -> estimated rows (pg_class.reltuples)
    table_rows: Mapping[tuple[str, str], float] = field(default_factory=dict)
    unindexed_foreign_keys: tuple[ForeignKey, ...] = ()
    work_mem_bytes: int = 4 * _MB
    hash_mem_multiplier: float = 2.0


@dataclass(frozen=True)
class Thresholds:
    large_table_rows: float = 10_000
    # A scan whose filter keeps at most this share of the table would use an index.
    selective_fraction: float = 0.1
    nested_loops: float = 1_000


@dataclass(frozen=True)
class Finding:
    rule: str
    node: str
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "node": self.node, "message": self.message, "fix": self.fix}


def catalog_facts(rows: Mapping[str, list[dict[str, Any]]]) -> CatalogFacts:
    """CatalogFacts from the rows ``sidecar.explain.catalog_rows`` read."""
    memory = rows.get("memory") or [{}]
    return CatalogFacts(
        table_rows={
            (str(r["schemaname"]), str(r["relname"])): float(r["reltuples"])
            for r in rows.get("tables", [])
        },
        unindexed_foreign_keys=tuple(
            ForeignKey(
                schema=str(r["schemaname"]),
                table=str(r["relname"]),
                name=str(r["conname"]),
                columns=tuple(r["columns"]),
            )
            for r in rows.get("fk_missing_index", [])
        ),
        work_mem_bytes=int(memory[0].get("work_mem") or 4 * _MB),
        hash_mem_multiplier=float(memory[0].get("hash_mem_multiplier") or 2.0),
    )


def advise(plan: Plan, facts: CatalogFacts, thresholds: Thresholds | None = None) -> list[Finding]:
    """Every finding for one plan, in plan order, each rule at most once per node."""
    limits = thresholds or Thresholds()
    aliases = _aliases(plan)
    findings: list[Finding] = []
    for node in nodes(plan):
        findings.extend(_seq_scan(node, facts, limits))
        findings.extend(_nested_loop(node, limits))
        findings.extend(_spill(node, facts))
    findings.extend(_fk_joins(plan, facts, aliases))
    return findings


def _qualified(node: Plan) -> tuple[str, str] | None:
    relation = node.get("Relation Name")
    if not relation:
        return None
    return str(node.get("Schema") or "public"), str(relation)


def _aliases(plan: Plan) -> dict[str, tuple[str, str]]:
    """alias -> (schema, table) for every scan of a table in the plan."""
    found: dict[str, tuple[str, str]] = {}
    for node in nodes(plan):
        table = _qualified(node)
        if table is not None:
            found[str(node.get("Alias") or table[1])] = table
    return found


@lru_cache(maxsize=1024)
def _columns(expression: str) -> tuple[tuple[str, ...], ...]:
    """The column references of a plan expression, e.g. ``(o.customer_id = $1)`` ->
    (("o", "customer_id"),), read by PostgreSQL's own parser."""
    try:
        tree = parse_tree(f"SELECT 1 WHERE {expression}")
    except ParseError:
        return ()
    refs = [
        tuple(f["String"]["sval"] for f in ref.get("fields", ()) if "String" in f)
        for ref in nodes_of(tree, "ColumnRef")
    ]
    refs = [names for names in refs if names]
    return tuple(dict.fromkeys(refs))


def _own_columns(expression: str, alias: str) -> list[str]:
    """Columns of ``expression`` that belong to the scanned relation ``alias``."""
    out: list[str] = []
    for ref in _columns(expression):
        if len(ref) == 1 or ref[-2] == alias:
            out.append(ref[-1])
    return list(dict.fromkeys(out))


def _index_sql(table: tuple[str, str], columns: list[str] | tuple[str, ...]) -> str:
    cols = ", ".join(columns)
    return f"CREATE INDEX CONCURRENTLY ON {table[0]}.{table[1]} ({cols});"


def _seq_scan(node: Plan, facts: CatalogFacts, limits: Thresholds) -> Iterator[Finding]:
    table = _qualified(node)
    if node.get("Node Type") != "Seq Scan" or table is None or not node.get("Filter"):
        return
    rows = facts.table_rows.get(table)
    if rows is None or rows < limits.large_table_rows:
        return
    kept = float(node.get("Plan Rows", 0))
    if kept > rows * limits.selective_fraction:
        return  # reading most of the table anyway: a sequential scan is the right plan
    alias = str(node.get("Alias") or table[1])
    columns = _own_columns(str(node["Filter"]), alias)
    if not columns:
        return
    yield Finding(
        rule="seq-scan-large-table",
        node=describe_node(node),
        message=(
            f"sequential scan reads all ~{rows:,.0f} rows of {table[0]}.{table[1]} to keep "
            f"~{kept:,.0f} (filter on {', '.join(columns)})"
        ),
        fix=_index_sql(table, columns),
    )


def _nested_loop(node: Plan, limits: Thresholds) -> Iterator[Finding]:
    children = node.get("Plans", ())
    if node.get("Node Type") != "Nested Loop" or len(children) < 2:
        return
    outer, inner = children[0], children[1]
    loops = float(outer.get("Plan Rows", 0))
    if loops < limits.nested_loops or inner.get("Node Type") in {"Materialize", "Memoize"}:
        return
    yield Finding(
        rule="nested-loop-many-loops",
        node=describe_node(node),
        message=(
            f"nested loop runs {describe_node(inner)} ~{loops:,.0f} times, once per outer "
            "row: the N+1 of SQL"
        ),
        fix=(
            "give the join an equality condition the planner can hash or merge on, refresh "
            "the outer side's statistics (ANALYZE), or index the inner side's join columns"
        ),
    )


def _spill(node: Plan, facts: CatalogFacts) -> Iterator[Finding]:
    kind = node.get("Node Type")
    if kind not in {"Sort", "Hash"}:
        return
    size = float(node.get("Plan Rows", 0)) * float(node.get("Plan Width", 0))
    if kind == "Sort":
        limit = float(facts.work_mem_bytes)
        if size <= limit:
            return
        keys = ", ".join(str(k) for k in node.get("Sort Key", ()))
        yield Finding(
            rule="sort-spills",
            node=describe_node(node),
            message=(
                f"sort of ~{size / _MB:,.1f} MB exceeds work_mem ({limit / _MB:,.0f} MB) "
                "and spills to disk"
            ),
            fix=(
                f"an index on the ORDER BY columns ({keys}) returns rows already sorted; "
                "or raise work_mem for this statement (SET LOCAL work_mem)"
            ),
        )
        return
    limit = facts.work_mem_bytes * facts.hash_mem_multiplier
    if size <= limit:
        return
    yield Finding(
        rule="hash-spills",
        node=describe_node(node),
        message=(
            f"hash table of ~{size / _MB:,.1f} MB exceeds work_mem x hash_mem_multiplier "
            f"({limit / _MB:,.0f} MB) and is built in batches on disk"
        ),
        fix="filter the hashed side earlier, or raise work_mem for this statement",
    )


def _join_columns(plan: Plan, aliases: Mapping[str, tuple[str, str]]) -> set[tuple[str, str, str]]:
    """(schema, table, column) of every column a join condition of the plan compares."""
    found: set[tuple[str, str, str]] = set()
    for node in nodes(plan):
        for key in _JOIN_CONDITIONS:
            expression = node.get(key)
            if not expression:
                continue
            for ref in _columns(str(expression)):
                if len(ref) >= 2 and ref[-2] in aliases:
                    schema, table = aliases[ref[-2]]
                    found.add((schema, table, ref[-1]))
    return found


def _fk_joins(
    plan: Plan, facts: CatalogFacts, aliases: Mapping[str, tuple[str, str]]
) -> Iterator[Finding]:
    if not facts.unindexed_foreign_keys:
        return
    joined = _join_columns(plan, aliases)
    for fk in facts.unindexed_foreign_keys:
        if all((fk.schema, fk.table, col) in joined for col in fk.columns):
            yield Finding(
                rule="foreign-key-join-without-index",
                node=f"{fk.schema}.{fk.table}",
                message=(
                    f"the join uses foreign key {fk.name} ({', '.join(fk.columns)}), "
                    "which no index covers: every lookup scans the table"
                ),
                fix=_index_sql((fk.schema, fk.table), fk.columns),
            )
