"""Query budgets for tests, without pytest: ``assert_max_queries`` and the ``QueryLog``.

The pytest plugin (``dbpulse.pytest_plugin``) builds its marker and fixtures on these;
unittest or any other runner can use them directly. Only statements on engines
instrumented with ``dbpulse.instrument``, run in the block's own context, are counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from dbpulse.inprocess.scope import QueryScope, scope

__all__ = [
    "DbpulseNPlusOneWarning",
    "QueryBudgetError",
    "QueryLog",
    "assert_max_queries",
    "assert_num_queries",
    "check_budget",
    "patterns",
]

STATEMENT_WIDTH = 300  # fingerprints past this are cut in failure messages


class QueryBudgetError(AssertionError):
    """A block or test ran more statements than its budget."""


class DbpulseNPlusOneWarning(UserWarning):
    """An N+1 query pattern in a test, under ``--dbpulse-n-plus-one=warn``."""


class QueryLog:
    """The statements a test (or a ``with`` block) ran on instrumented engines."""

    def __init__(self, source: QueryScope | Callable[[], QueryScope]) -> None:
        self._source = source

    @property
    def _scope(self) -> QueryScope:
        source = self._source
        return source if isinstance(source, QueryScope) else source()

    @property
    def count(self) -> int:
        return self._scope.count

    @property
    def duration(self) -> float:
        """Seconds spent in the database."""
        return self._scope.duration

    @property
    def statements(self) -> list[str]:
        """Fingerprints (parameterized SQL, never values), in the order they ran."""
        return list(self._scope.statements)

    @property
    def n_plus_one(self) -> list[Any]:
        """``NPlusOneFinding``s the runtime detector reported while this was recording."""
        return list(self._scope.findings)

    @property
    def lazy_loads(self) -> dict[str, int]:
        """Lazy loads by relationship (``User.posts``), below the detector's threshold too."""
        return dict(self._scope.lazy_loads)

    def fingerprints(self) -> Counter[str]:
        return Counter(self._scope.statements)

    def explain(self, headline: str) -> str:
        """``headline``, then the statements by fingerprint and the N+1 patterns to fix."""
        lines = [headline, "statements, by fingerprint (most repeated first):"]
        lines += [f"  {n:>4} x {_cut(fp)}" for fp, n in self.fingerprints().most_common()] or [
            "  (none)"
        ]
        found = patterns(self)
        if found:
            lines.append("N+1 patterns:")
            lines += [f"  - {p}" for p in found]
        return "\n".join(lines)


def _cut(text: str) -> str:
    return text if len(text) <= STATEMENT_WIDTH else text[: STATEMENT_WIDTH - 3] + "..."


def _eager(relationship: str) -> str:
    return (
        f"eager-load it: .options(selectinload({relationship})) for a collection, "
        f"or joinedload({relationship}) for a many-to-one"
    )


def patterns(log: QueryLog) -> list[str]:
    """Each lazy-loaded relationship with its true count and fix (reported by the runtime
    detector or still below its threshold), then repeated statements the detector found."""
    callers = {f.relationship: f.caller for f in log.n_plus_one if f.relationship}
    found = []
    for relationship, n in sorted(log.lazy_loads.items(), key=lambda item: (-item[1], item[0])):
        if n >= 2 or relationship in callers:
            at = f" at {callers[relationship]}" if relationship in callers else ""
            found.append(f"{relationship} lazy-loaded {n} times{at}; {_eager(relationship)}")
    return found + [f.message for f in log.n_plus_one if not f.relationship]


def _nothing_instrumented() -> bool:
    from dbpulse.inprocess.instrumentation import instrumented_engines

    return instrumented_engines() == 0


def check_budget(log: QueryLog, limit: int, *, exact: bool = False, what: str = "block") -> None:
    """Raise QueryBudgetError when ``log`` is over ``limit`` (or off it, when ``exact``)."""
    __tracebackhide__ = True
    if log.count == 0 and _nothing_instrumented():
        raise QueryBudgetError(
            f"dbpulse: no engine is instrumented, so the {what} counted nothing: call "
            "dbpulse.instrument(engine) (or use the dbpulse_instrument fixture) first"
        )
    if log.count > limit or (exact and log.count != limit):
        allowed = f"exactly {limit}" if exact else f"at most {limit}"
        raise QueryBudgetError(
            log.explain(f"dbpulse: the {what} ran {log.count} statements, {allowed} allowed")
        )


@contextmanager
def assert_max_queries(limit: int, *, exact: bool = False) -> Iterator[QueryLog]:
    """Fail when the block runs more than ``limit`` statements on instrumented engines."""
    __tracebackhide__ = True
    with scope(record_statements=True) as recording:
        log = QueryLog(recording)
        yield log
    check_budget(log, limit, exact=exact)


def assert_num_queries(limit: int) -> AbstractContextManager[QueryLog]:
    """Fail unless the block runs exactly ``limit`` statements on instrumented engines."""
    return assert_max_queries(limit, exact=True)
