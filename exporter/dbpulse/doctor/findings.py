"""What a check reports (a finding: level, explanation, fix) and how findings add up.

Shared by every check module and by the renderer; holds no check of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dbpulse.doctor.facts import Row

Level = Literal["ok", "info", "warning", "error"]
LEVELS: tuple[Level, ...] = ("ok", "info", "warning", "error")
MAX_ITEMS = 50


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    title: str
    detail: str = ""
    fix: str = ""
    items: list[str] = field(default_factory=list)


def quote_ident(name: str) -> str:
    """PostgreSQL identifier quoting, for the SQL the fixes suggest."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def items(rows: list[Row], render: Callable[[Row], str]) -> list[str]:
    """One line per row, capped at ``MAX_ITEMS`` so a report stays readable."""
    shown = [render(row) for row in rows[:MAX_ITEMS]]
    if len(rows) > MAX_ITEMS:
        shown.append(f"... and {len(rows) - MAX_ITEMS} more")
    return shown


def worst(findings: Sequence[Finding]) -> Level:
    return max((f.level for f in findings), key=LEVELS.index, default="ok")


def exit_code(findings: Sequence[Finding]) -> int:
    """1 when any finding is an error, so ``dbpulse doctor`` can gate a deploy."""
    return 1 if worst(findings) == "error" else 0
