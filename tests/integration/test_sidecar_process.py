"""The `dbpulse sidecar` command as a real process against a real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dbpulse.localpg import LocalPostgres, free_port
from tests.sidecar_process import SidecarProcess, fetch, parse, value

PASSWORD = "pw-Sup3rSecret"

# Every family the sidecar must serve once its collectors have run (DESIGN.md contract).
EXPECTED = [
    "pg_up",
    "pg_stat_activity_count",
    "pg_stat_activity_max_tx_duration",
    "pg_stat_activity_max_query_duration_seconds",
    "pg_connections_saturation_ratio",
    "pg_stat_statements_calls_total",
    "pg_stat_statements_seconds_total",
    "pg_stat_statements_rows_total",
    "pg_stat_statements_all_calls_total",
    "pg_stat_statements_all_seconds_total",
    "pg_locks_count",
    "pg_blocking_sessions",
    "pg_blocking_max_wait_seconds",
    "pg_blocking_root_blockers",
    "pg_stat_database_xact_commit",
    "pg_database_size_bytes",
    "pg_replication_is_replica",
    "pg_stat_bgwriter_buffers_alloc_total",
    "pg_stat_archiver_archived_count",
    "pg_wal_size_bytes",
    "pg_settings_shared_buffers_bytes",
    "pg_postmaster_start_time_seconds",
    "pg_static",
    "pg_roles_connection_limit",
    "dbpulse_build_info",
    "pg_scrape_collector_duration_seconds",
    "pg_scrape_collector_success",
    "dbpulse_snapshot_age_seconds",
]


def _families(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{")[0].split(" ")[0])
    return names


def _value(text: str, prefix: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def Sidecar(dsn: str, interval: float = 1.0) -> SidecarProcess:
    return SidecarProcess(dsn, interval=interval, env={"DBPULSE_LOG_LEVEL": "debug"})


@pytest.fixture
def sidecar_on(pg: LocalPostgres) -> Iterator[SidecarProcess]:
    side = Sidecar(pg.dsn_for(password=PASSWORD))
    yield side
    if side.proc.poll() is None:
        side.stop()


def test_serves_every_family_within_two_intervals(
    sidecar_on: SidecarProcess, pg: LocalPostgres
) -> None:
    """Against a real database the sidecar serves every contract family within two poll intervals."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("SELECT 1")
    started = time.monotonic()
    text = sidecar_on.wait_for_text(lambda t: set(EXPECTED) <= _families(t), timeout=20)
    assert time.monotonic() - started < 10
    assert _value(text, "pg_up ") == 1.0
    assert "pg_scrape_collector_success" in text
    assert 'pg_scrape_collector_success{collector="statements"} 1.0' in text
    status, body = fetch(sidecar_on.url + "/readyz")
    assert status == 200, body
    status, body = fetch(sidecar_on.url + "/debug/blocking")
    assert status == 200
    json.loads(body)
    assert sidecar_on.stop() == 0
    log = "".join(sidecar_on.output)
    assert PASSWORD not in log
    assert "dbpulse sidecar started" in log


def test_open_transaction_shows_in_activity(sidecar_on: SidecarProcess, pg: LocalPostgres) -> None:
    """An idle-in-transaction session makes max_tx_duration grow past 1 s."""
    holder = psycopg.connect(pg.dsn, application_name="forgotten")
    try:
        holder.execute("SELECT 1")
        time.sleep(1.5)
        text = sidecar_on.wait_for_text(
            lambda t: (
                (
                    value(
                        parse(t),
                        "pg_stat_activity_max_tx_duration",
                        datname="postgres",
                        state="idle in transaction",
                    )
                    or 0
                )
                > 1.0
            )
        )
        samples = parse(text)
        assert (value(samples, "pg_stat_activity_count", state="idle in transaction") or 0) >= 1
        assert value(samples, "pg_stat_activity_idle_in_transaction_max_seconds") is not None
    finally:
        holder.close()


def test_restart_postgres_under_running_sidecar() -> None:
    """Killing PostgreSQL turns pg_up to 0 and /readyz to 503; after restart it recovers by itself."""
    with LocalPostgres() as cluster:
        side = Sidecar(cluster.dsn_for(password=PASSWORD), interval=0.5)
        try:
            side.wait_for_text(lambda t: _value(t, "pg_up ") == 1.0)
            cluster.pg_ctl_stop("immediate")
            side.wait_for_text(lambda t: _value(t, "pg_up ") == 0.0)
            status, body = fetch(side.url + "/readyz")
            assert status == 503
            assert "not reachable" in body
            assert fetch(side.url + "/healthz")[0] == 200
            cluster.pg_ctl_start()
            side.wait_for_text(lambda t: _value(t, "pg_up ") == 1.0, timeout=40)
            assert side.proc.poll() is None
        finally:
            code = side.stop()
        assert code == 0
        assert PASSWORD not in "".join(side.output)


def test_unreachable_database_at_start_is_not_fatal() -> None:
    """With nothing listening, the sidecar stays up serving pg_up 0, and logs the reason once."""
    side = Sidecar(f"postgresql://u:{PASSWORD}@127.0.0.1:{free_port()}/db")
    try:
        text = side.wait_for_text(lambda t: _value(t, "pg_up ") == 0.0)
        assert "pg_scrape_collector_success" in text
        time.sleep(2)
        assert side.proc.poll() is None
    finally:
        assert side.stop() == 0
    log = "".join(side.output)
    assert PASSWORD not in log
    assert log.count("database unreachable") == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["sidecar"], "dsn: required"),
        (["sidecar", "--dsn", "x", "--listen", "nonsense"], "listen: must be HOST:PORT"),
        (["check-config", "/nonexistent.yaml"], "cannot read config file"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args: list[str], needle: str) -> None:
    """Bad flags or config print a clear message (no traceback) and exit with 2."""
    result = subprocess.run(
        [sys.executable, "-m", "dbpulse", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_example_exits_zero() -> None:
    """The shipped example config passes check-config."""
    example = Path(__file__).resolve().parents[2] / "config" / "dbpulse.example.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "dbpulse", "check-config", str(example)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
