"""List the PromQL expressions of a dashboard or rule file and the metric names each reads.

Pure and dependency-free, so the unit tests and the end-to-end test (which asks a live
Prometheus for every name) share one answer to "which series does this artefact need?".

    python grafana/exprs.py grafana/dashboards/dbpulse.json
    python grafana/exprs.py deploy/prometheus/dbpulse-rules.yml

The extractor is a small PromQL lexer, not a parser: it drops string literals, label
matchers ``{...}``, range/subquery brackets ``[...]``, grouping clauses
(``by (...)``, ``on (...)``, ...), numbers, Grafana variables (``$x``, ``${x}``) and
keywords, then keeps every identifier not followed by ``(`` (a function call).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)
_GROUPING = ("by", "without", "on", "ignoring", "group_left", "group_right")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUP_CLAUSE = re.compile(r"\b(" + "|".join(_GROUPING) + r")\s*\([^()]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)")


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects (functions and labels excluded)."""
    text = _STRING.sub(" ", expr)
    text = _VARIABLE.sub(" 1 ", text)
    # Selectors may name the metric inside braces: {__name__="x"}; keep those names.
    names = set(re.findall(r'__name__\s*=\s*"([A-Za-z_:][A-Za-z0-9_:]*)"', expr))
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUP_CLAUSE.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    for match in _IDENT.finditer(text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


@dataclass(frozen=True)
class ExprRef:
    """One PromQL expression and where it lives (panel title or alert name)."""

    where: str
    expr: str

    @property
    def metrics(self) -> set[str]:
        return metric_names(self.expr)


def dashboard_exprs(dashboard: Mapping[str, Any]) -> list[ExprRef]:
    """Every target expression of every panel (rows' nested panels included)."""
    refs: list[ExprRef] = []
    for panel in _walk_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                refs.append(ExprRef(f"panel {panel.get('title')!r} {target.get('refId')}", expr))
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        if var.get("type") == "query" and isinstance(query, dict):
            query = query.get("query")
        if var.get("type") == "query" and isinstance(query, str):
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
            if inner:
                refs.append(ExprRef(f"variable {var.get('name')!r}", inner.group(1)))
    return refs


def rule_exprs(rules: Mapping[str, Any]) -> list[ExprRef]:
    """Every alert and recording rule expression of a Prometheus rule file (or spec)."""
    refs: list[ExprRef] = []
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            refs.append(ExprRef(f"rule {name}", str(rule["expr"])))
    return refs


def _walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _walk_panels(panel.get("panels", []))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: exprs.py DASHBOARD.json|RULES.yml", file=sys.stderr)
        return 2
    path = Path(argv[0])
    if path.suffix == ".json":
        refs = dashboard_exprs(json.loads(path.read_text()))
    else:
        import yaml

        refs = rule_exprs(yaml.safe_load(path.read_text()))
    for ref in refs:
        print(f"{ref.where}: {' '.join(sorted(ref.metrics))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
