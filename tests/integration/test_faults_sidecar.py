"""Faults under a running `dbpulse sidecar` process: restart loop, pg_stat_statements churn, a standby.

In each the process stays up, pg_up and pg_scrape_collector_success tell the truth, the
server never sees more dbpulse backends than configured, and it recovers by itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dbpulse.localpg import LocalPostgres
from tests.sidecar_process import BackendCounter, Samples, SidecarProcess, fetch, value

COLLECTORS = ("activity", "statements", "locks", "progress", "database", "migrations")


def all_ok(samples: Samples) -> bool:
    return value(samples, "pg_up") == 1.0 and all(
        value(samples, "pg_scrape_collector_success", collector=c) == 1.0 for c in COLLECTORS
    )


@pytest.fixture
def cluster() -> Iterator[LocalPostgres]:
    """A dedicated cluster this test may stop, restart and break."""
    with LocalPostgres() as pg:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        yield pg


def test_restart_loop_for_20_seconds(cluster: LocalPostgres) -> None:
    """PostgreSQL stopped and started every few seconds for 20 s: pg_up follows each phase, never >1 backend, full recovery."""
    side = SidecarProcess(cluster.dsn, interval=0.3)
    counter = BackendCounter(cluster.dsn)
    cycles = 0
    try:
        side.wait_for(all_ok, timeout=30)
        started = time.monotonic()
        while time.monotonic() - started < 20:
            cluster.pg_ctl_stop("immediate" if cycles % 2 else "fast")
            side.wait_for(lambda s: value(s, "pg_up") == 0.0, timeout=10)
            down = side.wait_for(
                lambda s: value(s, "pg_scrape_collector_success", collector="database") == 0.0,
                timeout=10,
            )
            assert value(down, "pg_up") == 0.0
            status, body = fetch(side.url + "/readyz")
            assert status == 503, body
            time.sleep(0.5)
            cluster.pg_ctl_start()
            side.wait_for(lambda s: value(s, "pg_up") == 1.0, timeout=40)
            cycles += 1
        side.wait_for(all_ok, timeout=40)
        assert fetch(side.url + "/readyz")[0] == 200
        assert side.proc.poll() is None
    finally:
        counts = counter.stop()
        code = side.stop()
    assert cycles >= 3, cycles
    assert counts, "the backend counter never reached the server"
    assert max(counts) <= 1, max(counts)
    assert code == 0
    log = "".join(side.output)
    assert "Traceback" not in log


def test_pg_stat_statements_dropped_recreated_and_reset(cluster: LocalPostgres) -> None:
    """DROP EXTENSION fails only the statements collector with a clear reason; CREATE and reset bring it back, counters restart low, none negative."""
    side = SidecarProcess(cluster.dsn, interval=0.3)
    counter = BackendCounter(cluster.dsn)
    try:
        with psycopg.connect(cluster.dsn, autocommit=True) as app:
            for _ in range(300):
                app.execute("SELECT count(*) FROM pg_class WHERE relpages >= 0")
        before = side.wait_for(
            lambda s: all_ok(s) and (value(s, "pg_stat_statements_all_calls_total") or 0) >= 300
        )
        high = value(before, "pg_stat_statements_all_calls_total", datname="postgres")
        assert high is not None
        assert high >= 300

        with psycopg.connect(cluster.dsn, autocommit=True) as admin:
            admin.execute("DROP EXTENSION pg_stat_statements")
        broken = side.wait_for(
            lambda s: value(s, "pg_scrape_collector_success", collector="statements") == 0.0
        )
        assert value(broken, "pg_up") == 1.0
        for other in ("activity", "locks", "database"):
            assert value(broken, "pg_scrape_collector_success", collector=other) == 1.0
        status, body = fetch(side.url + "/readyz")
        assert status == 200, body  # the database is reachable; one collector is not ready

        with psycopg.connect(cluster.dsn, autocommit=True) as admin:
            admin.execute("CREATE EXTENSION pg_stat_statements")
            admin.execute("SELECT pg_stat_statements_reset()")
        after = side.wait_for(all_ok)
        low = value(after, "pg_stat_statements_all_calls_total", datname="postgres")
        assert low is not None
        assert low < high / 2, (low, high)  # a decrease: Prometheus' rate() sees a reset
        for (name, _), v in after.items():
            if name.startswith("pg_stat_statements_"):
                assert v >= 0, name
        time.sleep(1)
        assert all_ok(side.metrics())
    finally:
        counts = counter.stop()
        code = side.stop()
    assert max(counts) <= 1
    assert code == 0
    log = "".join(side.output)
    assert "pg_stat_statements is not installed in database postgres" in log
    assert "collector recovered" in log


def _standby_of(primary: LocalPostgres) -> LocalPostgres:
    """pg_basebackup -R of ``primary`` started as a streaming standby on its own port."""
    base = Path(tempfile.mkdtemp(prefix="dbpulse-standby-"))
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
    standby = LocalPostgres(bindir=primary.bindir, base=base)
    primary._pg(
        "pg_basebackup",
        "-D",
        str(standby.datadir),
        "-R",
        "-X",
        "stream",
        "-c",
        "fast",
        "-h",
        "127.0.0.1",
        "-p",
        str(primary.port),
        "-U",
        "postgres",
    )
    with (standby.datadir / "postgresql.conf").open("a", encoding="utf-8") as fh:
        fh.write(f"port = {standby.port}\nunix_socket_directories = '{base}'\n")
    standby.pg_ctl_start()
    return standby


def test_standby_in_recovery_is_fully_collected(cluster: LocalPostgres) -> None:
    """Against a streaming standby (pg_is_in_recovery) every collector succeeds and pg_up is 1."""
    standby = _standby_of(cluster)
    base = standby.base
    try:
        with psycopg.connect(standby.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            assert row == (True,)
        side = SidecarProcess(standby.dsn, interval=0.3)
        try:
            samples = side.wait_for(all_ok, timeout=30)
            assert value(samples, "pg_stat_database_xact_commit", datname="postgres")
            assert fetch(side.url + "/readyz")[0] == 200
        finally:
            code = side.stop()
        assert code == 0
        assert "collector failed" not in "".join(side.output)
    finally:
        standby.stop()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
