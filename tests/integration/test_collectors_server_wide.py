"""The server-wide collectors (settings, bgwriter, archiver, wal, server, roles) on a real PostgreSQL.

pg_settings_* is also checked against Debian's postgres_exporter 0.11.1 run on the same
cluster: same family names, help, type and values.
"""

from __future__ import annotations

import math
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbpulse.localpg import LocalPostgres, free_port
from dbpulse.settings import Settings
from dbpulse.sidecar.collectors import FACTORIES, create, replication, replication_slots
from dbpulse.sidecar.collectors.wal import NO_PERMISSION
from tests.integration.collector_helpers import runner, samples, value, wait_for
from tests.sidecar_process import fetch

POSTGRES_EXPORTER = Path("/usr/bin/prometheus-postgres-exporter")
# Session parameters a client sends at startup: lib/pq sets extra_float_digits=2 for
# its own session, so postgres_exporter reports that and dbpulse the server's value.
CLIENT_SESSION_SETTINGS = {"pg_settings_extra_float_digits"}


@pytest.fixture
def postgres_exporter_metrics(pg: LocalPostgres) -> Iterator[str]:
    """One /metrics body of Debian's postgres_exporter scraping the test cluster."""
    if not POSTGRES_EXPORTER.exists():
        pytest.skip("Debian's prometheus-postgres-exporter is not installed")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATA_SOURCE_NAME": f"{pg.dsn}?sslmode=disable",
    }
    proc = subprocess.Popen(
        [str(POSTGRES_EXPORTER), f"--web.listen-address=127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def scrape() -> str | None:
            status, body = fetch(f"http://127.0.0.1:{port}/metrics")
            return body if status == 200 and "pg_settings_" in body else None

        yield str(wait_for(scrape, timeout=30))
    finally:
        proc.terminate()
        proc.wait(10)


def _settings_families(text: str) -> dict[str, tuple[str, str, float]]:
    """pg_settings_* families of a /metrics body: name -> (type, help, value)."""
    out = {}
    for fam in text_string_to_metric_families(text):
        if fam.name.startswith("pg_settings_"):
            (sample,) = fam.samples
            out[fam.name] = (fam.type, fam.documentation, sample.value)
    return out


def test_settings_match_postgres_exporter(
    pg: LocalPostgres, postgres_exporter_metrics: str
) -> None:
    """Every pg_settings_* family of postgres_exporter 0.11.1 is here with its type, help and value."""
    theirs = _settings_families(postgres_exporter_metrics)
    with runner(pg.dsn) as run:
        result = run(create("settings", Settings()))
    ours = {
        fam.name: (fam.type, fam.documentation, fam.samples[0].value) for fam in result.families
    }
    assert len(theirs) > 200
    assert sorted(theirs) == sorted(ours)
    differ = {
        name: (theirs[name], ours[name])
        for name in theirs
        if theirs[name] != ours[name] and name not in CLIENT_SESSION_SETTINGS
    }
    assert differ == {}


def test_settings_ignore_the_polls_own_session(pg: LocalPostgres) -> None:
    """The poll's SET LOCAL statement_timeout/read-only never leak into pg_settings_*."""
    with runner(pg.dsn) as run:
        result = run(create("settings", Settings()))
    assert value(result, "pg_settings_statement_timeout_seconds") == 0
    assert value(result, "pg_settings_transaction_read_only") == 0
    assert value(result, "pg_settings_max_connections") == 120
    assert value(result, "pg_settings_shared_buffers_bytes") == 16384 * 8192
    assert value(result, "pg_settings_pg_stat_statements_max") == 5000
    assert result.notices == []


def test_checkpoint_moves_the_checkpoint_counter(pg: LocalPostgres) -> None:
    """A CHECKPOINT counts in pg_stat_bgwriter (pre-17) or pg_stat_checkpointer (17+)."""
    with psycopg.connect(pg.dsn) as conn:
        version = conn.info.server_version
    requested = (
        "pg_stat_checkpointer_num_requested_total"
        if version >= 170000
        else "pg_stat_bgwriter_checkpoints_req_total"
    )
    collector = create("bgwriter", Settings())
    with runner(pg.dsn) as run:
        before = value(run(collector), requested)
        assert before is not None
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")

        def moved() -> bool:
            after = value(run(collector), requested)
            return after is not None and after > before

        wait_for(moved)
        result = run(collector)
    assert value(result, "pg_stat_bgwriter_buffers_alloc_total") is not None
    reset = value(result, "pg_stat_bgwriter_stats_reset_total")
    assert reset is not None
    assert reset == int(reset)
    checkpointer = any(f.name.startswith("pg_stat_checkpointer") for f in result.families)
    assert checkpointer == (version >= 170000)
    # 17 dropped the checkpoint columns from pg_stat_bgwriter: no flat-lined family.
    assert (value(result, "pg_stat_bgwriter_checkpoints_timed_total") is None) == checkpointer


def test_archiver_without_archiving_counts_nothing(pg: LocalPostgres) -> None:
    """archive_mode off: both counters are 0 and the last-archive age is NaN (never)."""
    with runner(pg.dsn) as run:
        result = run(create("archiver", Settings()))
    assert value(result, "pg_stat_archiver_archived_count") == 0
    assert value(result, "pg_stat_archiver_failed_count") == 0
    age = value(result, "pg_stat_archiver_last_archive_age")
    assert age is not None
    assert math.isnan(age)


def test_server_postmaster_start_and_version(pg: LocalPostgres) -> None:
    """pg_postmaster_start_time_seconds is the server's start; pg_static names major.minor.0."""
    with psycopg.connect(pg.dsn) as conn:
        row = conn.execute(
            "SELECT EXTRACT(EPOCH FROM pg_postmaster_start_time())::float8, version(),"
            " current_setting('server_version_num')::int"
        ).fetchone()
    assert row is not None
    with runner(pg.dsn) as run:
        result = run(create("server", Settings()))
    assert value(result, "pg_postmaster_start_time_seconds") == pytest.approx(row[0])
    ((labels, one),) = samples(result, "pg_static")
    assert one == 1
    assert labels["version"] == row[1]
    major, minor = divmod(row[2], 10000)
    assert labels["short_version"] == f"{major}.{minor}.0"


def test_roles_connection_limit(pg: LocalPostgres) -> None:
    """A role created with CONNECTION LIMIT 7 shows 7; an unlimited one shows -1."""
    role = f"r_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 7")
    try:
        with runner(pg.dsn) as run:
            result = run(create("roles", Settings()))
    finally:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")
    assert value(result, "pg_roles_connection_limit", rolname=role) == 7
    assert value(result, "pg_roles_connection_limit", rolname="postgres") == -1


@pytest.fixture
def plain_role(pg: LocalPostgres) -> Iterator[tuple[str, str]]:
    """A login role without pg_monitor; yields (its DSN, its name)."""
    role = f"r_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    yield pg.dsn_for(user=role), role
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"DROP ROLE {role}")


def test_wal_needs_pg_monitor_and_says_so(pg: LocalPostgres, plain_role: tuple[str, str]) -> None:
    """Without pg_monitor: no pg_wal_* and the GRANT notice; with it: real segment counts."""
    dsn, role = plain_role
    collector = create("wal", Settings())
    with runner(dsn) as run:
        denied = run(collector)
    assert denied.families == []
    assert denied.notices == [NO_PERMISSION]
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"GRANT pg_monitor TO {role}")
        row = conn.execute(
            "SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'"
        ).fetchone()
    assert row is not None
    with runner(dsn) as run:
        allowed = run(collector)
    segments = value(allowed, "pg_wal_segments")
    size = value(allowed, "pg_wal_size_bytes")
    assert segments is not None
    assert segments >= 1
    assert size == segments * row[0]
    assert allowed.notices == []


def test_every_server_wide_collector_runs_as_pg_monitor(
    pg: LocalPostgres, plain_role: tuple[str, str]
) -> None:
    """A pg_monitor-only role runs every server-wide collector without an error."""
    dsn, role = plain_role
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"GRANT pg_monitor TO {role}")
    names = [
        "replication",
        "replication_slots",
        "bgwriter",
        "archiver",
        "wal",
        "settings",
        "server",
        "roles",
    ]
    with runner(dsn) as run:
        results = {name: run(create(name, Settings())) for name in names}
    assert all(results[name].families for name in names)


def _columns(dsn: str, sql: str) -> list[str]:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql)
        assert cur.description is not None
        return [col.name for col in cur.description]


@pytest.mark.parametrize(
    ("newest", "older"),
    [
        (replication.SQL_STANDBYS_V12, replication.SQL_STANDBYS_OLD),
        (replication_slots.SQL_V13, replication_slots.SQL_OLD),
    ],
    ids=["pg_stat_replication-pre-12", "pg_replication_slots-pre-13"],
)
def test_older_variants_keep_the_row_shape(pg: LocalPostgres, newest: str, older: str) -> None:
    """An older server's query runs here too and yields the columns the build expects."""
    assert _columns(pg.dsn, older) == _columns(pg.dsn, newest)


def test_no_family_comes_from_two_collectors(pg: LocalPostgres) -> None:
    """Every registered collector runs once: no family name is built by two of them."""
    owners: dict[str, set[str]] = {}
    with runner(pg.dsn) as run:
        for name in FACTORIES:
            for fam in run(create(name, Settings())).families:
                owners.setdefault(fam.name, set()).add(name)
    assert "pg_settings_max_connections" in owners
    assert {name: by for name, by in owners.items() if len(by) > 1} == {}
