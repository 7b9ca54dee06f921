"""pytest plugin: query budgets and N+1 checks on dbpulse-instrumented engines.

Installed with dbpulse (a ``pytest11`` entry point); ``-p dbpulse.pytest_plugin`` loads it
from a source tree. Every test's call phase runs inside a recording query scope, so it
costs nothing beyond what ``dbpulse.instrument`` already does, and only statements on
instrumented engines, in the test's own context (thread, task), are counted.

- ``dbpulse_queries``: the test's statements so far (``count``, ``statements`` as
  fingerprints, ``n_plus_one`` findings, ``lazy_loads`` by relationship);
- ``@pytest.mark.max_queries(n)`` and ``with assert_max_queries(n):`` (``assert_num_queries``
  for an exact count; fixtures ``dbpulse_assert_max_queries``/``dbpulse_assert_num_queries``
  as pytest-django's ``django_assert_max_num_queries``/``django_assert_num_queries``): a
  failure lists the statements by fingerprint and names each relationship to eager-load;
- ``--dbpulse-n-plus-one=fail|warn|off`` (ini ``dbpulse_n_plus_one``, default warn): what
  an N+1 pattern reported by the runtime detector does to its test;
- ``--dbpulse-top=N`` (ini ``dbpulse_top``, default 10, 0 for none): the end-of-session
  table of the tests that ran the most statements.

Importing this module pulls in neither SQLAlchemy nor prometheus_client: it is loaded in
every pytest run of every project that installs dbpulse.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest

from dbpulse.inprocess.scope import QueryScope, scope
from dbpulse.testing import (
    DbpulseNPlusOneWarning,
    QueryBudgetError,
    QueryLog,
    assert_max_queries,
    assert_num_queries,
    check_budget,
    patterns,
)

__all__ = [
    "DbpulseNPlusOneWarning",
    "QueryBudgetError",
    "QueryLog",
    "assert_max_queries",
    "assert_num_queries",
]

MODES = ("fail", "warn", "off")


@dataclass(frozen=True)
class QueryTally:
    nodeid: str
    count: int
    duration: float
    patterns: int


_LOG = pytest.StashKey[QueryLog]()
_RESULTS = pytest.StashKey[list[QueryTally]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dbpulse", "dbpulse query budgets and N+1 checks")
    group.addoption(
        "--dbpulse-n-plus-one",
        choices=MODES,
        dest="dbpulse_n_plus_one",
        help="what an N+1 query pattern does to its test (default: ini dbpulse_n_plus_one, warn)",
    )
    group.addoption(
        "--dbpulse-top",
        type=int,
        dest="dbpulse_top",
        help="list this many tests with the most queries at the end (0: none; default 10)",
    )
    parser.addini(
        "dbpulse_n_plus_one", "fail, warn or off (see --dbpulse-n-plus-one)", default="warn"
    )
    parser.addini(
        "dbpulse_top", "tests listed in the query table (see --dbpulse-top)", default="10"
    )


def _mode(config: pytest.Config, item: pytest.Item | None = None) -> str:
    """The test's own ``dbpulse_n_plus_one`` marker, else the option, else the ini."""
    marker = item.get_closest_marker("dbpulse_n_plus_one") if item is not None else None
    if marker is not None:
        mode = marker.args[0] if marker.args else None
        if mode not in MODES:
            raise pytest.UsageError(
                f"{item.nodeid if item else ''}: dbpulse_n_plus_one takes one of "
                f"{', '.join(MODES)}, got {mode!r}"
            )
        return str(mode)
    mode = config.getoption("dbpulse_n_plus_one") or config.getini("dbpulse_n_plus_one")
    return str(mode).strip()


def _top(config: pytest.Config) -> int:
    top = config.getoption("dbpulse_top")
    if top is None:
        try:
            top = int(str(config.getini("dbpulse_top")))
        except ValueError:
            raise pytest.UsageError("dbpulse_top: must be a whole number") from None
    return max(0, int(top))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "max_queries(n): fail the test when its call runs more than n statements on "
        "dbpulse-instrumented engines",
    )
    config.addinivalue_line(
        "markers",
        "dbpulse_n_plus_one(mode): fail, warn or off for this test's N+1 patterns "
        "(e.g. off for a test that provokes one on purpose)",
    )
    if _mode(config) not in MODES:
        raise pytest.UsageError(f"dbpulse_n_plus_one: must be one of {', '.join(MODES)}")
    _top(config)
    config.stash[_RESULTS] = []


def _budget(item: pytest.Item) -> int | None:
    marker = item.get_closest_marker("max_queries")
    if marker is None:
        return None
    limit = marker.args[0] if marker.args else marker.kwargs.get("n")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise pytest.UsageError(
            f"{item.nodeid}: max_queries needs a whole number of statements, got {limit!r}"
        )
    return limit


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    limit = _budget(item)
    with scope(record_statements=True, root=True) as recording:
        log = QueryLog(recording)
        item.stash[_LOG] = log
        try:
            result = yield
        finally:
            item.config.stash[_RESULTS].append(
                QueryTally(item.nodeid, log.count, log.duration, len(patterns(log)))
            )
    over = ""
    if limit is not None:
        try:
            check_budget(log, limit, what="test")
        except QueryBudgetError as exc:
            over = str(exc)
    if over:  # failed outside the except block: one message, no chained traceback
        pytest.fail(over, pytrace=False)
    mode = _mode(item.config, item)
    if log.n_plus_one and mode == "fail":
        pytest.fail(
            log.explain("dbpulse: N+1 query pattern(s) found (--dbpulse-n-plus-one=fail)"),
            pytrace=False,
        )
    if mode == "warn":
        for finding in log.n_plus_one:
            warnings.warn(DbpulseNPlusOneWarning(finding.message), stacklevel=1)
    return result


@pytest.fixture
def dbpulse_queries(request: pytest.FixtureRequest) -> QueryLog:
    """The statements this test has run so far on instrumented engines (call phase)."""
    item = request.node
    before_call = QueryScope(record_statements=True)

    def current() -> QueryScope:
        log = item.stash.get(_LOG, None)
        return log._scope if log is not None else before_call

    return QueryLog(current)


@pytest.fixture
def dbpulse_assert_max_queries() -> Callable[..., AbstractContextManager[QueryLog]]:
    """``with dbpulse_assert_max_queries(n):`` (pytest-django: django_assert_max_num_queries)."""
    return assert_max_queries


@pytest.fixture
def dbpulse_assert_num_queries() -> Callable[[int], AbstractContextManager[QueryLog]]:
    """``with dbpulse_assert_num_queries(n):`` (pytest-django: django_assert_num_queries)."""
    return assert_num_queries


@pytest.fixture
def dbpulse_instrument() -> Iterator[Callable[..., Any]]:
    """Instrument engines for this test only, each with a private metrics registry."""
    from prometheus_client import CollectorRegistry

    from dbpulse.inprocess.instrumentation import instrument

    made: list[Any] = []

    def instrument_engine(engine: Any, **options: Any) -> Any:
        options.setdefault("registry", CollectorRegistry())
        options.setdefault("lint", False)
        inst = instrument(engine, **options)
        made.append(inst)
        return inst

    yield instrument_engine
    for inst in reversed(made):
        inst.uninstrument()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    top = _top(config)
    results = [r for r in config.stash.get(_RESULTS, []) if r.count]
    if not top or not results:
        return
    results.sort(key=lambda r: (-r.count, r.nodeid))
    shown = results[:top]
    terminalreporter.write_sep("=", f"dbpulse: queries per test, top {len(shown)}")
    terminalreporter.write_line(f"{'queries':>8} {'db time':>10} {'N+1':>4}  test")
    for r in shown:
        terminalreporter.write_line(
            f"{r.count:>8} {r.duration * 1000:>8.1f}ms {r.patterns:>4}  {r.nodeid}"
        )
