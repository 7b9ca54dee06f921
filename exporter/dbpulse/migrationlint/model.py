"""What the linter reads (a parsed statement with its place) and what it reports (a finding).

Sources (SQL files, Alembic's offline output) produce ``Statement`` s; the rules look at
``Statement.node`` only; the engine turns their hits into ``Finding`` s with a place.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import ast

from dbpulse.migrationlint.catalog import Level


@dataclass(frozen=True)
class Statement:
    """One parsed statement, or one that failed to parse (``node`` None, ``error`` set)."""

    node: ast.Node | None
    text: str
    file: str
    line: int  # 1-based line of the statement's first token (Alembic: the op call's line)
    end_line: int
    unit: str  # the migration it belongs to: an Alembic revision id, or the SQL file
    error: str = ""


@dataclass(frozen=True)
class Hit:
    """A rule's verdict on one statement, before it has a place."""

    rule: str
    level: Level
    message: str
    fix: str


@dataclass(frozen=True)
class Finding:
    rule: str
    level: Level
    message: str
    fix: str
    file: str
    line: int
    unit: str
    statement: str = ""  # the statement normalised (literals ``?``), for the report


@dataclass(frozen=True)
class Unit:
    """A migration's facts apart from its SQL: its downgrade, for ``missing-downgrade``."""

    name: str
    file: str
    downgrade_line: int | None  # line of ``def downgrade`` when its body does nothing
    downgrade_end: int | None = None
