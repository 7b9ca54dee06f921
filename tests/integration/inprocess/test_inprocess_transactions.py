"""Transaction duration by outcome; savepoints never end the outer transaction."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.orm import Session

from dbpulse.inprocess import transactions
from tests.clock import ManualClock
from tests.integration.inprocess.conftest import Instrumented, value

TX = "db_client_transaction_duration_seconds_count"


def test_commit_and_rollback_are_separate_outcomes(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """engine.begin() commits; an exception inside it rolls back."""
    engine, inst = instrumented(pg_url)
    name = inst.pool_name
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))

    def fail_inside_transaction() -> None:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        fail_inside_transaction()
    assert value(registry, TX, pool_name=name, outcome="commit") == 1
    assert value(registry, TX, pool_name=name, outcome="rollback") == 1


def test_savepoints_do_not_end_the_transaction(
    registry: CollectorRegistry,
    pg_url: str,
    instrumented: Instrumented,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two savepoints (one rolled back) inside one commit give one 0.2 s+ commit sample."""
    clock = ManualClock()
    monkeypatch.setattr(transactions, "perf_counter", clock)
    engine, inst = instrumented(pg_url)
    name = inst.pool_name
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        # Before the savepoints: a timer restarted by either of them would miss these 0.2 s.
        clock.advance(0.2)
        with session.begin_nested():
            session.execute(text("SELECT 2"))
        nested = session.begin_nested()
        session.execute(text("SELECT 3"))
        nested.rollback()
        session.commit()
    assert value(registry, TX, pool_name=name, outcome="commit") == 1
    assert value(registry, TX, pool_name=name, outcome="rollback") == 0
    total = value(
        registry, "db_client_transaction_duration_seconds_sum", pool_name=name, outcome="commit"
    )
    assert total >= 0.2


def test_session_closed_without_commit_is_a_rollback(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """Closing a Session with work pending rolls back, and is measured as such."""
    engine, inst = instrumented(pg_url)
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
    assert value(registry, TX, pool_name=inst.pool_name, outcome="rollback") == 1
    assert value(registry, TX, pool_name=inst.pool_name, outcome="commit") == 0
