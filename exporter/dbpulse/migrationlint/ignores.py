"""Ignore comments in migration files (pure): ``-- dbpulse: ignore=RULE[,RULE] reason: why``.

``#`` works as well as ``--`` (Alembic's Python files). A comment covers the statement
on its own line, or the statement right below the block of comment lines it sits in.
An ignore without a reason suppresses nothing: the escape hatch costs one sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_DIRECTIVE = re.compile(
    r"(?:--|#)\s*dbpulse:\s*ignore\s*=\s*(?P<rules>[\w-]+(?:\s*,\s*[\w-]+)*)"
    r"(?:\s+reason:\s*(?P<reason>.*?))?\s*(?:\*/)?\s*$"
)
_COMMENT_LINE = re.compile(r"^\s*(?:--|#)")


@dataclass(frozen=True)
class Directive:
    line: int
    rules: tuple[str, ...]
    reason: str


def directives(lines: Sequence[str]) -> list[Directive]:
    found: list[Directive] = []
    for number, text in enumerate(lines, start=1):
        match = _DIRECTIVE.search(text)
        if match is None:
            continue
        rules = tuple(r.strip() for r in match.group("rules").split(","))
        found.append(Directive(number, rules, (match.group("reason") or "").strip()))
    return found


def covering_lines(lines: Sequence[str], start: int, end: int) -> set[int]:
    """The lines whose ignore comments apply to a statement on ``start``..``end``."""
    covered = set(range(start, end + 1))
    above = start - 1
    while above >= 1 and _COMMENT_LINE.match(lines[above - 1]):
        covered.add(above)
        above -= 1
    return covered
