"""The statements collector (and every collector as pg_monitor) on a real PostgreSQL."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dbpulse.localpg import LocalPostgres
from dbpulse.settings import load_settings
from dbpulse.sidecar.base import BuildResult, CollectorError
from dbpulse.sidecar.collectors.statements import StatementsCollector
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.daemon import Sidecar
from dbpulse.sidecar.poller import Poller, Schedule
from dbpulse.sidecar.snapshot import Snapshot
from tests.integration.collector_helpers import dbname, runner, samples

LIGHT = "SELECT 1 FROM pg_sleep(0.2)"
HEAVY = "SELECT pg_sleep(0.5)"


def _queryid(dsn: str, text: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT queryid FROM pg_stat_statements WHERE query = %s", (text,)
        ).fetchone()
    assert row is not None, text
    return str(row[0])


def _exported(result: BuildResult, db: str) -> set[str]:
    return {
        lab["queryid"]
        for lab, _ in samples(result, "pg_stat_statements_seconds_total")
        if lab["datname"] == db
    }


def test_statements_enter_are_held_and_leave_the_top_n(fresh_db: str, pg: LocalPostgres) -> None:
    """A statement overtaken in a top-1 stays for hold_seconds, then leaves; texts are scrubbed."""
    db = dbname(fresh_db)
    with psycopg.connect(pg.dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_stat_statements_reset()")
    with psycopg.connect(fresh_db, autocommit=True) as app:
        app.execute(LIGHT)
    light = _queryid(pg.dsn, "SELECT $1 FROM pg_sleep($2)")
    collector = StatementsCollector(top_n=1, hold_seconds=30.0, text_max_length=100)
    t0 = time.time()
    with runner(pg.dsn) as run:
        first = run(collector, now=t0)
        assert _exported(first, db) == {light}

        with psycopg.connect(fresh_db, autocommit=True) as app:
            app.execute(HEAVY)
        heavy = _queryid(pg.dsn, "SELECT pg_sleep($1)")
        second = run(collector, now=t0 + 15)
        assert _exported(second, db) == {light, heavy}
        by_id = {s["queryid"]: s for s in second.debug["statements"]}
        assert by_id[heavy]["in_top_n"] is True
        assert by_id[light]["in_top_n"] is False
        # The text of the statement selected on the first poll arrived on the second.
        assert by_id[light]["query"] == "SELECT $1 FROM pg_sleep($2)"

        third = run(collector, now=t0 + 15 + 31)
        assert _exported(third, db) == {heavy}

    seconds = {lab["queryid"]: v for lab, v in samples(second, "pg_stat_statements_seconds_total")}
    assert seconds[heavy] >= 0.5
    assert seconds[light] >= 0.2
    all_calls = [
        v for lab, v in samples(third, "pg_stat_statements_all_calls_total") if lab["datname"] == db
    ]
    assert all_calls
    assert all_calls[0] >= 2
    all_seconds = [
        v
        for lab, v in samples(third, "pg_stat_statements_all_seconds_total")
        if lab["datname"] == db
    ]
    assert all_seconds[0] >= 0.7


def test_missing_extension_is_a_clear_collector_error(fresh_db: str) -> None:
    """Without the extension in the connected database the error says how to enable it."""
    with runner(fresh_db) as run, pytest.raises(CollectorError) as info:
        run(StatementsCollector())
    message = str(info.value)
    assert "shared_preload_libraries = 'pg_stat_statements'" in message
    assert "CREATE EXTENSION pg_stat_statements" in message
    assert dbname(fresh_db) in message


def test_extension_created_but_not_preloaded_is_a_clear_collector_error() -> None:
    """With CREATE EXTENSION done but no shared_preload_libraries the error says so."""
    with LocalPostgres(settings={"shared_preload_libraries": "''"}) as cluster:
        with psycopg.connect(cluster.dsn, autocommit=True) as admin:
            admin.execute("CREATE EXTENSION pg_stat_statements")
        with runner(cluster.dsn) as run, pytest.raises(CollectorError) as info:
            run(StatementsCollector())
    assert "installed but not loaded" in str(info.value)
    assert "shared_preload_libraries = 'pg_stat_statements'" in str(info.value)


def test_missing_extension_fails_only_this_collector_in_the_poller(fresh_db: str) -> None:
    """Through the real poller the failure is collector_success 0 while pg_up stays 1."""
    snapshot = Snapshot("t", {"statements": 60.0})
    conns = ConnectionManager(fresh_db, target="t", connect_timeout=5)
    poller = Poller(
        collectors={"statements": StatementsCollector()},
        schedules={"statements": Schedule(interval=15.0, timeout=5.0)},
        connections=conns,
        snapshot=snapshot,
    )
    try:
        assert poller.run_once("statements") is False
        assert poller.run_once("statements") is False
    finally:
        conns.close()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snapshot)
    text = generate_latest(registry).decode()
    assert 'pg_scrape_collector_success{collector="statements"} 0.0' in text
    assert "pg_up 1.0" in text


def test_every_collector_works_as_a_pg_monitor_role(pg: LocalPostgres) -> None:
    """A role with only pg_monitor runs all collectors and sees other users' sessions."""
    role = f"mon_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT pg_monitor TO {role}")
    other = psycopg.connect(pg.dsn)  # another user's open transaction, to be seen
    sidecar = Sidecar.build(load_settings(dsn=pg.dsn_for("postgres", user=role)))
    try:
        other.execute("SELECT 1")
        outcome = sidecar.poller.run_all_once()
        text = generate_latest(sidecar.registry).decode()
    finally:
        other.rollback()
        other.close()
        sidecar.close()
        with psycopg.connect(pg.dsn, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")
    assert outcome == dict.fromkeys(outcome, True)
    assert set(outcome) >= {"activity", "statements", "locks", "progress", "database"}
    for name in outcome:
        assert f'pg_scrape_collector_success{{collector="{name}"}} 1.0' in text
    # pg_read_all_stats (via pg_monitor) shows the superuser session's state.
    idle = 'pg_stat_activity_count{datname="postgres",'
    counts = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(idle) and 'state="idle in transaction"}' in line
    ]
    assert counts
    assert counts[0] >= 1
    assert "pg_stat_statements_calls_total{" in text
    assert "pg_blocking_sessions{" in text
