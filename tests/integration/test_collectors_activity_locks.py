"""The activity and locks collectors against real sessions on a real PostgreSQL."""

from __future__ import annotations

import time

import psycopg

from dbpulse.sidecar.collectors.activity import ActivityCollector
from dbpulse.sidecar.collectors.locks import LocksCollector
from tests.integration.collector_helpers import (
    APP_NAME,
    background,
    dbname,
    runner,
    samples,
    value,
    wait_for,
)


def test_open_transaction_is_seen_and_counted_as_postgres_exporter_does(fresh_db: str) -> None:
    """An idle-in-transaction session gives max_tx_duration > 0 and is counted; every state is zero-filled."""
    db = dbname(fresh_db)
    with (
        psycopg.connect(fresh_db, application_name="app-under-test") as held,
        runner(fresh_db) as run,
    ):
        held.execute("SELECT 1")  # opens the transaction, then the session sits idle in it
        time.sleep(0.3)
        result = run(ActivityCollector())
        held.rollback()
    tx = value(result, "pg_stat_activity_max_tx_duration", datname=db, state="idle in transaction")
    assert tx is not None
    assert tx >= 0.25
    assert value(result, "pg_stat_activity_count", datname=db, state="idle in transaction") == 1
    states = {
        lab["state"] for lab, _ in samples(result, "pg_stat_activity_count") if lab["datname"] == db
    }
    assert len(states) == 6
    assert {lab["server"] for lab, _ in samples(result, "pg_stat_activity_count")} == {
        f"127.0.0.1:{fresh_db.rsplit(':', maxsplit=1)[-1].split('/', maxsplit=1)[0]}"
    }
    idle = value(result, "pg_stat_activity_idle_in_transaction_max_seconds", datname=db)
    assert idle is not None
    assert idle >= 0.25
    detail = "pg_stat_activity_detail_count"
    assert value(result, detail, datname=db, application_name="app-under-test") == 1
    # postgres_exporter counts its own session too; so does dbpulse (active, no wait).
    assert value(result, detail, application_name=APP_NAME, state="active", wait_event="") == 1
    assert all(v > 0 for _, v in samples(result, detail))  # no zero series
    ratio = value(result, "pg_connections_saturation_ratio")
    assert ratio is not None
    assert 0 < ratio < 1


def test_long_active_query_sets_max_query_duration(fresh_db: str) -> None:
    """A running statement shows as an active backend with a growing max query duration."""
    db = dbname(fresh_db)
    with runner(fresh_db) as run, background(fresh_db, "SELECT pg_sleep(30)") as job:

        def probe() -> float | None:
            got = value(
                run(ActivityCollector()), "pg_stat_activity_max_query_duration_seconds", datname=db
            )
            return got if got and got > 0.2 else None

        assert wait_for(probe) > 0.2
        assert not job.done()


def test_lock_conflict_builds_the_blocking_tree(fresh_db: str) -> None:
    """Two sessions updating one row: the holder is the root, the other waits under it."""
    db = dbname(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as setup:
        setup.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
        setup.execute("INSERT INTO accounts VALUES (1, 100)")
    with psycopg.connect(fresh_db) as holder, runner(fresh_db) as run:
        holder.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
        holder_pid = holder.info.backend_pid
        with background(
            fresh_db, "UPDATE accounts SET balance = balance + 1 WHERE id = 1"
        ) as waiter:
            result = wait_for(
                lambda: (r := run(LocksCollector())).debug["waiting_sessions"] >= 1 and r
            )
            tree = result.debug
            assert [root["pid"] for root in tree["roots"]] == [holder_pid]
            root = tree["roots"][0]
            assert root["state"] == "idle in transaction"
            assert root["idle_in_transaction_seconds"] is not None
            assert root["xact_age_seconds"] is not None
            assert [w["pid"] for w in root["waiters"]] == [waiter.pid]
            assert root["waiters"][0]["blocked_by"] == [holder_pid]
            assert root["waiters"][0]["query_id"] is not None
            assert "query" not in root["waiters"][0]
            assert value(result, "pg_blocking_sessions", datname=db) == 1
            assert value(result, "pg_blocking_root_blockers", datname=db) == 1
            wait = value(result, "pg_blocking_max_wait_seconds", datname=db)
            assert wait is not None
            assert wait >= 0
            # postgres_exporter's count: locks on the database's objects, lowercased;
            # both updaters hold RowExclusiveLock on the table and its primary key.
            held = value(result, "pg_locks_count", datname=db, mode="rowexclusivelock")
            assert held is not None
            assert held >= 3
            holder.rollback()
            wait_for(waiter.done, timeout=10)
        assert not waiter.error
        after = run(LocksCollector())
    assert after.debug["roots"] == []
    assert value(after, "pg_blocking_sessions", datname=db) == 0
    assert value(after, "pg_blocking_root_blockers", datname=db) == 0
    modes = {lab["mode"]: v for lab, v in samples(after, "pg_locks_count") if lab["datname"] == db}
    assert set(modes) == {
        "accesssharelock",
        "rowsharelock",
        "rowexclusivelock",
        "shareupdateexclusivelock",
        "sharelock",
        "sharerowexclusivelock",
        "exclusivelock",
        "accessexclusivelock",
        "sireadlock",
    }
    assert modes["rowexclusivelock"] == 0
