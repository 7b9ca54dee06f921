"""instrument()/uninstrument(): idempotence, exact removal, hook failures, no strong references."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool, QueuePool

import dbpulse
from dbpulse.inprocess import compat
from dbpulse.inprocess.instrumentation import instrument
from tests.integration.inprocess.conftest import value
from tests.logcapture import capture_logs

POOL_EVENTS = ("detach", "invalidate")


def _listener_count(pool: Pool, identifiers: tuple[str, ...]) -> int:
    return sum(len(getattr(pool.dispatch, name)) for name in identifiers)


def test_public_api_is_lazily_exported() -> None:
    """dbpulse.instrument / Instrumentation / query_counter / serve_metrics resolve."""
    assert dbpulse.instrument is instrument
    assert dbpulse.Instrumentation.__name__ == "Instrumentation"
    assert callable(dbpulse.query_counter)
    assert callable(dbpulse.serve_metrics)


def test_second_instrument_is_a_logged_no_op(registry: CollectorRegistry) -> None:
    """Instrumenting one engine twice returns the first Instrumentation and says so."""
    engine = create_engine("sqlite://")
    first = instrument(engine, registry=registry)
    with capture_logs() as logs:
        again = instrument(engine, registry=CollectorRegistry(), pool_name="other")
    assert again is first
    assert any("already instrumented" in e["event"] for e in logs)
    assert len(engine.pool.dispatch.invalidate) == 1
    first.uninstrument()


def test_no_engine_level_listener_is_added(registry: CollectorRegistry) -> None:
    """Statements stay on SQLAlchemy's fast path: no ConnectionEvents listener at all."""
    engine = create_engine("sqlite://")
    inst = instrument(engine, registry=registry)
    assert not engine._has_events
    assert not engine.dialect._has_events
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        assert not conn._has_events
    inst.uninstrument()


def test_uninstrument_removes_exactly_what_it_added(
    registry: CollectorRegistry, pg_url: str
) -> None:
    """Pool listeners, dialect and pool wrappers and the Session hook all go; others stay."""
    engine = create_engine(pg_url)

    @event.listens_for(engine, "after_cursor_execute")
    def users_own(*args: object) -> None:
        pass

    @event.listens_for(engine.pool, "checkout")
    def users_pool_listener(*args: object) -> None:
        pass

    dialect = engine.dialect
    before_pool = _listener_count(engine.pool, POOL_EVENTS)
    inst = instrument(engine, registry=registry)
    first_pool = engine.pool
    added: list[tuple[Pool, str, Callable[..., None]]] = [
        (first_pool, "detach", inst._pool.on_detach)
    ]
    added.append((first_pool, "invalidate", inst._pool.on_invalidate))
    assert all(event.contains(*listener) for listener in added)
    assert _listener_count(engine.pool, POOL_EVENTS) == before_pool + len(POOL_EVENTS)
    wrapped = {(type(obj).__name__, attr) for obj, attr in inst._patcher.installed()}
    assert wrapped == {
        ("QueuePool", "connect"),
        ("QueuePool", "_return_conn"),
        ("QueuePool", "recreate"),
        ("Queue", "get"),  # the pool's queue: where a checkout waits (pending)
        (type(dialect).__name__, "connect"),
        (type(dialect).__name__, "do_execute"),
        (type(dialect).__name__, "do_executemany"),
        (type(dialect).__name__, "do_execute_no_params"),
        (type(dialect).__name__, "do_begin"),
        (type(dialect).__name__, "do_commit"),
        (type(dialect).__name__, "do_rollback"),
    }
    # Lazy loads are read on the statement path: nothing process-wide on Session.
    assert not Session().dispatch.do_orm_execute
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()  # listeners and wrappers follow the new pool ...
    assert "connect" in engine.pool.__dict__
    assert event.contains(engine.pool, "invalidate", inst._pool.on_invalidate)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    inst.uninstrument()  # ... and leave it again
    for target, identifier, fn in added:
        assert not event.contains(target, identifier, fn), identifier
        assert fn not in list(getattr(engine.pool.dispatch, identifier)), identifier
        assert fn not in list(getattr(first_pool.dispatch, identifier)), identifier
    assert _listener_count(engine.pool, POOL_EVENTS) == before_pool
    assert event.contains(engine, "after_cursor_execute", users_own)
    assert users_pool_listener in list(engine.pool.dispatch.checkout)
    assert inst._patcher.installed() == []
    for name in ("connect", "_return_conn", "recreate"):
        assert name not in engine.pool.__dict__
    for pool in (first_pool, engine.pool):
        assert isinstance(pool, QueuePool)
        assert "get" not in compat.pool_queue(pool).__dict__
    for name in ("connect", "do_execute", "do_executemany", "do_begin", "do_commit"):
        assert name not in dialect.__dict__
    assert not Session().dispatch.do_orm_execute
    assert (
        registry.get_sample_value(
            "db_client_connection_count", {"pool_name": inst.pool_name, "state": "idle"}
        )
        is None
    )
    queries = value(
        registry,
        "db_client_operation_duration_seconds_count",
        pool_name=inst.pool_name,
        db_operation_name="SELECT",
        db_collection_name="",
    )
    assert queries == 2
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
    assert queries == value(
        registry,
        "db_client_operation_duration_seconds_count",
        pool_name=inst.pool_name,
        db_operation_name="SELECT",
        db_collection_name="",
    )
    assert (
        value(
            registry,
            "db_client_transaction_duration_seconds_count",
            pool_name=inst.pool_name,
            outcome="commit",
        )
        == 0
    )
    inst.uninstrument()  # idempotent
    # And it can be instrumented afresh.
    again = instrument(engine, registry=registry)
    assert again is not inst
    again.uninstrument()
    engine.dispose()


def test_wrapper_left_under_another_library_is_switched_off(registry: CollectorRegistry) -> None:
    """If something wrapped do_execute on top of ours, uninstrument leaves theirs and ours goes quiet."""
    engine = create_engine("sqlite://")
    inst = instrument(engine, registry=registry)
    ours = engine.dialect.do_execute
    calls: list[str] = []

    def theirs(cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        calls.append(statement)
        ours(cursor, statement, parameters, context)

    # Wrap the method on the instance, as another instrumentation library would.
    engine.dialect.do_execute = theirs  # type: ignore[method-assign]
    inst.uninstrument()
    assert engine.dialect.do_execute is theirs
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert calls == ["SELECT 1"]
    assert (
        registry.get_sample_value(
            "db_client_operation_duration_seconds_count",
            {"pool_name": inst.pool_name, "db_operation_name": "SELECT", "db_collection_name": ""},
        )
        is None
    )


def test_failing_pool_and_transaction_hooks_never_break_the_app(
    registry: CollectorRegistry, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metric updates that raise inside checkout, checkin, connect and commit hooks: the app's work still succeeds."""
    engine = create_engine(pg_url, pool_size=1)
    inst = instrument(engine, registry=registry)

    def explode(*args: object) -> None:
        raise RuntimeError("metric backend exploded")

    for child in (
        inst._pool._wait,
        inst._pool._use,
        inst._pool._create,
        inst._transactions._commit,
    ):
        monkeypatch.setattr(child, "observe", explode)
    with capture_logs() as logs:
        for _ in range(2):
            with engine.begin() as conn:
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert isinstance(engine.pool, QueuePool)
    assert engine.pool.checkedin() == 1
    for hook in ("checkout", "checkin", "connect", "commit"):
        expected = 1 if hook == "connect" else 2
        assert value(registry, "dbpulse_instrumentation_errors_total", hook=hook) == expected, hook
    logged = sorted(e["hook"] for e in logs if "hook" in e)
    assert logged == ["checkin", "checkout", "commit", "connect"]  # once per hook
    inst.uninstrument()
    engine.dispose()


def test_instrumentation_does_not_keep_the_engine_alive(registry: CollectorRegistry) -> None:
    """Only weak references to the engine: it is collected, and its default name frees up."""
    import gc
    import weakref

    engine = create_engine("sqlite://")
    inst = instrument(engine, registry=registry)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    ref = weakref.ref(engine)
    del engine, conn
    gc.collect()
    assert ref() is None
    assert inst.engine is None
    again = create_engine("sqlite://")
    assert instrument(again, registry=registry).pool_name == inst.pool_name
