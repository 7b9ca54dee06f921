"""Session fixtures: one real PostgreSQL cluster with pg_stat_statements, started here."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import structlog
from hypothesis import settings

from dbpulse import logging as dbpulse_logging
from dbpulse.localpg import LocalPostgres
from tests import pgservers

# The plugin's own tests run pytest in pytest; dbpulse's suite uses the plugin (the demo
# models' query budgets) without depending on how dbpulse was installed.
pytest_plugins = ["pytester", "dbpulse.pytest_plugin"]

# CI (CI=true) replays the same examples every run, so a red build always reproduces; a
# developer's run explores new ones (and `make test` on a laptop finds new bugs).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def pg() -> Iterator[LocalPostgres]:
    """A throwaway cluster for the whole session (initdb + pg_ctl in a temp dir)."""
    with LocalPostgres() as cluster:
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        yield cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses ``pg_matrix`` is marked ``pg_matrix``: ``make test-pg-matrix``
    selects them with ``-m pg_matrix``, whoever wrote them."""
    for item in items:
        if "pg_matrix" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.pg_matrix)


def _matrix_versions() -> list[str]:
    """``DBPULSE_TEST_PG_VERSIONS`` (e.g. ``13,14,15,16,17,18``); unset: the local server."""
    raw = os.environ.get("DBPULSE_TEST_PG_VERSIONS", "")
    return [v.strip() for v in raw.split(",") if v.strip()] or ["local"]


@pytest.fixture(scope="session", params=_matrix_versions(), ids=lambda v: f"pg{v}")
def pg_matrix(request: pytest.FixtureRequest) -> Iterator[LocalPostgres]:
    """A cluster per requested major from the cached npm builds (``tests/pgservers.py``);
    without ``DBPULSE_TEST_PG_VERSIONS``, the session's ``pg``. A requested version that
    is not cached fails under CI (a silent skip would pass an untested version) and is
    skipped with the fetch command on a developer's machine."""
    param = str(request.param)
    if param == "local":
        yield request.getfixturevalue("pg")
        return
    if not param.isdigit() or int(param) not in pgservers.PINNED:
        pytest.fail(f"DBPULSE_TEST_PG_VERSIONS: {param!r} is not one of {sorted(pgservers.PINNED)}")
    major = int(param)
    bindir = pgservers.cached_bindir(major)
    if bindir is None:
        message = f"PostgreSQL {major} is not cached; run: {pgservers.fetch_command([major])}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with LocalPostgres(bindir=bindir) as cluster:
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            assert conn.info.server_version // 10000 == major
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        yield cluster


@pytest.fixture
def pg_dsn(pg: LocalPostgres) -> str:
    return pg.dsn


def _database_on(cluster: LocalPostgres) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield cluster.dsn_for(name)
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_db(pg: LocalPostgres) -> Iterator[str]:
    """A new empty database for one test, dropped afterwards; yields its DSN."""
    yield from _database_on(pg)


@pytest.fixture
def matrix_db(pg_matrix: LocalPostgres) -> Iterator[str]:
    """``fresh_db`` on each server of the version matrix (the test joins the matrix)."""
    yield from _database_on(pg_matrix)


@pytest.fixture(autouse=True)
def _structlog_config_restored() -> Iterator[None]:
    """Each test ends with structlog configured as it started.

    The CLI, which some tests run in-process, configures structlog for the whole process
    (e.g. watch-migration at level error): a later test's capture_logs would then miss
    the warnings it asserts on, depending on test order.
    """
    saved = structlog.get_config()
    renders = dbpulse_logging._STRUCTLOG_RENDERS[0]
    # configure_logging also sets the root and dbpulse loggers' levels (error for
    # watch-migration) and adds its root handler: left so, a later test's embedded
    # warnings would never reach a handler.
    root = logging.getLogger()
    levels = (root.level, logging.getLogger("dbpulse").level)
    ours = [h for h in root.handlers if isinstance(h, dbpulse_logging._Handler)]
    yield
    structlog.configure(**saved)
    # ... and dbpulse logging through stdlib again unless it did at the start.
    dbpulse_logging._STRUCTLOG_RENDERS[0] = renders
    root.setLevel(levels[0])
    logging.getLogger("dbpulse").setLevel(levels[1])
    for handler in [h for h in root.handlers if isinstance(h, dbpulse_logging._Handler)]:
        if handler not in ours:
            root.removeHandler(handler)
