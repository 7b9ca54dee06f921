"""Never in the way: a slow custom query in the sidecar holds the application's DDL up at most its timeout."""

from __future__ import annotations

import threading
import time

import psycopg

from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.poller import Poller, Schedule
from dbpulse.sidecar.snapshot import Snapshot
from tests.integration.test_faults_network import SqlCollector


def test_slow_probe_delays_ddl_at_most_its_timeout(fresh_db: str) -> None:
    """A probe that would run 3 s on the app's table: statement_timeout 0.5 s cuts it, so each ALTER TABLE waits < 1 s."""
    with psycopg.connect(fresh_db, autocommit=True) as setup:
        setup.execute("CREATE TABLE t (id int)")
        setup.execute("INSERT INTO t SELECT generate_series(1, 100)")
    collectors = {"slow": SqlCollector("SELECT count(*) FROM t, pg_sleep(3)", "slow")}
    snap = Snapshot("t", {"slow": 60.0})
    conns = ConnectionManager(fresh_db, target="t")
    poller = Poller(
        collectors=collectors,
        schedules={"slow": Schedule(interval=60, timeout=0.5)},
        connections=conns,
        snapshot=snap,
    )
    stop = threading.Event()
    results: list[bool] = []

    def poll() -> None:
        while not stop.is_set():
            results.append(poller.run_once("slow"))

    worker = threading.Thread(target=poll)
    worker.start()
    waits = []
    try:
        with psycopg.connect(fresh_db, autocommit=True) as app:
            app.execute("SET lock_timeout = '2s'")
            for i in range(8):
                time.sleep(0.2)  # let the probe take its lock again
                started = time.monotonic()
                app.execute(f"ALTER TABLE t ADD COLUMN c{i} int")
                waits.append(time.monotonic() - started)
    finally:
        stop.set()
        worker.join()
        conns.close()
    assert results, "the probe never ran"
    assert not any(results), "the probe was supposed to be slower than its timeout"
    assert max(waits) < 1.0, waits
    assert max(waits) > 0.05, "the ALTERs never met the probe's lock; the test proves nothing"
