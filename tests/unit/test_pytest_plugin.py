"""The pytest plugin, run in pytest (pytester) against the demo models on SQLite in memory."""

from __future__ import annotations

import pytest

# Imported before any inner run: pytester's in-process runs drop the modules an inner run
# imported, and SQLAlchemy's compiled extensions break when imported a second time.
import sqlalchemy.orm  # noqa: F401

PLUGIN = ("-p", "dbpulse.pytest_plugin")

CONFTEST = """
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from dbpulse.demo.models import Base, Post, User


@pytest.fixture
def engine(dbpulse_instrument):
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        users = [User(name=f"user{i}") for i in range(6)]
        session.add_all(users)
        session.flush()
        session.add_all(Post(user_id=u.id, title=f"post of {u.name}") for u in users)
        session.commit()
    dbpulse_instrument(engine, n_plus_one_threshold=3)
    yield engine
    engine.dispose()
"""

LAZY = """
def titles_lazily(engine):
    with Session(engine) as session:
        return [p.title for u in session.scalars(select(User)).all() for p in u.posts]


def titles_eagerly(engine):
    with Session(engine) as session:
        users = session.scalars(select(User).options(selectinload(User.posts))).all()
        return [p.title for u in users for p in u.posts]
"""

HEADER = """
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dbpulse.demo.models import User
from dbpulse.pytest_plugin import assert_max_queries
"""


def _tests(pytester: pytest.Pytester, body: str) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_budget=HEADER + LAZY + body)


def test_marker_fails_the_lazy_loop_naming_the_relationship(pytester: pytest.Pytester) -> None:
    """@max_queries(2) over a lazy-loading loop fails with the statements and 'selectinload(User.posts)'; the eager version passes."""
    _tests(
        pytester,
        """
@pytest.mark.max_queries(2)
def test_lazy(engine):
    assert len(titles_lazily(engine)) == 6


@pytest.mark.max_queries(2)
def test_eager(engine):
    assert len(titles_eagerly(engine)) == 6
""",
    )
    result = pytester.runpytest(*PLUGIN, "--dbpulse-n-plus-one=off")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*dbpulse: the test ran 7 statements, at most 2 allowed",
            "*statements, by fingerprint (most repeated first):",
            "*6 x SELECT posts.id*FROM posts*",
            "*1 x SELECT users.id, users.name*FROM users*",
            "*N+1 patterns:",
            "*User.posts*selectinload(User.posts)*",
        ]
    )
    assert "test_eager FAILED" not in result.stdout.str()
    assert "During handling" not in result.stdout.str()  # one message, no chained traceback


def test_context_manager_and_fixtures_mirror_pytest_django(pytester: pytest.Pytester) -> None:
    """`with assert_max_queries(n)` fails over budget; dbpulse_assert_num_queries checks an exact count; dbpulse_queries counts the test."""
    _tests(
        pytester,
        """
def test_block_over_budget(engine):
    with assert_max_queries(3):
        titles_lazily(engine)


def test_exact(engine, dbpulse_assert_num_queries, dbpulse_assert_max_queries, dbpulse_queries):
    with dbpulse_assert_num_queries(2) as log:
        titles_eagerly(engine)
    assert log.count == 2
    with dbpulse_assert_max_queries(5):
        titles_eagerly(engine)
    assert dbpulse_queries.count == 4
    assert sum(dbpulse_queries.fingerprints().values()) == 4


def test_exact_fails_when_fewer(engine, dbpulse_assert_num_queries):
    with dbpulse_assert_num_queries(3):
        titles_eagerly(engine)
""",
    )
    result = pytester.runpytest(*PLUGIN, "--dbpulse-n-plus-one=off")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*QueryBudgetError: dbpulse: the block ran 7 statements, at most 3 allowed",
            "*QueryBudgetError: dbpulse: the block ran 2 statements, exactly 3 allowed",
        ],
        consecutive=False,
    )


def test_n_plus_one_mode_fail_warn_off(pytester: pytest.Pytester) -> None:
    """A detected N+1 fails its test under fail, warns under warn, and is silent under off."""
    _tests(
        pytester,
        """
def test_loop(engine):
    titles_lazily(engine)
""",
    )
    failed = pytester.runpytest(*PLUGIN, "--dbpulse-n-plus-one=fail")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        [
            "*N+1 query pattern(s) found*",
            "*User.posts lazy-loaded 6 times at *test_budget.py:*; eager-load it:*",
        ]
    )
    warned = pytester.runpytest(*PLUGIN, "--dbpulse-n-plus-one=warn")
    warned.assert_outcomes(passed=1, warnings=1)
    warned.stdout.fnmatch_lines(["*DbpulseNPlusOneWarning: N+1 query pattern (lazy load)*"])
    quiet = pytester.runpytest(*PLUGIN, "--dbpulse-n-plus-one=off")
    quiet.assert_outcomes(passed=1)
    assert "DbpulseNPlusOneWarning" not in quiet.stdout.str()


def test_marker_sets_the_mode_for_one_test(pytester: pytest.Pytester) -> None:
    """@dbpulse_n_plus_one('off') spares a test that provokes N+1 on purpose; the others still fail."""
    _tests(
        pytester,
        """
@pytest.mark.dbpulse_n_plus_one("off")
def test_on_purpose(engine):
    titles_lazily(engine)


def test_by_accident(engine):
    titles_lazily(engine)
""",
    )
    result = pytester.runpytest(*PLUGIN, "--dbpulse-n-plus-one=fail")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*_ test_by_accident _*", "dbpulse: N+1 query pattern(s) found*"])


def test_ini_sets_the_mode_and_a_bad_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """dbpulse_n_plus_one in the ini file applies; an unknown value stops the run with a usage error."""
    _tests(pytester, "\ndef test_loop(engine):\n    titles_lazily(engine)\n")
    pytester.makeini("[pytest]\ndbpulse_n_plus_one = fail\n")
    pytester.runpytest(*PLUGIN).assert_outcomes(failed=1)
    pytester.makeini("[pytest]\ndbpulse_n_plus_one = sometimes\n")
    result = pytester.runpytest(*PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*dbpulse_n_plus_one: must be one of fail, warn, off*"])


def test_session_table_lists_the_heaviest_tests(pytester: pytest.Pytester) -> None:
    """--dbpulse-top=2 prints the two tests with the most statements, heaviest first."""
    _tests(
        pytester,
        """
def test_heavy(engine):
    titles_lazily(engine)


def test_light(engine):
    titles_eagerly(engine)


def test_none():
    pass
""",
    )
    result = pytester.runpytest(*PLUGIN, "--dbpulse-top=2", "--dbpulse-n-plus-one=off")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*dbpulse: queries per test, top 2*",
            "*queries*db time*N+1*test",
            "*7 *ms*1  test_budget.py::test_heavy",
            "*2 *ms*0  test_budget.py::test_light",
        ]
    )
    assert "test_none" not in result.stdout.str().split("queries per test")[1]
    off = pytester.runpytest(*PLUGIN, "--dbpulse-top=0")
    assert "queries per test" not in off.stdout.str()


def test_budget_without_an_instrumented_engine_fails_instead_of_passing(
    pytester: pytest.Pytester,
) -> None:
    """A budget that counted nothing because no engine is instrumented fails with the fix."""
    pytester.makepyfile(
        """
import pytest
from sqlalchemy import create_engine, text


@pytest.mark.max_queries(1)
def test_uninstrumented():
    with create_engine("sqlite://").connect() as conn:
        conn.execute(text("SELECT 1"))
"""
    )
    # In a child process: engines other tests of this session instrumented (an example
    # app instruments at import) would otherwise count as "an engine is instrumented".
    result = pytester.runpytest_subprocess(*PLUGIN)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no engine is instrumented*dbpulse.instrument(engine)*"])


def test_bad_marker_argument_is_reported(pytester: pytest.Pytester) -> None:
    """max_queries('ten') is a usage error naming the test, not a silent pass."""
    pytester.makepyfile(
        """
import pytest


@pytest.mark.max_queries("ten")
def test_x():
    pass
"""
    )
    result = pytester.runpytest(*PLUGIN)
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*max_queries needs a whole number of statements, got 'ten'*"])


def test_entry_point_and_explicit_loading_do_not_clash(pytester: pytest.Pytester) -> None:
    """Installed (the pytest11 entry point) and also named by -p and pytest_plugins: loaded once, no error."""
    dist = pytester.path / "site" / "dbpulse_fake-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dbpulse-fake\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[pytest11]\ndbpulse.pytest_plugin = dbpulse.pytest_plugin\n"
    )
    pytester.syspathinsert(pytester.path / "site")
    pytester.makeconftest('pytest_plugins = ["dbpulse.pytest_plugin"]\n')
    pytester.makepyfile("def test_x(dbpulse_queries):\n    assert dbpulse_queries.count == 0\n")
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(passed=1)
