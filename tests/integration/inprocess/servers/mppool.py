"""One worker's pool under multiprocess mode, stage by stage: ``python -m ...mppool URL``.

Run with ``PROMETHEUS_MULTIPROC_DIR`` set (before Python starts, as a server would be).
Prints one JSON object per stage: the merged gauges (what a scrape in any process
would show) next to the live reading of the pool (what one process reads at scrape
time), so the test can compare them at every quiet moment.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from typing import Any

from sqlalchemy import create_engine, text

import dbpulse
import dbpulse.multiprocess
from dbpulse.inprocess.instrumentation import pool_reading

GAUGES = {
    "db_client_connection_count",
    "db_client_connection_max",
    "db_client_connection_overflow",
    "db_client_connection_pending_requests",
}


def merged() -> dict[str, float]:
    out: dict[str, float] = {}
    for family in dbpulse.multiprocess.metrics_registry().collect():
        for s in family.samples:
            if s.labels.get("pool_name") != "p" or s.name not in GAUGES:
                continue
            key = s.name + (f"{{{s.labels['state']}}}" if "state" in s.labels else "")
            out[key] = s.value
    return out


def stage(name: str, engine: Any) -> dict[str, float]:
    got = merged()
    live = pool_reading(engine)
    print(
        json.dumps({"stage": name, "merged": got, "live": live and dataclasses.asdict(live)}),
        flush=True,
    )
    return got


def wait_until(predicate: Any) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, "stage not reached"
        time.sleep(0.01)


def main(url: str) -> None:
    assert dbpulse.multiprocess.enabled()
    engine = create_engine(url, pool_size=1, max_overflow=0)
    inst = dbpulse.instrument(engine, pool_name="p", lint=False)
    stage("instrumented", engine)
    held = engine.connect()
    held.execute(text("SELECT 1"))
    stage("one held", engine)

    def waiter() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: merged().get("db_client_connection_pending_requests") == 1)
    stage("one waiting", engine)
    held.close()  # the waiter gets it, runs its statement, returns it
    thread.join()
    stage("returned", engine)
    inst.uninstrument()
    stage("uninstrumented", engine)


if __name__ == "__main__":
    main(sys.argv[1])
