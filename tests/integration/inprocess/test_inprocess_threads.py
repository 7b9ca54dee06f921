"""50 threads hammering a small instrumented pool: no lost counts, gauges agree with the pool."""

from __future__ import annotations

import threading
from collections import Counter

from prometheus_client import CollectorRegistry
from sqlalchemy import exc, text

from tests.integration.inprocess.conftest import Instrumented, value
from tests.integration.inprocess.test_inprocess_pool import _agrees, _gauges

THREADS = 50
ROUNDS = 20


def test_fifty_threads_on_five_connections_lose_no_counts(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """50 threads x 20 rounds (selects, failing statements, transactions) on pool 3+2: every event counted once."""
    engine, inst = instrumented(pg_url, pool_size=3, max_overflow=2, pool_timeout=60)
    name = inst.pool_name
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    unexpected: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(n: int) -> None:
        start.wait()
        try:
            for i in range(ROUNDS):
                kind = (n + i) % 4
                with engine.connect() as conn:
                    if kind == 0:
                        try:
                            conn.execute(text("SELECT * FROM no_such_table"))
                        except exc.ProgrammingError:
                            conn.rollback()
                            with lock:
                                outcomes["error"] += 1
                    elif kind == 1:
                        with conn.begin():
                            conn.execute(text("SELECT pg_sleep(0.001)"))
                        with lock:
                            outcomes["commit"] += 1
                    else:
                        assert conn.execute(text("SELECT 1")).scalar_one() == 1
                        conn.rollback()
                        with lock:
                            outcomes["select"] += 1
        except BaseException as e:  # the test fails on any of them, below
            unexpected.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert unexpected == []
    total = THREADS * ROUNDS
    assert sum(outcomes.values()) == total
    assert value(registry, "db_client_connection_wait_time_seconds_count", pool_name=name) == total
    assert value(registry, "db_client_connection_use_time_seconds_count", pool_name=name) == total
    assert value(registry, "db_client_connection_timeouts_total", pool_name=name) == 0
    selects = value(
        registry,
        "db_client_operation_duration_seconds_count",
        pool_name=name,
        db_operation_name="SELECT",
        db_collection_name="",
    )
    assert selects == outcomes["select"] + outcomes["commit"]
    errors = value(
        registry,
        "db_client_operation_errors_total",
        pool_name=name,
        db_operation_name="SELECT",
        error_type="UndefinedTable",
    )
    assert errors == outcomes["error"]
    commits = value(
        registry, "db_client_transaction_duration_seconds_count", pool_name=name, outcome="commit"
    )
    assert commits == outcomes["commit"]
    _agrees(registry, name, engine.pool)
    g = _gauges(registry, name)
    assert (g["used"], g["pending"], g["max"]) == (0, 0, 5)
    hook_errors = [
        s
        for m in registry.collect()
        if m.name == "dbpulse_instrumentation_errors"
        for s in m.samples
        if s.value
    ]
    assert hook_errors == []


def test_fifty_threads_with_timeouts_count_each_timeout_once(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """50 threads on a 2-connection pool with a 50 ms pool_timeout: counted timeouts equal the app's TimeoutErrors."""
    engine, inst = instrumented(pg_url, pool_size=2, max_overflow=0, pool_timeout=0.05)
    name = inst.pool_name
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def work() -> None:
        start.wait()
        for _ in range(ROUNDS):
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT pg_sleep(0.002)"))
                key = "ok"
            except exc.TimeoutError:
                key = "timeout"
            with lock:
                outcomes[key] += 1

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes["ok"] + outcomes["timeout"] == THREADS * ROUNDS
    assert outcomes["timeout"] > 0, "the pool never ran dry; the test proves nothing"
    assert (
        value(registry, "db_client_connection_timeouts_total", pool_name=name)
        == outcomes["timeout"]
    )
    assert (
        value(registry, "db_client_connection_use_time_seconds_count", pool_name=name)
        == outcomes["ok"]
    )
    assert (
        value(registry, "db_client_connection_wait_time_seconds_count", pool_name=name)
        == THREADS * ROUNDS
    )
    _agrees(registry, name, engine.pool)
    assert _gauges(registry, name)["pending"] == 0
