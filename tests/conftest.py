"""Session fixtures: one real PostgreSQL cluster with pg_stat_statements, started here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import structlog
from hypothesis import settings

from dbpulse import logging as dbpulse_logging
from dbpulse.localpg import LocalPostgres

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


@pytest.fixture
def pg_dsn(pg: LocalPostgres) -> str:
    return pg.dsn


@pytest.fixture
def fresh_db(pg: LocalPostgres) -> Iterator[str]:
    """A new empty database for one test, dropped afterwards; yields its DSN."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg.dsn_for(name)
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _structlog_config_restored() -> Iterator[None]:
    """Each test ends with structlog configured as it started.

    The CLI, which some tests run in-process, configures structlog for the whole process
    (e.g. watch-migration at level error): a later test's capture_logs would then miss
    the warnings it asserts on, depending on test order.
    """
    saved = structlog.get_config()
    renders = dbpulse_logging._STRUCTLOG_RENDERS[0]
    yield
    structlog.configure(**saved)
    # ... and dbpulse logging through stdlib again unless it did at the start.
    dbpulse_logging._STRUCTLOG_RENDERS[0] = renders
