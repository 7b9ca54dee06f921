"""The migrations collector's SQL against a real PostgreSQL, one hazard per situation."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dbpulse.settings import MigrationsSettings
from dbpulse.sidecar.collectors.migrations import MigrationsCollector
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.poller import Poller, Schedule
from dbpulse.sidecar.snapshot import Snapshot

SCHEMA = """
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
CREATE TABLE covered (id int PRIMARY KEY, parent_id int REFERENCES parent);
CREATE INDEX covered_parent_idx ON covered (parent_id);
CREATE TABLE later (id int PRIMARY KEY, parent_id int);
CREATE INDEX later_parent_idx ON later (parent_id);
ALTER TABLE later ADD CONSTRAINT later_parent_fk FOREIGN KEY (parent_id)
    REFERENCES parent NOT VALID;
CREATE TABLE dup (v int);
INSERT INTO dup VALUES (1), (1);
CREATE TABLE notes (id int PRIMARY KEY, tag text);
CREATE INDEX notes_tag_idx ON notes (tag);
CREATE UNIQUE INDEX notes_tag_unique ON notes (id, tag);
"""


def _scrape(dsn: str, config: MigrationsSettings) -> tuple[bool, str]:
    snap = Snapshot("t", {"migrations": 600.0})
    conns = ConnectionManager(dsn, target="t", connect_timeout=2)
    poller = Poller(
        collectors={"migrations": MigrationsCollector(config)},
        schedules={"migrations": Schedule(interval=60, timeout=5)},
        connections=conns,
        snapshot=snap,
    )
    try:
        ok = poller.run_once("migrations")
    finally:
        conns.close()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snap)
    return ok, generate_latest(registry).decode()


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


@pytest.fixture
def hazards(fresh_db: str) -> str:
    """A database holding one of each hazard; the failed concurrent build runs for real."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dup_v_key ON dup (v)")
    return fresh_db


def test_each_hazard_becomes_its_series(hazards: str) -> None:
    """Failed CIC, NOT VALID FK, unindexed FK and unused index each show with their labels."""
    datname = hazards.rsplit("/", 1)[1]
    ok, text = _scrape(hazards, MigrationsSettings(unused_index_min_bytes=0))
    assert ok, text
    where = {"datname": datname, "schemaname": "public"}
    assert _samples(text, "pg_index_invalid") == [
        ({**where, "relname": "dup", "indexrelname": "dup_v_key"}, 1.0)
    ]
    assert _samples(text, "pg_constraint_not_valid") == [
        ({**where, "relname": "later", "conname": "later_parent_fk"}, 1.0)
    ]
    # covered's FK has an index; later's NOT VALID FK is covered by later_parent_idx.
    assert _samples(text, "pg_foreign_key_missing_index") == [
        ({**where, "relname": "child", "conname": "child_parent_id_fkey"}, 1.0)
    ]
    unused = _samples(text, "pg_index_unused_bytes")
    # Unique/primary indexes and indexes serving a foreign key are never "unused".
    assert [labels["indexrelname"] for labels, _ in unused] == ["notes_tag_idx"]
    assert unused[0][1] > 0
    assert ({"datname": datname, "check": "invalid_indexes"}, 1.0) in _samples(
        text, "pg_migration_findings"
    )


def test_clean_database_still_shows_every_family(fresh_db: str) -> None:
    """On an empty schema every family is present (HELP/TYPE) with no samples."""
    ok, text = _scrape(fresh_db, MigrationsSettings())
    assert ok
    for family in (
        "pg_index_invalid",
        "pg_constraint_not_valid",
        "pg_foreign_key_missing_index",
        "pg_index_unused_bytes",
        "pg_table_seq_scan_heavy",
    ):
        assert f"# TYPE {family} gauge" in text
        assert _samples(text, family) == []


def test_series_are_bounded_and_true_count_kept(fresh_db: str) -> None:
    """With max_series=1, three unindexed FKs export one series and a findings count of 3."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE p (id int PRIMARY KEY)")
        for i in range(3):
            conn.execute(f"CREATE TABLE c{i} (id int, p_id int REFERENCES p)")
    ok, text = _scrape(fresh_db, MigrationsSettings(max_series=1))
    assert ok
    assert len(_samples(text, "pg_foreign_key_missing_index")) == 1
    counts = {labels["check"]: value for labels, value in _samples(text, "pg_migration_findings")}
    assert counts["fk_missing_index"] == 3


def test_seq_scan_heavy_table_crosses_thresholds(fresh_db: str) -> None:
    """A table scanned sequentially more than the thresholds appears with its scan count."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id int, payload text)")
        conn.execute("INSERT INTO big SELECT g, 'x' FROM generate_series(1, 500) g")
        conn.execute("CREATE TABLE small (id int)")
        conn.execute("INSERT INTO small VALUES (1)")
        for _ in range(6):
            conn.execute("SELECT count(*) FROM big WHERE payload = 'y'")
            conn.execute("SELECT count(*) FROM small")
        # Statistics reach the shared views when the backend next goes idle; make it now.
        conn.execute("SELECT pg_stat_force_next_flush()")
    ok, text = _scrape(fresh_db, MigrationsSettings(seq_scan_min_scans=5, seq_scan_min_rows=100))
    assert ok
    heavy = _samples(text, "pg_table_seq_scan_heavy")
    assert [labels["relname"] for labels, _ in heavy] == ["big"]
    assert heavy[0][1] >= 6


def test_index_being_built_is_not_reported_invalid(fresh_db: str) -> None:
    """A concurrent build in flight (its index still INVALID in pg_index) is not flagged."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (v int)")
    holder = psycopg.connect(fresh_db)
    builder = psycopg.connect(fresh_db, autocommit=True)
    holder.execute("INSERT INTO t VALUES (1)")  # an open writer the build must wait for
    thread = threading.Thread(
        target=lambda: builder.execute("CREATE INDEX CONCURRENTLY t_v_idx ON t (v)")
    )
    thread.start()
    try:
        with psycopg.connect(fresh_db, autocommit=True) as watcher:
            deadline = time.monotonic() + 10
            while (
                watcher.execute(
                    "SELECT 1 FROM pg_index WHERE NOT indisvalid AND indexrelid = to_regclass('t_v_idx')"
                ).fetchone()
                is None
            ):
                assert time.monotonic() < deadline, "the build never started"
                time.sleep(0.05)
        ok, text = _scrape(fresh_db, MigrationsSettings())
        assert ok
        assert _samples(text, "pg_index_invalid") == []
    finally:
        holder.commit()
        holder.close()
        thread.join(timeout=10)
        builder.close()
