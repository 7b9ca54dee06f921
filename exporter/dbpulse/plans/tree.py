"""EXPLAIN (FORMAT JSON) plans: nodes, shape hash, one-line summary, literal scrubbing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from dbpulse.sql import scrub

Plan = dict[str, Any]

# Keys whose values are names or enumerations the planner prints, never expressions: the
# only strings a plan keeps unscrubbed. Everything else (Filter, Index Cond, Output,
# Sort Key...) may quote a constant of the statement and goes through the lexer.
_NAME_KEYS = frozenset(
    {
        "Node Type",
        "Relation Name",
        "Schema",
        "Alias",
        "Index Name",
        "Join Type",
        "Strategy",
        "Partial Mode",
        "Parent Relationship",
        "Scan Direction",
        "Operation",
        "Command",
        "CTE Name",
        "Subplan Name",
        "Sort Method",
        "Sort Space Type",
    }
)
# What makes two plans the same plan: the shape, not the estimates.
_SHAPE_KEYS = ("Node Type", "Join Type", "Strategy", "Relation Name", "Index Name", "Operation")
# Scan nodes name the access path a flip changes ("Index Scan" -> "Seq Scan").
_SCANS = frozenset(
    {
        "Seq Scan",
        "Index Scan",
        "Index Only Scan",
        "Bitmap Heap Scan",
        "Bitmap Index Scan",
        "Tid Scan",
        "Tid Range Scan",
    }
)


def root(explained: Any) -> Plan:
    """The top plan node of what ``EXPLAIN (FORMAT JSON)`` returned (a list or its text)."""
    if isinstance(explained, str):
        explained = json.loads(explained)
    if isinstance(explained, list):
        explained = explained[0]
    plan = explained.get("Plan") if isinstance(explained, dict) else None
    if not isinstance(plan, dict):
        raise ValueError("not an EXPLAIN (FORMAT JSON) result")  # noqa: TRY004 - bad data, not a bad type
    return plan


def nodes(plan: Plan) -> Iterator[Plan]:
    """Every node of the plan, parents before children."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def _shape(plan: Plan) -> list[Any]:
    return [
        [plan.get(key) for key in _SHAPE_KEYS],
        [_shape(child) for child in plan.get("Plans", ())],
    ]


def plan_hash(plan: Plan) -> str:
    """A short hash of the plan's shape: node types, join types, relations, indexes.

    Costs and row estimates move with every ANALYZE; only a change of shape is a flip.
    """
    digest = hashlib.sha256(json.dumps(_shape(plan), separators=(",", ":")).encode())
    return digest.hexdigest()[:16]


def describe_node(node: Plan) -> str:
    """One node as EXPLAIN's text format says it: "Index Scan using i on t"."""
    kind = str(node.get("Node Type", "?"))
    index = node.get("Index Name")
    relation = node.get("Relation Name")
    text = kind
    if index:
        text += f" using {index}"
    if relation:
        text += f" on {relation}"
    return text


def summary(plan: Plan) -> str:
    """The plan's access paths in one line, e.g. "Seq Scan on orders" or, for a join,
    "Hash Join (Seq Scan on orders, Index Scan using customers_pkey on customers)"."""
    scans = [describe_node(n) for n in nodes(plan) if n.get("Node Type") in _SCANS]
    # A bitmap heap scan's index is its child's: say the pair once.
    scans = [s for s in scans if not s.startswith("Bitmap Index Scan")] or scans
    top = describe_node(plan)
    if not scans:
        return top
    if plan.get("Node Type") in _SCANS and len(scans) == 1:
        return scans[0]
    return f"{top} ({', '.join(scans)})"


def scrubbed(value: Any, key: str | None = None) -> Any:
    """A copy of a plan (or any part of it) in which no constant of the statement is left.

    A plan made with real parameter values prints them in Filter, Index Cond, Output and
    the rest; every string outside the names the planner prints goes through the same
    lexer-based scrubber as statement text, so ``(email = 'a@b.c'::text)`` becomes
    ``(email = '?'::text)``.
    """
    if isinstance(value, dict):
        return {k: scrubbed(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [scrubbed(v, key) for v in value]
    if isinstance(value, str) and key not in _NAME_KEYS:
        return scrub(value)
    return value
