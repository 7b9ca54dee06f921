"""Pool metrics against real pools: exhaustion, timeouts, hold time, invalidation."""

from __future__ import annotations

import threading

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import exc, text
from sqlalchemy.pool import NullPool, Pool, QueuePool, StaticPool

from dbpulse.inprocess import pool as pool_hooks
from tests.clock import ManualClock
from tests.integration.collector_helpers import wait_for
from tests.integration.inprocess.conftest import Instrumented, value


def _gauges(registry: CollectorRegistry, name: str) -> dict[str, float]:
    return {
        "idle": value(registry, "db_client_connection_count", pool_name=name, state="idle"),
        "used": value(registry, "db_client_connection_count", pool_name=name, state="used"),
        "overflow": value(registry, "db_client_connection_overflow", pool_name=name),
        "pending": value(registry, "db_client_connection_pending_requests", pool_name=name),
        "max": value(registry, "db_client_connection_max", pool_name=name),
    }


def _agrees(registry: CollectorRegistry, name: str, pool: Pool) -> None:
    assert isinstance(pool, QueuePool)
    g = _gauges(registry, name)
    assert (g["used"], g["idle"], g["overflow"]) == (
        pool.checkedout(),
        pool.checkedin(),
        max(0, pool.overflow()),
    ), pool.status()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The pool hooks' perf_counter, moved by hand: waits and holds measure what the test says."""
    manual = ManualClock()
    monkeypatch.setattr(pool_hooks, "perf_counter", manual)
    return manual


def test_queue_pool_gauges_agree_with_status_at_every_step(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """idle/used/overflow follow checkout, overflow, checkin, detach and invalidate."""
    engine, inst = instrumented(pg_url, pool_size=2, max_overflow=1)
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    name = inst.pool_name
    _agrees(registry, name, pool)
    assert _gauges(registry, name)["max"] == 3
    assert _gauges(registry, name)["overflow"] == 0  # overflow() is -2 here
    conns = [engine.connect() for _ in range(3)]
    for c in conns:
        c.execute(text("SELECT 1"))
    _agrees(registry, name, pool)
    assert _gauges(registry, name)["overflow"] == 1
    conns[0].close()
    _agrees(registry, name, pool)
    conns[1].detach()
    _agrees(registry, name, pool)
    conns[2].invalidate()
    _agrees(registry, name, pool)
    assert value(registry, "db_client_connection_invalidations_total", pool_name=name) == 1
    conns[1].close()
    conns[2].close()
    _agrees(registry, name, pool)
    assert _gauges(registry, name)["used"] == 0
    # Three connections were opened, and each checkout was timed.
    assert value(registry, "db_client_connection_create_time_seconds_count", pool_name=name) == 3
    assert value(registry, "db_client_connection_wait_time_seconds_count", pool_name=name) == 3
    assert value(registry, "db_client_connection_use_time_seconds_count", pool_name=name) == 3


def test_exhausted_pool_counts_waiters_then_timeouts(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented, clock: ManualClock
) -> None:
    """Threads blocked on a full pool show as pending, then as timeouts and long waits."""
    # pool_timeout is real time; 2 s leaves the clock move below ample room to happen first.
    engine, inst = instrumented(pg_url, pool_size=1, max_overflow=0, pool_timeout=2.0)
    name = inst.pool_name
    holder = engine.connect()
    errors: list[BaseException] = []

    def checkout() -> None:
        try:
            with engine.connect():
                pass
        except exc.TimeoutError as e:
            errors.append(e)

    threads = [threading.Thread(target=checkout) for _ in range(2)]
    for t in threads:
        t.start()
    wait_for(lambda: _gauges(registry, name)["pending"] == 2)
    wait_for(lambda: all(clock.read_by(t) for t in threads))  # both took their start time
    assert _gauges(registry, name)["used"] == 1
    clock.advance(1.0)
    for t in threads:
        t.join()
    holder.close()
    assert len(errors) == 2
    assert value(registry, "db_client_connection_timeouts_total", pool_name=name) == 2
    assert _gauges(registry, name)["pending"] == 0
    wait = "db_client_connection_wait_time_seconds_bucket"
    # Both waiters waited the (manual) second; the holder's own checkout took no time.
    assert value(registry, wait, pool_name=name, le="0.5") == 1
    assert value(registry, wait, pool_name=name, le="5.0") == 3


def test_waiter_that_gets_a_connection_is_not_a_timeout(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented, clock: ManualClock
) -> None:
    """A caller that waits and then gets the released connection counts as a wait only."""
    engine, inst = instrumented(pg_url, pool_size=1, max_overflow=0, pool_timeout=10)
    name = inst.pool_name
    holder = engine.connect()
    got: list[bool] = []

    def checkout() -> None:
        with engine.connect() as conn:
            got.append(conn.execute(text("SELECT true")).scalar_one())

    thread = threading.Thread(target=checkout)
    thread.start()
    wait_for(lambda: _gauges(registry, name)["pending"] == 1 and clock.read_by(thread))
    clock.advance(0.3)  # the waiter's wait, between the 0.1 s and 0.5 s buckets
    holder.close()
    thread.join()
    assert got == [True]
    assert value(registry, "db_client_connection_timeouts_total", pool_name=name) == 0
    wait = "db_client_connection_wait_time_seconds_bucket"
    assert value(registry, wait, pool_name=name, le="0.1") == 1
    assert value(registry, wait, pool_name=name, le="0.5") == 2


def test_connection_held_two_seconds_lands_in_the_right_bucket(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented, clock: ManualClock
) -> None:
    """A 2 s hold is above the 1 s bucket and inside the 2.5 s one."""
    engine, inst = instrumented(pg_url)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        clock.advance(2.0)
    use = "db_client_connection_use_time_seconds_bucket"
    assert value(registry, use, pool_name=inst.pool_name, le="1.0") == 0
    assert value(registry, use, pool_name=inst.pool_name, le="2.5") == 1
    total = value(registry, "db_client_connection_use_time_seconds_sum", pool_name=inst.pool_name)
    assert 2.0 <= total < 2.5


def test_killed_backend_invalidates_the_connection(
    registry: CollectorRegistry, pg_url: str, pg_dsn: str, instrumented: Instrumented
) -> None:
    """pg_terminate_backend makes the next statement fail and invalidates its connection."""
    engine, inst = instrumented(pg_url, pool_size=2)
    name = inst.pool_name
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(exc.OperationalError) as raised:
            conn.execute(text("SELECT 1"))
        assert raised.value.connection_invalidated
    assert value(registry, "db_client_connection_invalidations_total", pool_name=name) == 1
    errors = {
        s.labels["error_type"]: s.value
        for m in registry.collect()
        if m.name == "db_client_operation_errors"
        for s in m.samples
        if s.name.endswith("_total") and s.labels["pool_name"] == name
    }
    assert sum(errors.values()) == 1, errors
    _agrees(registry, name, engine.pool)
    # The pool recovers with a new connection.
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert value(registry, "db_client_connection_create_time_seconds_count", pool_name=name) == 2


def test_null_pool_counts_checked_out_connections(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """NullPool has no counters of its own: used follows checkouts, idle stays 0."""
    engine, inst = instrumented(pg_url, poolclass=NullPool)
    name = inst.pool_name
    a, b = engine.connect(), engine.connect()
    a.execute(text("SELECT 1"))
    g = _gauges(registry, name)
    assert (g["used"], g["idle"], g["max"]) == (2, 0, float("inf"))
    a.close()
    b.detach()
    assert _gauges(registry, name)["used"] == 0
    b.close()
    assert value(registry, "db_client_connection_create_time_seconds_count", pool_name=name) == 2


def test_static_pool_has_one_connection(
    registry: CollectorRegistry, instrumented: Instrumented
) -> None:
    """StaticPool (SQLite in memory) shows its single connection as used, then idle."""
    engine, inst = instrumented("sqlite://", poolclass=StaticPool)
    name = inst.pool_name
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        g = _gauges(registry, name)
        assert (g["used"], g["idle"], g["max"]) == (1, 0, 1)
    g = _gauges(registry, name)
    assert (g["used"], g["idle"]) == (0, 1)


def test_dispose_keeps_measuring_the_new_pool(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """engine.dispose() replaces the pool; checkouts on the new one are still timed."""
    engine, inst = instrumented(pg_url)
    with engine.connect():
        pass
    engine.dispose()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    name = inst.pool_name
    assert value(registry, "db_client_connection_wait_time_seconds_count", pool_name=name) == 2
    assert value(registry, "db_client_connection_use_time_seconds_count", pool_name=name) == 2
    _agrees(registry, name, engine.pool)


def test_concurrent_threads_lose_no_counts(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """8 threads x 40 checkouts and statements on a 3-connection pool: every one counted, nothing left used."""
    engine, inst = instrumented(pg_url, pool_size=3, max_overflow=0, pool_timeout=30)
    name = inst.pool_name

    def work() -> None:
        for _ in range(40):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert value(registry, "db_client_connection_wait_time_seconds_count", pool_name=name) == 320
    assert value(registry, "db_client_connection_use_time_seconds_count", pool_name=name) == 320
    assert (
        value(
            registry,
            "db_client_operation_duration_seconds_count",
            pool_name=name,
            db_operation_name="SELECT",
            db_collection_name="",
        )
        == 320
    )
    g = _gauges(registry, name)
    assert (g["used"], g["idle"], g["pending"]) == (0, 3, 0)
