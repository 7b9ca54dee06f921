"""Per-request and per-test query scopes, carried in a context variable.

A scope counts the statements run (and their database time) by whatever code runs in
its context: the request handler behind the middleware, or the body of a
``with query_counter()`` block. Context variables follow asyncio tasks, threads started
through ``contextvars.copy_context()`` (Starlette's threadpool) and SQLAlchemy's
greenlets, so async and sync code are counted the same way. Scopes nest: an inner
``query_counter()`` inside a request counts toward both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PLUMBING",
    "QueryScope",
    "current_scope",
    "note_finding",
    "note_lazy_load",
    "query_counter",
    "recording",
    "scope",
]


@dataclass(slots=True, eq=False)
class QueryScope:
    """Statements and database seconds seen inside one scope."""

    unit_of_work: bool = False
    record_statements: bool = False
    parent: QueryScope | None = None
    count: int = 0
    duration: float = 0.0
    statements: list[str] = field(default_factory=list)
    # N+1 bookkeeping for scopes that are a unit of work: repeats per key, and the keys
    # already reported so a loop of 1000 lazy loads yields one report, not 996.
    repeats: dict[object, int] = field(default_factory=dict)
    reported: set[object] = field(default_factory=set)
    # For recording scopes (tests): the N+1 patterns reported while the scope was current,
    # and every lazy load by relationship, so a query budget's failure can name the
    # relationship to eager-load even below the detector's threshold.
    findings: list[Any] = field(default_factory=list)
    lazy_loads: dict[str, int] = field(default_factory=dict)

    @property
    def time(self) -> float:
        """Alias of ``duration`` (seconds spent in the database)."""
        return self.duration

    def unit(self) -> QueryScope | None:
        """The innermost enclosing scope that is a unit of work, if any."""
        node: QueryScope | None = self
        while node is not None:
            if node.unit_of_work:
                return node
            node = node.parent
        return None


_CURRENT: ContextVar[QueryScope | None] = ContextVar("dbpulse_query_scope", default=None)

# Set as the current scope while the pool checks a connection out: the dialect's first-
# connect queries (server version, schema, ...) and connect-event statements are plumbing,
# not the application's, so they are neither measured nor counted. The hot path already
# reads the current scope, so telling them apart costs nothing extra.
PLUMBING = QueryScope()


def current_scope() -> QueryScope | None:
    """The innermost active scope in this context (None outside any)."""
    found = _CURRENT.get()
    return None if found is PLUMBING else found


def record(scope_: QueryScope, elapsed: float, statement: str) -> None:
    """Count one finished statement in ``scope_`` and every scope around it."""
    node: QueryScope | None = scope_
    while node is not None:
        node.count += 1
        node.duration += elapsed
        if node.record_statements:
            node.statements.append(statement)
        node = node.parent


def recording(scope_: QueryScope | None) -> Iterator[QueryScope]:
    """``scope_`` and the scopes around it that record (a test's query budget)."""
    node = scope_
    while node is not None:
        if node.record_statements:
            yield node
        node = node.parent


def note_finding(scope_: QueryScope | None, finding: Any) -> None:
    """Give an N+1 report to every recording scope around the current code."""
    for node in recording(scope_):
        node.findings.append(finding)


def note_lazy_load(scope_: QueryScope | None, relationship: str) -> None:
    """Count one lazy load of ``relationship`` in every recording scope around the code."""
    for node in recording(scope_):
        node.lazy_loads[relationship] = node.lazy_loads.get(relationship, 0) + 1


@contextmanager
def scope(
    *, unit_of_work: bool = False, record_statements: bool = False, root: bool = False
) -> Iterator[QueryScope]:
    """Open a scope for the code in the ``with`` block (nested inside any current one,
    unless ``root``: a test's scope, which an outer pytest run must not count)."""
    new = QueryScope(
        unit_of_work=unit_of_work,
        record_statements=record_statements,
        parent=None if root else current_scope(),
    )
    token = _CURRENT.set(new)
    try:
        yield new
    finally:
        _CURRENT.reset(token)


@contextmanager
def query_counter() -> Iterator[QueryScope]:
    """Count statements issued inside the block, for tests.

    >>> with query_counter() as c:  # doctest: +SKIP
    ...     client.get("/users")
    >>> assert c.count <= 2, c.statements  # doctest: +SKIP

    ``c.statements`` lists the fingerprints (parameterized SQL, never values).
    """
    with scope(record_statements=True) as counter:
        yield counter
