"""Real gunicorn and uvicorn workers, each with an instrumented pool: one /metrics, right.

Each server runs ``servers/mpapp.py`` against the test's own database with
``PROMETHEUS_MULTIPROC_DIR`` in a temporary directory. PostgreSQL is the referee: the
connections the merged gauges count are those ``pg_stat_activity`` shows for the app.

1. Held requests, steered one per free worker slot: each waits on an advisory lock the
   test holds, so its connection is checked out until the test lets go; the merged
   ``used`` is their number, coming from every worker (their pids say so).
2. Concurrent requests of 3 statements each: the merged statement count is exactly
   requests x 3, and the request histogram counts every request once.
3. A worker killed with SIGKILL: its pool stops counting (gunicorn: its live-gauge file
   is removed by ``child_exit`` before any scrape), and after its replacement starts the
   merged pool equals PostgreSQL's view again, with the capacity of N workers, not N+1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from dbpulse.localpg import free_port
from tests.integration.inprocess.conftest import sqlalchemy_url
from tests.integration.inprocess.mpserver import (
    CAPACITY,
    Server,
    backends,
    environment,
    get,
    gunicorn,
    hold,
    listening,
    poll,
    scrape,
    uvicorn,
)
from tests.scripts import ROOT

QUERIES = 3  # statements per /query request
REQUESTS = 24
COUNT = "db_client_connection_count"
IDLE = COUNT + "{idle}"
USED = COUNT + "{used}"
STATEMENTS = "db_client_operation_duration_seconds_count"
REQUEST_QUERIES = "db_client_request_queries_count"


@pytest.fixture
def app_db(fresh_db: str) -> str:
    """The test's database with mpapp's table."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE ticks (id int)")
        conn.execute("INSERT INTO ticks VALUES (1)")
    return fresh_db


@pytest.fixture
def started() -> Iterator[list[Server]]:
    """Servers a test starts; stopped afterwards whatever happened."""
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.stop()


def pool_matches_postgres(metrics: str, dsn: str, workers: int) -> dict[str, float] | None:
    """The merged pool when it equals PostgreSQL's count and N workers' capacity."""
    got = scrape(metrics)
    if got is None or got.get("db_client_connection_max") != workers * CAPACITY:
        return None
    if got.get(IDLE, 0) + got.get(USED, 0) != backends(dsn):
        return None
    return got


def exercise(
    server: Server,
    *,
    base: str,
    metrics: str,
    dsn: str,
    workers: int,
    per_worker: int,
    multiproc_dir: Path | None,
    child_exit: bool,
) -> None:
    """Steps 1-3 of the module docstring against a started server."""

    def ready() -> dict[str, float] | None:
        server.alive()
        if not listening(base):
            return None
        got = scrape(metrics)
        return got if got and got.get("db_client_connection_max") == workers * CAPACITY else None

    ready_metrics = poll(ready, "every worker instrumented")  # its capacity counted once
    assert ready_metrics.get(USED, 0) == 0

    # 1. held connections, one per worker slot, summed across workers
    held = workers * per_worker
    pids, release = hold(base, dsn, held)
    try:
        during = scrape(metrics)
        assert during is not None
        assert during[USED] == held
        assert during["db_client_connection_pending_requests"] == 0
        assert during[IDLE] + during[USED] == backends(dsn)
    finally:
        release()
    assert len(pids) == held
    assert len(set(pids)) == workers  # every worker held its share

    # 2. concurrent statements, summed across workers
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: get(f"{base}/query?n={QUERIES}"), range(REQUESTS)))
    assert len(answers) == REQUESTS
    # The middleware observes a request once its response is sent: the client can be
    # faster than that, so the request count is waited for; statements ran before.
    after = poll(
        lambda: (got := scrape(metrics)) and got[REQUEST_QUERIES] == held + REQUESTS and got,
        "every request observed",
    )
    assert after[STATEMENTS] == REQUESTS * QUERIES
    assert after[USED] == 0
    assert after[IDLE] == backends(dsn)
    if multiproc_dir is None:
        return

    # 3. a worker killed: its connections stop counting, its replacement is counted once
    victim = pids[0]
    before_idle = after[IDLE]
    os.kill(victim, signal.SIGKILL)
    victim_file = multiproc_dir / f"gauge_livesum_{victim}.db"
    if child_exit:  # the master's hook removes it, before any scrape could prune it
        poll(lambda: not victim_file.exists(), "child_exit removed the dead worker's gauges")
    # (Checked after the scrape, which prunes a dead pid's files before merging: the
    # pool also matches PostgreSQL's view before the kill has taken effect.)
    final = poll(
        lambda: (
            (got := pool_matches_postgres(metrics, dsn, workers))
            and not victim_file.exists()
            and got
        ),
        "merged pool equals PostgreSQL's after the kill",
    )
    assert final[IDLE] < before_idle  # the dead worker's idle connections are gone
    assert final[STATEMENTS] == REQUESTS * QUERIES  # its counters still count
    assert not victim_file.exists()


# worker class, workers, and "preload" for preload_app (the engine is instrumented in
# the master, before the fork).
@pytest.mark.parametrize("config", ["sync-2", "sync-4", "gthread-2", "gthread-4", "sync-2-preload"])
def test_gunicorn_workers_one_metrics_summed_and_a_killed_worker_forgotten(
    app_db: str, tmp_path: Path, started: list[Server], config: str
) -> None:
    """gunicorn workers (README's gunicorn.conf.py): pools, statements and requests summed
    in the master's /metrics; a SIGKILLed worker's pool dropped via child_exit."""
    worker_class, count, *options = config.split("-")
    workers = int(count)
    multiproc_dir = tmp_path / "prom"
    multiproc_dir.mkdir()
    port = free_port()
    server, metrics_port, import_port = gunicorn(
        tmp_path,
        sqlalchemy_url(app_db),
        multiproc_dir,
        workers=workers,
        worker_class=worker_class,
        port=port,
        preload="preload" in options,
    )
    started.append(server)
    exercise(
        server,
        base=f"http://127.0.0.1:{port}",
        metrics=f"http://127.0.0.1:{metrics_port}/metrics",
        dsn=app_db,
        workers=workers,
        per_worker=2 if worker_class == "gthread" else 1,
        multiproc_dir=multiproc_dir,
        child_exit=True,
    )
    # The app's own /metrics (any worker answers) merges the same files.
    mounted = scrape(f"http://127.0.0.1:{port}/metrics")
    assert mounted is not None
    assert mounted[STATEMENTS] == REQUESTS * QUERIES
    # Every worker called serve_metrics(import_port) at import; one bound it, the others
    # went on (the EADDRINUSE crash). If the killed worker had it, its
    # replacement binds it again.
    bound = poll(lambda: scrape(f"http://127.0.0.1:{import_port}/metrics"), "import port")
    assert bound[STATEMENTS] == REQUESTS * QUERIES


@pytest.mark.parametrize("workers", [2, None], ids=["workers-2", "single-process"])
def test_uvicorn_metrics_count_every_request_across_its_processes(
    app_db: str, tmp_path: Path, started: list[Server], workers: int | None
) -> None:
    """uvicorn --workers 2 (multiprocess mode): summed metrics from serve_metrics in
    whichever worker bound the port, and a SIGKILLed worker (restarted by uvicorn) stops
    counting at the next scrape; uvicorn as one process (no PROMETHEUS_MULTIPROC_DIR):
    the default registry, pool gauges read live. Either way statements and requests are
    counted exactly, also on the /metrics the application mounts itself."""
    multiproc_dir = tmp_path / "prom" if workers else None
    if multiproc_dir is not None:
        multiproc_dir.mkdir()
    port = free_port()
    server, metrics_port = uvicorn(
        tmp_path, sqlalchemy_url(app_db), multiproc_dir, workers=workers, port=port
    )
    started.append(server)
    exercise(
        server,
        base=f"http://127.0.0.1:{port}",
        metrics=f"http://127.0.0.1:{metrics_port}/metrics",
        dsn=app_db,
        workers=workers or 1,
        per_worker=1,
        multiproc_dir=multiproc_dir,
        child_exit=False,
    )
    # With workers, both answered (two pids above), so the one that found the metrics
    # port taken by its sibling went on serving the application.
    mounted = scrape(f"http://127.0.0.1:{port}/metrics")
    assert mounted is not None
    assert mounted[STATEMENTS] == REQUESTS * QUERIES


def test_multiprocess_pool_gauges_follow_the_pool_through_a_wait(
    app_db: str, tmp_path: Path
) -> None:
    """Multiprocess mode: the stored pool gauges equal the live reading at every stage,
    count a blocked checkout as pending (not used), and read 0 once uninstrumented."""
    multiproc_dir = tmp_path / "prom"
    multiproc_dir.mkdir()
    env = environment(sqlalchemy_url(app_db), multiproc_dir)
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.inprocess.servers.mppool", env["MPAPP_URL"]],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]  # not logs
    stages = {s["stage"]: s for s in map(json.loads, lines)}
    for name in ("instrumented", "one held", "one waiting", "returned"):
        live = stages[name]["live"]
        assert stages[name]["merged"] == {
            f"{COUNT}{{idle}}": live["idle"],
            f"{COUNT}{{used}}": live["used"],
            "db_client_connection_max": live["max"],
            "db_client_connection_overflow": live["overflow"],
            "db_client_connection_pending_requests": live["pending"],
        }, name
    waiting = stages["one waiting"]["merged"]
    assert (waiting[USED], waiting["db_client_connection_pending_requests"]) == (1, 1)
    returned = stages["returned"]["merged"]
    assert (returned[IDLE], returned[USED], returned["db_client_connection_max"]) == (1, 0, 1)
    assert set(stages["uninstrumented"]["merged"].values()) == {0}
