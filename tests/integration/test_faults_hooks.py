"""Each in-process hook forced to fail: the application's work still succeeds and the failure is counted.

checkout, checkin, connect and commit are covered in inprocess/test_inprocess_lifecycle.py,
execute in inprocess/test_inprocess_queries.py; these are the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, create_engine, exc, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from dbpulse.inprocess import lint, transactions
from dbpulse.inprocess.instrumentation import Instrumentation, instrument
from tests.integration.inprocess.conftest import sqlalchemy_url
from tests.integration.inprocess.models import User, seed
from tests.logcapture import capture_logs


def explode(*_args: object, **_kwargs: object) -> Any:
    raise RuntimeError("dbpulse internals exploded")


class Broken:
    """Stands in for a metric object whose every method raises."""

    def __getattr__(self, name: str) -> Any:
        return explode


App = tuple[Engine, Instrumentation, CollectorRegistry]


@pytest.fixture
def app(fresh_db: str) -> Iterator[App]:
    registry = CollectorRegistry()
    engine = create_engine(sqlalchemy_url(fresh_db), pool_size=1, max_overflow=0)
    inst = instrument(engine, registry=registry)
    yield engine, inst, registry
    inst.uninstrument()
    engine.dispose()


def errors(registry: CollectorRegistry, hook: str) -> float:
    return registry.get_sample_value("dbpulse_instrumentation_errors_total", {"hook": hook}) or 0.0


def test_rollback_hook_failure(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing rollback timer: rollbacks still happen, each counted as hook=rollback."""
    engine, inst, registry = app
    # The wrapper captured the labelled child when it was made: break that child.
    child = inst.metrics.transaction_duration.labels(inst.pool_name, "rollback")
    monkeypatch.setattr(child, "observe", explode)
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text("CREATE TABLE r (id int)"))
        trans.rollback()
        assert conn.execute(text("SELECT to_regclass('r') IS NULL")).scalar_one() is True
    # The explicit rollback, and the one that ends the SELECT's autobegun transaction.
    assert errors(registry, "rollback") == 2


def test_begin_hook_failure(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing begin timestamp: the transaction commits, counted as hook=begin."""
    engine, _inst, registry = app
    monkeypatch.setattr(transactions, "perf_counter", explode)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE b (id int)"))
        conn.execute(text("INSERT INTO b VALUES (1)"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM b")).scalar_one() == 1
    assert errors(registry, "begin") >= 1


def test_invalidate_and_detach_hook_failures(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Failing invalidation counter and hold timer: invalidate and detach still work, both counted."""
    engine, inst, registry = app
    monkeypatch.setattr(inst._pool, "_invalidations", Broken())
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        conn.invalidate()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 2")).scalar_one() == 2
    assert errors(registry, "invalidate") == 1
    monkeypatch.setattr(inst._pool, "_use", Broken())
    with engine.connect() as conn:
        conn.detach()
        assert conn.execute(text("SELECT 3")).scalar_one() == 3
    assert errors(registry, "detach") == 1
    with engine.connect() as conn:  # the pool made a new connection for the detached one
        assert conn.execute(text("SELECT 4")).scalar_one() == 4


def test_recreate_hook_failure(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-hooking the new pool fails on dispose(): the engine keeps working, counted as hook=recreate."""
    engine, inst, registry = app
    monkeypatch.setattr(inst._pool, "wrap_pool", explode)
    engine.dispose()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert errors(registry, "recreate") == 1


def test_execute_error_hook_failure(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting a failed statement fails: the app still gets the database's own error, counted as hook=execute_error."""
    engine, inst, registry = app
    monkeypatch.setattr(inst.metrics, "operation_errors", Broken())
    with engine.connect() as conn, pytest.raises(exc.ProgrammingError, match="no_such_table"):
        conn.execute(text("SELECT * FROM no_such_table"))
    assert errors(registry, "execute_error") == 1


def test_checkout_timeout_hook_failure(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing timeout counter: the app gets SQLAlchemy's TimeoutError, not ours, counted as hook=checkout."""
    engine, inst, registry = app
    assert isinstance(engine.pool, QueuePool)
    engine.pool._timeout = 0.1  # a short checkout timeout on the live pool
    # The checkout wrapper captured the labelled counter when it was made: break that.
    monkeypatch.setattr(inst._pool._timeouts, "inc", explode)
    with engine.connect() as holder:
        holder.execute(text("SELECT 1"))
        with pytest.raises(exc.TimeoutError):
            engine.connect()
    assert errors(registry, "checkout") == 1


def test_lazy_load_hook_failure(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The N+1 detector fails on each lazy load: the ORM still loads every relationship, counted as hook=n_plus_one."""
    engine, inst, registry = app
    seed(engine, users=3)
    assert inst._nplusone is not None
    monkeypatch.setattr(inst._nplusone, "lazy_load", explode)
    with Session(engine) as session:
        users = session.scalars(select(User).order_by(User.id)).all()
        assert [len(u.posts) for u in users] == [2, 2, 2]
    assert errors(registry, "n_plus_one") == 3


def test_lint_failure_does_not_block_instrument(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash in the configuration lint: instrument() still hooks the engine, counted as hook=lint, logged once."""
    registry = CollectorRegistry()
    monkeypatch.setattr(lint.PoolConfig, "from_engine", explode)
    engine = create_engine(sqlalchemy_url(fresh_db))
    with capture_logs() as logs:
        inst = instrument(engine, registry=registry)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        assert errors(registry, "lint") == 1
        assert [e["hook"] for e in logs if "hook" in e] == ["lint"]
        assert inst.active
    finally:
        inst.uninstrument()
        engine.dispose()
