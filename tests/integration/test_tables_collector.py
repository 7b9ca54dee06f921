"""The tables and pg_stat_io collectors against the real test cluster (PostgreSQL 15)."""

from __future__ import annotations

import time
import uuid

import psycopg

from dbpulse.localpg import LocalPostgres
from dbpulse.settings import load_settings
from dbpulse.sidecar.collectors.stat_io import StatIOCollector
from dbpulse.sidecar.collectors.tables import TablesCollector
from dbpulse.sidecar.multitarget import MultiTarget
from tests.integration.collector_helpers import runner, samples
from tests.integration.probe_helpers import get, serve_multi


def _by_table(result: object, name: str) -> dict[str, float]:
    return {labels["relname"]: value for labels, value in samples(result, name)}  # type: ignore[arg-type]


def _wait_for_stats(dsn: str, table: str, column: str, at_least: int) -> None:
    """Statistics reach the views after the writing backend flushes them (up to ~1 s)."""
    deadline = time.monotonic() + 10
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                f"SELECT {column} FROM pg_stat_user_tables WHERE relname = %s", (table,)
            ).fetchone()
            if row is not None and row[0] is not None and row[0] >= at_least:
                return
            time.sleep(0.1)
    raise AssertionError(f"{table}.{column} never reached {at_least}")


def test_values_and_sizes_match_the_server(fresh_db: str) -> None:
    """Counters and epochs are the view's; sizes agree with pg_table_size within 10%."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        conn.execute(
            "INSERT INTO orders SELECT g, repeat('x', 40) FROM generate_series(1, 20000) g"
        )
        conn.execute("VACUUM ANALYZE orders")
        for _ in range(3):
            conn.execute("SELECT count(*) FROM orders")
        row = conn.execute(
            "SELECT pg_table_size('orders'), pg_indexes_size('orders'),"
            " extract(epoch FROM now())::float8"
        ).fetchone()
    assert row is not None
    table_size, index_size, now = row
    _wait_for_stats(fresh_db, "orders", "seq_scan", 3)
    with runner(fresh_db) as run:
        result = run(TablesCollector())
    assert _by_table(result, "pg_stat_user_tables_seq_scan")["orders"] >= 3
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        view = conn.execute(
            "SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'orders'"
        ).fetchone()
    assert view is not None
    assert _by_table(result, "pg_stat_user_tables_n_live_tup")["orders"] == view[0]
    assert abs(_by_table(result, "pg_stat_user_tables_last_vacuum")["orders"] - now) < 60
    assert _by_table(result, "pg_stat_user_tables_last_autovacuum")["orders"] == 0.0  # never
    exported_table = _by_table(result, "pg_stat_user_tables_table_size_bytes")["orders"]
    exported_index = _by_table(result, "pg_stat_user_tables_index_size_bytes")["orders"]
    assert abs(exported_table - table_size) <= 0.1 * table_size
    assert abs(exported_index - index_size) <= 0.1 * index_size
    indexes = samples(result, "pg_stat_user_indexes_idx_scans_total")
    assert [labels["indexrelname"] for labels, _ in indexes] == ["orders_pkey"]
    assert samples(result, "pg_statio_user_tables_heap_blocks_hit")


def test_bloat_shows_after_a_mass_delete_and_goes_with_vacuum_full(fresh_db: str) -> None:
    """Deleting 90% and vacuuming leaves the heap's pages: bloat; VACUUM FULL returns them."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id int, payload text)")
        conn.execute(
            "INSERT INTO events SELECT g, repeat('y', 100) FROM generate_series(1, 20000) g"
        )
        conn.execute("DELETE FROM events WHERE id % 10 <> 0")
        conn.execute("VACUUM ANALYZE events")
        row = conn.execute("SELECT pg_relation_size('events')").fetchone()
        assert row is not None
        heap = row[0]
        with runner(fresh_db) as run:
            bloated = _by_table(run(TablesCollector()), "pg_table_bloat_bytes")["events"]
            conn.execute("VACUUM FULL ANALYZE events")
            compact = _by_table(run(TablesCollector()), "pg_table_bloat_bytes")["events"]
    assert bloated >= 0.8 * heap
    assert compact <= 0.2 * heap


def test_the_table_overdue_for_vacuum_is_chosen_first(fresh_db: str) -> None:
    """With room for one table, the one with dead rows over its threshold beats a larger one."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id int) WITH (autovacuum_enabled = off)")
        conn.execute("INSERT INTO big SELECT generate_series(1, 50000)")
        conn.execute("CREATE TABLE churn (id int) WITH (autovacuum_enabled = off)")
        conn.execute("INSERT INTO churn SELECT generate_series(1, 1000)")
        conn.execute("ANALYZE big, churn")
        conn.execute("DELETE FROM churn WHERE id <= 600")
    _wait_for_stats(fresh_db, "churn", "n_dead_tup", 600)
    with runner(fresh_db) as run:
        result = run(TablesCollector(top_n=1, max_series=1000))
    assert set(_by_table(result, "pg_stat_user_tables_n_dead_tup")) == {"churn"}
    selected = result.debug["selected"]
    assert selected[0]["overdue_for_vacuum"] is True
    counted = {labels["state"]: value for labels, value in samples(result, "dbpulse_tables_count")}
    assert counted == {"exported": 1.0, "omitted": 1.0}


def test_a_table_locked_by_a_migration_does_not_block_the_poll(fresh_db: str) -> None:
    """ACCESS EXCLUSIVE on a table (an ALTER in flight) never makes the collector wait."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE locked (id int PRIMARY KEY)")
        conn.execute("ANALYZE locked")
    holder = psycopg.connect(fresh_db)
    try:
        holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        with runner(fresh_db) as run:
            result = run(TablesCollector())  # the runner's statement_timeout is 5 s
        assert "locked" in _by_table(result, "pg_stat_user_tables_n_live_tup")
    finally:
        holder.rollback()
        holder.close()


def test_stat_io_runs_on_the_test_cluster(pg_dsn: str) -> None:
    """pg_stat_io exists from 16: series there, none (and no error) before."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        version = conn.info.server_version
        conn.execute("SELECT count(*) FROM pg_class")  # some I/O to report
    with runner(pg_dsn) as run:
        result = run(StatIOCollector())
    assert len(result.families) == 13
    exported = sum(len(family.samples) for family in result.families)
    assert (exported > 0) == (version >= 160000)


def test_discovery_splits_the_budget_by_what_each_database_wants(pg: LocalPostgres) -> None:
    """An empty database gives its part away: the database with many tables ends up
    exporting more than an equal share, and the target stays within max_series."""
    prefix = f"split_{uuid.uuid4().hex[:6]}"
    names = {"empty": f"{prefix}_empty", "few": f"{prefix}_few", "many": f"{prefix}_many"}
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'CREATE DATABASE "{name}"')
    for key, count in (("few", 2), ("many", 30)):
        with psycopg.connect(pg.dsn_for(names[key])) as conn:
            for i in range(count):
                conn.execute(f"CREATE TABLE t{i} (id int)")
    settings = load_settings(
        interval=0.5,
        targets=[{"name": "srv", "dsn": pg.dsn, "discovery": True}],
        discovery={"include": [f"{prefix}_.*"], "interval": 0.5},
        collectors={"tables": {"interval": 1, "top_n": 10, "max_series": 600}},
    )
    url, stop = serve_multi(MultiTarget(settings))

    def exported(text: str, database: str) -> int:
        return text.count(f'pg_stat_user_tables_n_live_tup{{datname="{database}"')

    try:
        # Round one is an equal split (4 tables at most); later rounds follow the wants:
        # empty 0, few 2 tables, many the remaining 8 of top_n.
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            status, text = get(f"{url}/probe?target=srv")
            if status == 200 and exported(text, names["many"]) == 8:
                break
            time.sleep(0.3)
        assert exported(text, names["many"]) == 8, text[-2000:]
        assert exported(text, names["few"]) == 2
        assert exported(text, names["empty"]) == 0
        series = sum(
            1
            for line in text.splitlines()
            if line.startswith(("pg_stat_user_", "pg_statio_user_", "pg_table_bloat_bytes"))
        )
        assert series <= 600
    finally:
        stop()
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            for name in names.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_pg_monitor_role_reads_every_table_without_select_rights(fresh_db: str) -> None:
    """A role with pg_monitor only (no SELECT on the tables) still gets every family;
    hidden planner statistics only switch the bloat estimate to the dead-row share."""
    role = f"mon_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE private (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO private SELECT g, 'v' FROM generate_series(1, 100) g")
        conn.execute("ANALYZE private")
        conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE pg_monitor")
    try:
        dsn = fresh_db.replace("postgres@", f"{role}@", 1)
        with runner(dsn) as run:
            result = run(TablesCollector())
        assert "private" in _by_table(result, "pg_stat_user_tables_n_live_tup")
        assert "private" in _by_table(result, "pg_table_bloat_bytes")
        assert samples(result, "pg_stat_user_indexes_idx_scans_total")
    finally:
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
