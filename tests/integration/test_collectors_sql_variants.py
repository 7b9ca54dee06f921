"""Older-server SQL variants that PostgreSQL 15 can also run, executed for real."""

from __future__ import annotations

import psycopg
import pytest

from dbpulse.localpg import LocalPostgres
from dbpulse.sidecar.collectors import locks, progress, progress_vacuum
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
    ("variants", "older"),
    [
        (
            ((140000, locks.SQL_BLOCKING_V14), (120000, locks.SQL_BLOCKING_V12)),
            locks.SQL_BLOCKING_V12,
        ),
        (
            ((140000, locks.SQL_BLOCKING_V14), (120000, locks.SQL_BLOCKING_V12)),
            locks.SQL_BLOCKING_OLD,
        ),
    ],
    ids=["blocking-12", "blocking-9.6"],
)
def test_older_variants_run_and_keep_the_row_shape(
    pg_matrix: LocalPostgres, variants: tuple[tuple[int, str], ...], older: str
) -> None:
    """An older server's query runs on each server of the matrix and yields the same
    columns as the variant the collector picks for that server."""
    with psycopg.connect(pg_matrix.dsn) as conn:
        version = conn.info.server_version
    picked = next(sql for since, sql in variants if version >= since)
    assert _columns(pg_matrix.dsn, older) == _columns(pg_matrix.dsn, picked)


def test_progress_queries_for_each_version_run(pg_matrix: LocalPostgres) -> None:
    """Every progress query chosen for this server runs and yields the labels and counters
    its view exports, no column more (on 17+, the 17 vacuum and COPY columns)."""
    with psycopg.connect(pg_matrix.dsn) as conn:
        server = conn.info.server_version
    for key, sql in progress.queries_for(server).items():
        columns = _columns(pg_matrix.dsn, sql)
        view = next(v for v in progress.VIEWS if v.key == key)
        known = {*view.labels, *(c for c, _ in view.columns), "elapsed_seconds", "traceparent"}
        if key == "vacuum":  # postgres_exporter's vacuum families read these (progress_vacuum)
            known |= {column for column, _, _ in progress_vacuum.COLUMNS}
        assert set(view.labels) <= set(columns), key
        assert "elapsed_seconds" in columns
        assert set(columns) - {"index_relname"} <= known, key
