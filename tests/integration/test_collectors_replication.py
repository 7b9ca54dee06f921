"""The replication and replication_slots collectors against a real primary and standby.

A primary (wal_level=logical so a logical slot can exist, archiving to /bin/true, a
max_slot_wal_keep_size so safe_wal_size is defined) and a streaming standby made with
a copy of its data directory streaming on a physical slot: the only honest way to see is_replica, replay lag and
standby byte lags come out of PostgreSQL itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from dbpulse.localpg import LocalPostgres
from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult
from dbpulse.sidecar.collectors import create
from tests.integration.collector_helpers import runner, samples, value, wait_for
from tests.integration.standby import APPLICATION_NAME, standby_of

SLOT = "standby1_slot"


@pytest.fixture(scope="module")
def primary() -> Iterator[LocalPostgres]:
    """A primary that archives (to /bin/true) and allows logical slots."""
    settings = {
        "wal_level": "logical",
        "archive_mode": "on",
        "archive_command": "'/bin/true'",
        "max_slot_wal_keep_size": "'1GB'",
    }
    with LocalPostgres(settings=settings) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def standby(primary: LocalPostgres) -> Iterator[LocalPostgres]:
    """A streaming standby of ``primary`` on the physical slot SLOT."""
    with standby_of(primary, SLOT) as replica:
        yield replica


def _streaming(primary: LocalPostgres) -> bool:
    """The standby streams and has reported a replay position (NULL until its first reply)."""
    with psycopg.connect(primary.dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_replication"
            " WHERE state = 'streaming' AND replay_lsn IS NOT NULL AND reply_time IS NOT NULL"
        ).fetchone()
    return row is not None and row[0] == 1


def test_primary_sees_its_standby(primary: LocalPostgres, standby: LocalPostgres) -> None:
    """On the primary: not a replica, lag 0, and one standby row with byte lags and its slot."""
    wait_for(lambda: _streaming(primary), timeout=60)
    with psycopg.connect(primary.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS t_repl AS SELECT g FROM generate_series(1, 1000) g"
        )
    with runner(primary.dsn) as run:
        result = run(create("replication", Settings()))
    assert value(result, "pg_replication_is_replica") == 0
    assert value(result, "pg_replication_lag_seconds") == 0
    labels = {
        "application_name": APPLICATION_NAME,
        "client_addr": "127.0.0.1",
        "state": "streaming",
    }
    ((got, lsn),) = samples(result, "pg_stat_replication_pg_current_wal_lsn_bytes")
    assert got == {**labels, "slot_name": SLOT, "server": f"127.0.0.1:{primary.port}"}
    assert lsn > 0
    diff = value(result, "pg_stat_replication_pg_wal_lsn_diff", **labels)
    assert diff is not None
    assert 0 <= diff <= lsn
    reply = value(result, "pg_stat_replication_reply_time", **labels)
    assert reply is not None
    assert reply > 1_600_000_000


def test_standby_reports_replica_role_and_replay(
    primary: LocalPostgres, standby: LocalPostgres
) -> None:
    """On the standby: is_replica 1, lag 0 once caught up, and a growing last replay age."""
    with psycopg.connect(primary.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t_replay (x int)")
        conn.execute("INSERT INTO t_replay VALUES (1)")
        target = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()

    def caught_up() -> bool:
        with psycopg.connect(standby.dsn) as conn:
            row = conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target[0] if target else "0/0"]
            ).fetchone()
        return bool(row and row[0])

    wait_for(caught_up, timeout=60)
    with runner(standby.dsn) as run:
        role = run(create("replication", Settings()))
        slots = run(create("replication_slots", Settings()))
    assert value(role, "pg_replication_is_replica") == 1
    last_replay = value(role, "pg_replication_last_replay_seconds")
    assert last_replay is not None
    assert last_replay >= 0
    lag = value(role, "pg_replication_lag_seconds")
    assert lag is not None
    assert 0 <= lag <= last_replay
    # A standby has no standbys and no slots of its own here: empty, not an error.
    assert samples(role, "pg_stat_replication_pg_wal_lsn_diff") == []
    assert [f for f in slots.families if f.samples] == []


def test_slots_active_physical_and_abandoned_logical(
    primary: LocalPostgres, standby: LocalPostgres
) -> None:
    """The standby's slot is active; an unused logical slot retains WAL that grows with writes."""
    wait_for(lambda: _streaming(primary), timeout=60)
    with psycopg.connect(primary.dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_create_logical_replication_slot('abandoned', 'test_decoding')"
            " WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'abandoned')"
        )
        datname = conn.execute("SELECT current_database()").fetchone()
    assert datname is not None
    collector = create("replication_slots", Settings())
    with runner(primary.dsn) as run:
        before = run(collector)
        with psycopg.connect(primary.dsn, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS t_slots AS SELECT g FROM generate_series(1, 20000) g"
            )

        # synchronous_commit is off in test clusters: the WAL position moves once the
        # WAL writer has written the commit, a moment later.
        def grown() -> BuildResult | None:
            result = run(collector)
            held = value(result, "pg_replication_slots_pg_wal_lsn_diff", slot_name="abandoned")
            first = value(before, "pg_replication_slots_pg_wal_lsn_diff", slot_name="abandoned")
            return result if held is not None and first is not None and held > first else None

        after: BuildResult = wait_for(grown)
    physical = {"slot_name": SLOT, "slot_type": "physical"}
    logical = {"slot_name": "abandoned", "slot_type": "logical"}
    assert value(after, "pg_replication_slots_slot_is_active", **physical) == 1
    assert value(after, "pg_replication_slots_slot_is_active", **logical) == 0
    assert value(after, "pg_replication_slots_active", slot_name=SLOT, database="") == 1
    assert (
        value(after, "pg_replication_slots_active", slot_name="abandoned", database=datname[0]) == 0
    )
    held_before = value(before, "pg_replication_slots_pg_wal_lsn_diff", slot_name="abandoned")
    held_after = value(after, "pg_replication_slots_pg_wal_lsn_diff", slot_name="abandoned")
    assert held_before is not None
    assert held_after is not None
    assert held_after > held_before
    assert value(after, "pg_replication_slots_wal_status", wal_status="reserved", **logical) == 1
    safe = value(after, "pg_replication_slots_safe_wal_size_bytes", **logical)
    assert safe is not None
    # max_slot_wal_keep_size (1GB) counted from the current segment's boundary.
    assert 0 < safe <= 1024**3 + 16 * 1024**2
    # Only the active slot reports a confirmed flush position (postgres_exporter's rule).
    assert value(after, "pg_replication_slots_slot_confirmed_flush_lsn", **logical) is None
    current = value(after, "pg_replication_slots_slot_current_wal_lsn", **logical)
    assert current is not None
    assert current >= held_after


def test_archiver_counts_a_switched_segment(primary: LocalPostgres) -> None:
    """With archive_command=/bin/true a pg_switch_wal() is archived: count and age appear."""
    with psycopg.connect(primary.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t_arch (x int)")
        conn.execute("INSERT INTO t_arch VALUES (1)")
        conn.execute("SELECT pg_switch_wal()")
    collector = create("archiver", Settings())
    with runner(primary.dsn) as run:

        def archived() -> float | None:
            return value(run(collector), "pg_stat_archiver_archived_count")

        assert wait_for(archived, timeout=60) >= 1
        result = run(collector)
    age = value(result, "pg_stat_archiver_last_archive_age")
    assert age is not None
    assert 0 <= age < 120
    assert value(result, "pg_stat_archiver_failed_count") == 0
