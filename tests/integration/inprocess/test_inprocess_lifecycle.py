"""instrument()/uninstrument(): idempotence, exact removal, shared registries, lint."""

from __future__ import annotations

import dbpulse
import prometheus_client
from dbpulse.inprocess import lint, nplusone
from dbpulse.inprocess.instrumentation import instrument
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from structlog.testing import capture_logs

from tests.integration.inprocess.conftest import value

POOL_EVENTS = ("detach", "invalidate")


def _listener_count(target: object, identifiers: tuple[str, ...]) -> int:
    return sum(len(getattr(target.dispatch, name)) for name in identifiers)  # type: ignore[attr-defined]


def test_public_api_is_lazily_exported():
    """dbpulse.instrument / Instrumentation / query_counter / serve_metrics resolve."""
    assert dbpulse.instrument is instrument
    assert dbpulse.Instrumentation.__name__ == "Instrumentation"
    assert callable(dbpulse.query_counter)
    assert callable(dbpulse.serve_metrics)


def test_second_instrument_is_a_logged_no_op(registry):
    """Instrumenting one engine twice returns the first Instrumentation and says so."""
    engine = create_engine("sqlite://")
    first = instrument(engine, registry=registry)
    with capture_logs() as logs:
        again = instrument(engine, registry=CollectorRegistry(), pool_name="other")
    assert again is first
    assert any("already instrumented" in e["event"] for e in logs)
    assert len(engine.pool.dispatch.invalidate) == 1
    first.uninstrument()


def test_no_engine_level_listener_is_added(registry):
    """Statements stay on SQLAlchemy's fast path: no ConnectionEvents listener at all."""
    engine = create_engine("sqlite://")
    inst = instrument(engine, registry=registry)
    assert not engine._has_events
    assert not engine.dialect._has_events
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        assert not conn._has_events
    inst.uninstrument()


def test_uninstrument_removes_exactly_what_it_added(registry, pg_url):
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
    added = [(first_pool, "detach", inst._pool.on_detach)]
    added.append((first_pool, "invalidate", inst._pool.on_invalidate))
    assert all(event.contains(*listener) for listener in added)
    assert _listener_count(engine.pool, POOL_EVENTS) == before_pool + len(POOL_EVENTS)
    wrapped = {(type(obj).__name__, attr) for obj, attr in inst._patcher.installed()}
    assert wrapped == {
        ("QueuePool", "connect"),
        ("QueuePool", "_return_conn"),
        ("QueuePool", "recreate"),
        (type(dialect).__name__, "connect"),
        (type(dialect).__name__, "do_execute"),
        (type(dialect).__name__, "do_executemany"),
        (type(dialect).__name__, "do_execute_no_params"),
        (type(dialect).__name__, "do_begin"),
        (type(dialect).__name__, "do_commit"),
        (type(dialect).__name__, "do_rollback"),
    }
    assert event.contains(Session, "do_orm_execute", nplusone._on_do_orm_execute)
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
    for name in ("connect", "do_execute", "do_executemany", "do_begin", "do_commit"):
        assert name not in dialect.__dict__
    assert not event.contains(Session, "do_orm_execute", nplusone._on_do_orm_execute)
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


def test_wrapper_left_under_another_library_is_switched_off(registry):
    """If something wrapped do_execute on top of ours, uninstrument leaves theirs and ours goes quiet."""
    engine = create_engine("sqlite://")
    inst = instrument(engine, registry=registry)
    ours = engine.dialect.do_execute
    calls: list[str] = []

    def theirs(cursor, statement, parameters, context=None):
        calls.append(statement)
        return ours(cursor, statement, parameters, context)

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


def test_engines_share_a_registry_under_their_own_pool_names(registry, pg, fresh_db):
    """Two engines, one registry: shared metric objects, host:port/dbname names, no password."""
    db = fresh_db.rsplit("/", 1)[1]
    a = create_engine(
        pg.dsn_for(db, password="hunter2").replace("postgresql://", "postgresql+psycopg://")
    )
    b = create_engine(pg.dsn_for("postgres").replace("postgresql://", "postgresql+psycopg://"))
    c = create_engine(pg.dsn_for("postgres").replace("postgresql://", "postgresql+psycopg://"))
    ia, ib, ic = (instrument(e, registry=registry) for e in (a, b, c))
    try:
        assert ia.pool_name == f"127.0.0.1:{pg.port}/{db}"
        assert ib.pool_name == f"127.0.0.1:{pg.port}/postgres"
        assert ic.pool_name == f"127.0.0.1:{pg.port}/postgres#2"  # same URL, still distinct
        assert ia.metrics is ib.metrics
        for e in (a, b, c):
            with e.connect() as conn:
                conn.execute(text("SELECT 1"))
        exposition = prometheus_client.generate_latest(registry).decode()
        assert "hunter2" not in exposition
        for inst in (ia, ib, ic):
            assert (
                value(
                    registry, "db_client_connection_count", pool_name=inst.pool_name, state="idle"
                )
                == 1
            )
    finally:
        for inst, e in ((ia, a), (ib, b), (ic, c)):
            inst.uninstrument()
            e.dispose()


def test_nothing_is_registered_at_import():
    """Importing the in-process modules adds no metric to the global registry."""
    import importlib

    for mod in ("instrumentation", "metrics", "pool", "queries", "middleware", "scope"):
        importlib.import_module(f"dbpulse.inprocess.{mod}")
    names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(n.startswith("db_client_") for n in names) or _global_was_used()


def _global_was_used() -> bool:
    from dbpulse.inprocess.metrics import _SETS

    return prometheus_client.REGISTRY in _SETS


def test_config_lint_warns_and_exports_info(registry, pg_url, monkeypatch):
    """No pre_ping, no statement_timeout and NullPool outside tests: three warnings, one info series."""
    monkeypatch.setattr(lint, "running_under_tests", lambda: False)
    monkeypatch.setattr("dbpulse.inprocess.instrumentation.running_under_tests", lambda: False)
    engine = create_engine(pg_url, poolclass=NullPool)
    with capture_logs() as logs:
        inst = instrument(engine, registry=registry)
    checks = sorted(e["check"] for e in logs if e["event"] == "pool configuration")
    assert checks == ["no_statement_timeout", "null_pool"]  # NullPool is not pre-pinged
    assert (
        value(
            registry,
            "db_client_pool_config_info",
            pool_name=inst.pool_name,
            pool_class="NullPool",
            size="",
            max_overflow="",
            timeout="",
            pre_ping="false",
            recycle="-1",
        )
        == 1
    )
    inst.uninstrument()
    good = create_engine(
        pg_url,
        pool_pre_ping=True,
        pool_size=3,
        connect_args={"options": "-c statement_timeout=5000"},
    )
    with capture_logs() as logs:
        inst = instrument(good, registry=registry)
    assert [e for e in logs if e["event"] == "pool configuration"] == []
    assert (
        value(
            registry,
            "db_client_pool_config_info",
            pool_name=inst.pool_name,
            pool_class="QueuePool",
            size="3",
            max_overflow="10",
            timeout="30",
            pre_ping="true",
            recycle="-1",
        )
        == 1
    )
    inst.uninstrument()
    good.dispose()


def test_failing_pool_and_transaction_hooks_never_break_the_app(registry, pg_url, monkeypatch):
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
    assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    for hook in ("checkout", "checkin", "connect", "commit"):
        expected = 1 if hook == "connect" else 2
        assert value(registry, "dbpulse_instrumentation_errors_total", hook=hook) == expected, hook
    logged = sorted(e["hook"] for e in logs if "hook" in e)
    assert logged == ["checkin", "checkout", "commit", "connect"]  # once per hook
    inst.uninstrument()
    engine.dispose()


def test_instrumentation_does_not_keep_the_engine_alive(registry):
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


def test_default_registry_is_the_global_one():
    """registry=None registers the metric set in prometheus_client.REGISTRY (once)."""
    engine = create_engine("sqlite://")
    inst = instrument(engine, pool_name="global-registry-test")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        sample = prometheus_client.REGISTRY.get_sample_value(
            "db_client_connection_count", {"pool_name": "global-registry-test", "state": "idle"}
        )
        assert sample == 1
    finally:
        inst.uninstrument()
        engine.dispose()
