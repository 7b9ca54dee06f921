"""Typed observations a collector's pure ``build`` hands to the rest of the sidecar.

Tracing turns these into episode spans. They are the only thing it reads from a poll:
never rows, never a collector's internal keys, so a collector can change its SQL and
row shape without tracing noticing. Each field is None when the build saw no such thing
(the collector that reports it did not run), and a (possibly empty) value when it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbpulse.plans.regressions import Regression as JudgedRegression
    from dbpulse.sidecar.blocking import BlockingTree


@dataclass(frozen=True)
class IndexBuild:
    """A CREATE INDEX in flight (pg_stat_progress_create_index)."""

    pid: int
    datname: str
    relname: str
    index_relname: str
    command: str
    phase: str
    elapsed_seconds: float
    ratio: float
    traceparent: str | None = None


@dataclass(frozen=True)
class SlowQuery:
    """A statement running longer than the slow threshold; ``text`` is literal-free."""

    pid: int
    datname: str
    application_name: str
    query_id: int | None
    query_start: float | None  # epoch seconds: tells two statements of one backend apart
    age_seconds: float
    text: str
    # "pg_stat_statements" (normalised by the server) or "pg_stat_activity"
    text_source: str
    traceparent: str | None = None


@dataclass(frozen=True)
class Regression:
    """A statement slower than its own baseline: the judge's verdict, with the statement's
    scrubbed text (or None) and its latest plan's one-line summary (or None)."""

    judged: JudgedRegression
    text: str | None
    plan: str | None  # e.g. "Seq Scan on orders"


@dataclass(frozen=True)
class Facts:
    index_builds: tuple[IndexBuild, ...] | None = None
    blocking: BlockingTree | None = None
    slow_queries: tuple[SlowQuery, ...] | None = None
    regressions: tuple[Regression, ...] | None = None
