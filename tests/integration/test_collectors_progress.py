"""The progress collector watching a real CREATE INDEX CONCURRENTLY on a real PostgreSQL."""

from __future__ import annotations

import psycopg

from exporter.localpg import LocalPostgres
from exporter.sidecar.base import BuildResult
from exporter.sidecar.collectors.progress import ProgressCollector
from tests.integration.collector_helpers import background, dbname, runner, samples, wait_for

WAITING = "waiting for old snapshots"


def _index_row(result: BuildResult, pid: int) -> dict[str, str] | None:
    for labels, _ in samples(result, "pg_stat_progress_create_index_ratio"):
        if labels["pid"] == str(pid):
            return labels
    return None


def _value(result: BuildResult, suffix: str, pid: int) -> float:
    name = f"pg_stat_progress_create_index_{suffix}"
    return next(v for lab, v in samples(result, name) if lab["pid"] == str(pid))


def test_create_index_concurrently_waiting_for_old_snapshots(
    fresh_db: str, pg: LocalPostgres
) -> None:
    """A CIC held by another session's snapshot is visible in that phase, then gone when done."""
    db = dbname(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as setup:
        setup.execute("CREATE TABLE items (id int, v int)")
        setup.execute("INSERT INTO items SELECT g, g % 97 FROM generate_series(1, 5000) g")
        oid_row = setup.execute("SELECT 'items'::regclass::oid").fetchone()
    assert oid_row is not None
    items_oid = oid_row[0]
    holder = psycopg.connect(fresh_db)
    holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        holder.execute("SELECT 1")  # takes the transaction snapshot the build must outwait
        with (
            runner(fresh_db) as run,
            runner(pg.dsn) as run_elsewhere,
            background(fresh_db, "CREATE INDEX CONCURRENTLY items_v_idx ON items (v)") as cic,
        ):
            collector = ProgressCollector()

            def in_phase() -> BuildResult | None:
                result = run(collector)
                row = _index_row(result, cic.pid)
                return result if row and row["phase"] == WAITING else None

            result = wait_for(in_phase)
            labels = _index_row(result, cic.pid)
            assert labels == {
                "datname": db,
                "relname": "items",
                "index_relname": "items_v_idx",
                "pid": str(cic.pid),
                "command": "CREATE INDEX CONCURRENTLY",
                "phase": WAITING,
            }
            assert _value(result, "lockers_total", cic.pid) >= 1
            assert 0 <= _value(result, "ratio", cic.pid) <= 1
            assert _value(result, "elapsed_seconds", cic.pid) > 0

            # From another database pg_class cannot name the table: the OID stands in.
            elsewhere = _index_row(run_elsewhere(collector), cic.pid)
            assert elsewhere is not None
            assert elsewhere["relname"] == str(items_oid)
            assert elsewhere["datname"] == db

            holder.commit()
            wait_for(cic.done, timeout=20)
            assert not cic.error
            assert _index_row(run(collector), cic.pid) is None
    finally:
        holder.close()
    with psycopg.connect(fresh_db) as check:
        valid = check.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_v_idx'::regclass"
        ).fetchone()
    assert valid == (True,)
