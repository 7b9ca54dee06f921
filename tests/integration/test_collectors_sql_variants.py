"""Older-server SQL variants that PostgreSQL 15 can also run, executed for real."""

from __future__ import annotations

import pytest

from dbpulse.localpg import LocalPostgres
from dbpulse.sidecar.collectors import locks, progress
from dbpulse.sidecar.connection import ConnectionManager


def _columns(dsn: str, sql: str) -> list[str]:
    conns = ConnectionManager(dsn, target="t", connect_timeout=5)
    try:
        with conns.transaction(5.0) as conn, conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
            assert cur.description is not None
            return [col.name for col in cur.description]
    finally:
        conns.close()


@pytest.mark.parametrize(
    ("newest", "older"),
    [
        (locks.SQL_BLOCKING_V14, locks.SQL_BLOCKING_V12),
        (locks.SQL_BLOCKING_V14, locks.SQL_BLOCKING_OLD),
    ],
    ids=["blocking-12", "blocking-9.6"],
)
def test_older_variants_run_and_keep_the_row_shape(
    pg: LocalPostgres, newest: str, older: str
) -> None:
    """An older server's query runs here and yields the same columns the build expects."""
    assert _columns(pg.dsn, older) == _columns(pg.dsn, newest)


@pytest.mark.parametrize("version", [110000, 120000, 130000, 140000, 150000])
def test_progress_queries_for_each_version_run(pg: LocalPostgres, version: int) -> None:
    """Every progress query chosen for servers up to 15 runs and names the labels it feeds."""
    for key, sql in progress.queries_for(version).items():
        columns = _columns(pg.dsn, sql)
        view = next(v for v in progress.VIEWS if v.key == key)
        assert set(view.labels) <= set(columns), key
        assert "elapsed_seconds" in columns
