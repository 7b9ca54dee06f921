"""PostgreSQL's parse tree as plain JSON (pglast), and the nodes of one kind in it.

For code that asks what a statement or an expression contains (its ``$n`` parameters,
the columns a plan's filter compares) rather than how it reads: one parse, then a walk.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pglast.parser import ParseError, parse_sql_json

__all__ = ["ParseError", "nodes_of", "parse_tree"]


def parse_tree(sql: str) -> dict[str, Any]:
    """``sql`` parsed by PostgreSQL's own parser, as JSON (``{"stmts": [...]}``); raises
    ``ParseError`` for text the server would reject."""
    tree: dict[str, Any] = json.loads(parse_sql_json(sql))
    return tree


def nodes_of(value: Any, kind: str) -> Iterator[dict[str, Any]]:
    """Every node of ``kind`` (e.g. ``"ColumnRef"``) under ``value``, in tree order; a
    found node's own children are not searched."""
    if isinstance(value, dict):
        found = value.get(kind)
        if isinstance(found, dict):
            yield found
            return
        for item in value.values():
            yield from nodes_of(item, kind)
    elif isinstance(value, list):
        for item in value:
            yield from nodes_of(item, kind)
