"""The poller, the target runtime and connections against a real PostgreSQL (HTTP: test_sidecar_http)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, generate_latest

from dbpulse.localpg import LocalPostgres, free_port
from dbpulse.settings import COLLECTOR_NAMES, load_settings
from dbpulse.sidecar.base import BuildResult, Context, Rows, query
from dbpulse.sidecar.collectors.database import DatabaseCollector
from dbpulse.sidecar.runtime import TargetRuntime
from dbpulse.sidecar.scheduling import Scheduler
from dbpulse.sidecar.snapshot import Snapshot
from dbpulse.sidecar.targets import TargetSpec
from tests.integration.collector_helpers import one_target_poller, wait_for


@dataclass
class SqlCollector:
    """A collector that runs one given statement; used to provoke timeouts."""

    sql: str
    name: str = "probe"

    def fetch(self, conn: psycopg.Connection[Any], ctx: Context, state: Any) -> Rows:
        return {"rows": query(conn, self.sql)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult([])


def _text(snap: Snapshot) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snap)
    return generate_latest(registry).decode()


def test_database_collector_against_real_server(pg: LocalPostgres) -> None:
    """The database collector reports commits and size for the real 'postgres' database."""
    poller, snap, conns = one_target_poller(pg.dsn, {"database": DatabaseCollector()})
    try:
        assert poller.run_once("database")
        text = _text(snap)
        assert "pg_up 1.0" in text
        assert 'pg_stat_database_xact_commit{datid="5",datname="postgres",' in text
        assert 'pg_database_size_bytes{datname="postgres",server="127.0.0.1:' in text
        assert 'pg_scrape_collector_success{collector="database"} 1.0' in text
    finally:
        conns.close()


def test_statement_timeout_cancels_and_connection_survives(pg: LocalPostgres) -> None:
    """A slow collector query is cancelled by statement_timeout; the next poll still works."""
    collectors = {
        "slow": SqlCollector("SELECT pg_sleep(60)", "slow"),
        "database": DatabaseCollector(),
    }
    poller, snap, conns = one_target_poller(pg.dsn, collectors, timeout=0.2)
    try:
        started = time.monotonic()
        assert not poller.run_once("slow")
        # Far below the 60 s sleep: the server cancelled it (how fast is not the point).
        assert time.monotonic() - started < 30
        assert poller.run_once("database")
        text = _text(snap)
        assert 'pg_scrape_collector_success{collector="slow"} 0.0' in text
        assert "pg_up 1.0" in text
    finally:
        conns.close()


def test_lock_timeout_means_sidecar_never_queues(fresh_db: str) -> None:
    """A poll that meets an exclusive lock gives up after lock_timeout instead of waiting."""
    with psycopg.connect(fresh_db, autocommit=True) as setup:
        setup.execute("CREATE TABLE t (id int)")
    holder = psycopg.connect(fresh_db)
    try:
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        poller, snap, conns = one_target_poller(
            fresh_db, {"probe": SqlCollector("SELECT count(*) FROM t")}
        )
        started = time.monotonic()
        assert not poller.run_once("probe")
        # The lock is held until the test ends: returning at all means it gave up.
        assert time.monotonic() - started < 30
        assert "pg_up 1.0" in _text(snap)
        conns.close()
    finally:
        holder.rollback()
        holder.close()


def test_ddl_never_waits_on_the_sidecar(fresh_db: str) -> None:
    """While the sidecar polls in a loop, the application's ALTER TABLE never hits its lock_timeout."""
    with psycopg.connect(fresh_db, autocommit=True) as setup:
        setup.execute("CREATE TABLE t (id int)")
    collectors = {"probe": SqlCollector("SELECT count(*) FROM t"), "database": DatabaseCollector()}
    poller, _snap, conns = one_target_poller(fresh_db, collectors)
    stop = threading.Event()
    polls: list[bool] = []

    def poll() -> None:
        while not stop.is_set():
            polls.extend(poller.run_all_once().values())

    worker = threading.Thread(target=poll)
    worker.start()
    try:
        wait_for(lambda: any(polls))  # the sidecar is really polling before the DDL starts
        before = len(polls)
        with psycopg.connect(fresh_db, autocommit=True) as app:
            app.execute("SET lock_timeout = '2s'")
            for i in range(30):
                app.execute(f"ALTER TABLE t ADD COLUMN c{i} int")
                app.execute(f"ALTER TABLE t DROP COLUMN c{i}")
        wait_for(lambda: len(polls) > before)  # and kept polling while it ran
    finally:
        stop.set()
        worker.join()
        conns.close()
    assert any(polls)


def test_connections_are_bounded_and_named(pg: LocalPostgres) -> None:
    """With max_connections=1 and parallel runs, the server sees at most one dbpulse backend."""
    collectors = {f"c{i}": SqlCollector("SELECT pg_sleep(0.2)", f"c{i}") for i in range(4)}
    poller, _snap, conns = one_target_poller(pg.dsn, collectors, max_connections=1)
    seen: list[int] = []
    outcomes: list[bool] = []
    threads = [
        threading.Thread(target=lambda n=n: outcomes.append(poller.run_once(n))) for n in collectors
    ]
    for t in threads:
        t.start()
    with psycopg.connect(pg.dsn, autocommit=True) as watcher:

        def sample() -> bool:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbpulse'"
            ).fetchone()
            assert row is not None
            seen.append(row[0])
            return not any(t.is_alive() for t in threads)

        wait_for(sample, interval=0.05)
    for t in threads:
        t.join()
    conns.close()
    assert outcomes == [True] * len(collectors)
    assert max(seen) == 1


def test_unreachable_at_start_then_recovers() -> None:
    """With no server, pg_up is 0 and /readyz fails; once the server starts, polls recover."""
    port = free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    poller, snap, conns = one_target_poller(dsn, {"database": DatabaseCollector()})
    assert not poller.run_once("database")
    assert "pg_up 0.0" in _text(snap)
    assert not snap.readiness(60)[0]
    with LocalPostgres(port=port):
        wait_for(lambda: poller.run_once("database"), timeout=10, interval=0.3)
        assert "pg_up 1.0" in _text(snap)
        assert snap.readiness(60) == (True, "ok")
        conns.close()


def test_restart_under_runningone_target_poller() -> None:
    """Killing and restarting PostgreSQL under a running runtime: pg_up goes 0, then back to 1."""
    only_database = {name: {"enabled": name == "database"} for name in COLLECTOR_NAMES}
    with LocalPostgres() as cluster:
        settings = load_settings(dsn=cluster.dsn, interval=0.3, collectors=only_database)
        runtime = TargetRuntime(TargetSpec("t", cluster.dsn, 1, discovery=False), settings)
        scheduler = Scheduler(workers=1, static_workers=1)
        scheduler.add_target(runtime, static=True)
        snap = runtime.snapshot
        ups: list[str] = []
        scheduler.start()
        try:
            ups.append(wait_for(lambda: _with(_text(snap), "pg_up 1.0")))
            cluster.pg_ctl_stop("immediate")
            ups.append(wait_for(lambda: _with(_text(snap), "pg_up 0.0")))
            cluster.pg_ctl_start()
            wait_for(lambda: _with(_text(snap), "pg_up 1.0"))
        finally:
            runtime.begin_close()
            scheduler.shutdown()
            runtime.close()
        assert "pg_up 1.0" in ups[0]
        assert "pg_up 0.0" in ups[1]


def _with(text: str, needle: str) -> str | None:
    return text if needle in text else None


def test_database_list_is_read_once_per_round_and_shared(pg: LocalPostgres) -> None:
    """The blocking families zero-fill from the round's database list: a database created mid-round shows up only after the list's max_age."""
    from dbpulse.sidecar.collectors.locks import LocksCollector

    collectors = {"locks": LocksCollector()}
    poller, snap, conns = one_target_poller(pg.dsn, collectors, interval=2.0)
    name = f"round_{int(time.time() * 1000)}"

    def zero_filled() -> bool:
        return f'pg_blocking_sessions{{datname="{name}"' in _text(snap)

    try:
        assert poller.run_once("locks")
        with psycopg.connect(pg.dsn, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        assert poller.run_once("locks")  # same round: the list read first is reused
        assert not zero_filled()
        assert poller.databases is not None
        assert name not in poller.databases.names
        wait_for(lambda: poller.run_once("locks") and zero_filled(), timeout=10, interval=0.5)
        assert name in poller.databases.names
    finally:
        conns.close()
        with psycopg.connect(pg.dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
