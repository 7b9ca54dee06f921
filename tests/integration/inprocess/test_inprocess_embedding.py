"""instrument() never breaks the application embedding it (issue 13.7).

Name clashes, a registry already holding one of dbpulse's metric names and a failure
while hooking in are logged and counted; the application's engine keeps working and
nothing is left half-registered.
"""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, Histogram
from sqlalchemy import create_engine, text

from dbpulse.inprocess.instrumentation import instrument
from dbpulse.inprocess.pool import PoolHooks
from tests.integration.inprocess.conftest import value


def _families(registry: CollectorRegistry) -> set[str]:
    return {family.name for family in registry.collect()}


def _select_one(engine: object) -> None:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_taken_pool_name_gets_a_unique_one(
    registry: CollectorRegistry, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A second engine asking for a taken pool_name is renamed, logged and counted."""
    first, second = create_engine(pg_url), create_engine(pg_url)
    a = instrument(first, registry=registry, pool_name="orders")
    with caplog.at_level(logging.WARNING, logger="dbpulse"):
        b = instrument(second, registry=registry, pool_name="orders")
    try:
        assert (a.pool_name, b.pool_name) == ("orders", "orders#2")
        assert b.active
        assert any(
            r.name.startswith("dbpulse") and "orders#2" in r.getMessage() for r in caplog.records
        )
        assert value(registry, "dbpulse_instrumentation_errors_total", hook="instrument") == 1
        _select_one(second)
        labels = {"db_operation_name": "SELECT", "db_collection_name": ""}
        count = "db_client_operation_duration_seconds_count"
        assert value(registry, count, pool_name="orders#2", **labels) == 1
        assert value(registry, count, pool_name="orders", **labels) == 0
    finally:
        for inst, engine in ((a, first), (b, second)):
            inst.uninstrument()
            engine.dispose()


def test_registry_with_a_clashing_metric_is_left_as_it_was(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The app's own db_client_operation_duration_seconds: no raise, no dbpulse collector left."""
    registry = CollectorRegistry()
    Histogram("db_client_operation_duration_seconds", "the app's own", registry=registry)
    engine = create_engine("sqlite://")
    with caplog.at_level(logging.WARNING, logger="dbpulse"):
        inst = instrument(engine, registry=registry)
    assert not inst.active
    assert _families(registry) == {
        "db_client_operation_duration_seconds",
        "dbpulse_instrumentation_errors",
    }
    assert value(registry, "dbpulse_instrumentation_errors_total", hook="instrument") == 1
    assert any(r.name.startswith("dbpulse") for r in caplog.records)
    _select_one(engine)
    # Not recorded as instrumented: a later call with a usable registry hooks in.
    other = CollectorRegistry()
    retry = instrument(engine, registry=other)
    try:
        assert retry.active
        _select_one(engine)
        assert (
            value(
                other,
                "db_client_operation_duration_seconds_count",
                pool_name="sqlite::memory:",
                db_operation_name="SELECT",
                db_collection_name="",
            )
            == 1
        )
    finally:
        retry.uninstrument()
        engine.dispose()


def test_failure_while_hooking_in_is_rolled_back(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault midway through installing leaves no listener, wrapper or pool series."""
    engine = create_engine("sqlite://")
    dialect_attrs = set(vars(engine.dialect))

    def broken(self: PoolHooks, dialect: object) -> None:
        raise RuntimeError("injected fault while wrapping the dialect")

    monkeypatch.setattr(PoolHooks, "wrap_dialect", broken)
    inst = instrument(engine, registry=registry, pool_name="orders")
    assert not inst.active
    assert set(vars(engine.dialect)) == dialect_attrs
    assert len(engine.pool.dispatch.checkout) == 0
    assert len(engine.pool.dispatch.invalidate) == 0
    assert value(registry, "dbpulse_instrumentation_errors_total", hook="instrument") == 1
    _select_one(engine)
    assert registry.get_sample_value("db_client_connection_max", {"pool_name": "orders"}) is None
    monkeypatch.undo()
    again = instrument(engine, registry=registry, pool_name="orders")
    try:
        assert again.active
        assert again.pool_name == "orders"
    finally:
        again.uninstrument()
        engine.dispose()


def test_wrong_argument_is_still_a_type_error() -> None:
    """A programming error in instrument()'s own arguments is raised, not swallowed."""
    with pytest.raises(TypeError):
        instrument("not an engine")


def test_pool_name_never_holds_a_raw_password_fragment(registry: CollectorRegistry) -> None:
    """A URL whose password has a raw '@' is read by SQLAlchemy as host 'ss@host': not a name."""
    engine = create_engine("postgresql+psycopg://special:p@ss@host/db")
    inst = instrument(engine, registry=registry)
    try:
        assert inst.pool_name == "<unparseable url>"
    finally:
        inst.uninstrument()
        engine.dispose()
