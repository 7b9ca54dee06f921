"""In-process plan capture (opt-in): a slow statement's plan, made with its real parameters
in the background, arrives as a scrubbed child span of the slow-query span and a log line."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import dbpulse
from dbpulse.inprocess.plancapture import CapturedPlan
from tests.integration.collector_helpers import wait_for
from tests.integration.inprocess.conftest import Instrumented
from tests.integration.inprocess.test_tracing_inprocess import SECRET, assert_no_literal
from tests.otel import attrs

SLOW = "SELECT id, (SELECT pg_sleep(0.05)) AS pause FROM items WHERE note = :n"
OURS = "SELECT id, (SELECT pg_sleep"  # the start of SLOW's fingerprint


def _items(engine: object) -> None:
    """20,000 rows, one of them the secret (so the slow statement returns a row and its
    pg_sleep initplan runs once)."""
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text("CREATE TABLE items (id serial PRIMARY KEY, note text)"))
        conn.execute(
            text("INSERT INTO items (note) SELECT 'n' || i FROM generate_series(1, 20000) i")
        )
        conn.execute(text("INSERT INTO items (note) VALUES (:n)"), {"n": SECRET})
        conn.execute(text("ANALYZE items"))


def test_slow_statement_plan_is_a_scrubbed_child_span_and_a_log_line(
    pg_url: str,
    instrumented: Instrumented,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The plan of a slow SELECT (real parameter, a secret) is captured once per
    fingerprint, as a child of the slow span, with its summary, hash and no constant."""
    provider, exporter = spans
    engine, inst = instrumented(
        pg_url,
        instrument_kw={
            "tracer_provider": provider,
            "slow_query_seconds": 0.01,
            "explain_slow_queries": True,
        },
    )
    _items(engine)
    exporter.clear()
    caplog.set_level(logging.WARNING, logger="dbpulse.plans")
    with engine.connect() as conn:
        for _ in range(3):  # one plan per fingerprint per interval, not three
            conn.execute(text(SLOW), {"n": SECRET}).fetchall()
    assert inst.plans is not None

    # The setup's INSERTs can be slow too on a loaded machine: look at this SELECT's plans.
    def mine() -> list[CapturedPlan]:
        """The captured plans of SLOW."""
        plans = inst.plans.captured if inst.plans else []
        return [c for c in plans if c.fingerprint.startswith(OURS)]

    wait_for(mine)
    (captured,) = mine()
    assert captured.summary == "Seq Scan on items"
    assert SECRET not in json.dumps(captured.plan)
    (plan_span,) = wait_for(
        lambda: [
            s
            for s in exporter.get_finished_spans()
            if s.name.startswith("EXPLAIN") and str(attrs(s)["db.query.text"]).startswith(OURS)
        ]
    )
    slow = [s for s in exporter.get_finished_spans() if attrs(s).get("dbpulse.slow_query")]
    assert plan_span.parent is not None
    assert plan_span.parent.span_id in {s.context.span_id for s in slow}
    assert attrs(plan_span)["dbpulse.plan.summary"] == "Seq Scan on items"
    assert "note = '?'" in str(attrs(plan_span)["dbpulse.plan"])
    assert_no_literal(exporter.get_finished_spans())
    logged = wait_for(
        lambda: [
            r
            for r in caplog.records
            if r.getMessage().startswith("slow query plan") and OURS in r.getMessage()
        ]
    )
    assert "Seq Scan on items" in logged[0].getMessage()
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_off_by_default_and_ignored_for_other_dialects(
    instrumented: Instrumented, caplog: pytest.LogCaptureFixture
) -> None:
    """Without explain_slow_queries nothing is set up; SQLite is told, once, it has no plans."""
    caplog.set_level(logging.WARNING, logger="dbpulse.plans")
    _, off = instrumented("sqlite://")
    assert off.plans is None
    assert not [r for r in caplog.records if r.name == "dbpulse.plans"]
    _, asked = instrumented("sqlite://", instrument_kw={"explain_slow_queries": True})
    assert asked.plans is None
    (told,) = [r.getMessage() for r in caplog.records if r.name == "dbpulse.plans"]
    assert told.startswith("explain_slow_queries ignored for sqlite:")
    assert told.endswith("plan capture needs PostgreSQL, not sqlite")


def test_async_driver_is_told_plan_capture_needs_a_synchronous_one(
    pg_url: str, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """An AsyncEngine on PostgreSQL gets no plan capture and one warning saying why."""
    caplog.set_level(logging.WARNING, logger="dbpulse.plans")
    engine = create_async_engine(pg_url)
    inst = dbpulse.instrument(engine, registry=registry, explain_slow_queries=True)
    try:
        assert inst.active
        assert inst.plans is None
        (told,) = [r.getMessage() for r in caplog.records if r.name == "dbpulse.plans"]
        assert told.endswith(
            "plan capture needs a synchronous driver (this engine's driver is async)"
        )
    finally:
        inst.uninstrument()
        engine.sync_engine.dispose()
