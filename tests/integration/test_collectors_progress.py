"""The progress collector watching a real CREATE INDEX CONCURRENTLY on a real PostgreSQL."""

from __future__ import annotations

import psycopg

from dbpulse.localpg import LocalPostgres
from dbpulse.sidecar.base import BuildResult
from dbpulse.sidecar.collectors.progress import ProgressCollector
from tests.integration.collector_helpers import (
    background,
    dbname,
    runner,
    samples,
    value,
    wait_for,
)

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


def test_vacuum_waiting_on_a_buffer_pin_and_a_copy_in_flight(fresh_db: str) -> None:
    """A VACUUM (FREEZE) held by a cursor's pin and a streaming COPY each export their series."""
    db = dbname(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as setup:
        setup.execute("CREATE TABLE pinned (a int)")
        setup.execute("INSERT INTO pinned SELECT g FROM generate_series(1, 100) g")
    collector = ProgressCollector()
    pin = psycopg.connect(fresh_db)
    try:
        pin.execute("DECLARE c CURSOR FOR SELECT * FROM pinned")
        pin.execute("FETCH 1 FROM c")  # keeps the first heap page pinned
        with runner(fresh_db) as run, background(fresh_db, "VACUUM (FREEZE) pinned") as vac:

            def vacuum_labels() -> dict[str, str] | None:
                result = run(collector)
                found = samples(result, "pg_stat_progress_vacuum_ratio")
                mine = (lab for lab, _ in found if lab["pid"] == str(vac.pid))
                labels = next((lab for lab in mine if lab["phase"] == "scanning heap"), None)
                # postgres_exporter's families for the same vacuum: one-hot phase, sizes.
                where = {"datname": db, "relname": "pinned"}
                if labels is not None:
                    assert (
                        value(
                            result, "pg_stat_progress_vacuum_phase", **where, phase="scanning heap"
                        )
                        == 1
                    )
                    assert (
                        value(
                            result, "pg_stat_progress_vacuum_phase", **where, phase="vacuuming heap"
                        )
                        == 0
                    )
                    assert value(result, "pg_stat_progress_vacuum_heap_blks", **where) == 1
                return labels

            labels = wait_for(vacuum_labels)
            assert labels == {
                "datname": db,
                "relname": "pinned",
                "pid": str(vac.pid),
                "phase": "scanning heap",
            }
            pin.rollback()
            wait_for(vac.done, timeout=20)
            assert not vac.error

            with psycopg.connect(fresh_db) as loader, loader.cursor() as cur:
                pid = str(loader.info.backend_pid)
                expected = {
                    "datname": db,
                    "relname": "pinned",
                    "pid": pid,
                    "command": "COPY FROM",
                    "type": "PIPE",
                }
                with cur.copy("COPY pinned (a) FROM STDIN") as copy:
                    copy.write_row((1,))
                    # The server fills command/type just after the COPY starts: wait for it.
                    wait_for(
                        lambda: (
                            expected
                            in [
                                lab
                                for lab, _ in samples(run(collector), "pg_stat_progress_copy_ratio")
                            ]
                        )
                    )
                loader.rollback()
            assert not samples(run(collector), "pg_stat_progress_copy_ratio")
    finally:
        pin.close()
