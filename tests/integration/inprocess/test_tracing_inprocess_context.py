"""In-process trace context: traceparent comments, trace exemplars, span events (pool timeout, N+1)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest
from sqlalchemy import exc, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from tests.clock import ManualClock
from tests.integration.inprocess.conftest import Instrumented, add_sleep_ms
from tests.integration.inprocess.models import User, seed
from tests.otel import attrs


def _activity_query(conn: Any) -> str:
    query: str = conn.execute(
        text("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()")
    ).scalar_one()
    return query


def test_traceparent_comment_names_the_current_span(
    pg_url: str, instrumented: Instrumented, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """traceparent_comment=True: the server sees /*traceparent=...*/ with the current span's ids."""
    provider, _ = spans
    engine, _ = instrumented(
        pg_url, instrument_kw={"tracer_provider": provider, "traceparent_comment": True}
    )
    with (
        provider.get_tracer("app").start_as_current_span("request") as request,
        engine.connect() as conn,
    ):
        seen = _activity_query(conn)
    ctx = request.get_span_context()
    assert seen.startswith(f"/*traceparent='00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
    plain, _ = instrumented(pg_url, instrument_kw={"tracer_provider": provider})
    with provider.get_tracer("app").start_as_current_span("request"), plain.connect() as conn:
        assert "traceparent" not in _activity_query(conn)


def test_traceparent_comment_names_the_statement_span_when_there_is_one(
    pg_url: str, instrumented: Instrumented, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """With statement spans on, the comment carries the statement span's id (its child on the DB side)."""
    provider, exporter = spans
    engine, _ = instrumented(
        pg_url,
        instrument_kw={
            "tracer_provider": provider,
            "traceparent_comment": True,
            "statement_span_ratio": 1.0,
        },
    )
    with provider.get_tracer("app").start_as_current_span("request"), engine.connect() as conn:
        seen = _activity_query(conn)
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "SELECT pg_stat_activity"]
    assert f"-{span.context.span_id:016x}-" in seen


def test_slow_observation_carries_a_trace_exemplar(
    registry: CollectorRegistry,
    instrumented: Instrumented,
    statement_clock: ManualClock,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """The duration histogram's slow observation has the slow span's trace id (OpenMetrics)."""
    provider, exporter = spans
    engine, _ = instrumented(
        "sqlite://",
        instrument_kw={"tracer_provider": provider, "slow_query_seconds": 0.05},
        poolclass=StaticPool,
    )
    add_sleep_ms(engine, statement_clock)
    with provider.get_tracer("app").start_as_current_span("request"), engine.connect() as conn:
        conn.execute(text("SELECT sleep_ms(80)"))
        conn.execute(text("SELECT 1"))
    (slow,) = [s for s in exporter.get_finished_spans() if attrs(s).get("dbpulse.slow_query")]
    # prometheus_client's OpenMetrics encoder carries no annotations.
    exposition = generate_latest(registry).decode()  # type: ignore[no-untyped-call]
    bucket_lines = [
        line
        for line in exposition.splitlines()
        if line.startswith("db_client_operation_duration_seconds_bucket") and "# {" in line
    ]
    assert len(bucket_lines) == 1
    assert f'trace_id="{slow.context.trace_id:032x}"' in bucket_lines[0]


def test_pool_timeout_is_an_event_on_the_current_span(
    pg_url: str, instrumented: Instrumented, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """A checkout that hits pool_timeout adds db.client.connection.timeout to the request span."""
    provider, exporter = spans
    engine, inst = instrumented(
        pg_url,
        instrument_kw={"tracer_provider": provider},
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.1,
    )
    held = engine.connect()
    try:
        with (
            provider.get_tracer("app").start_as_current_span("request"),
            pytest.raises(exc.TimeoutError),
        ):
            engine.connect()
    finally:
        held.close()
    (request,) = exporter.get_finished_spans()
    (event,) = [e for e in request.events if e.name == "db.client.connection.timeout"]
    assert attrs(event)["db.client.connection.pool.name"] == inst.pool_name
    assert attrs(event)["dbpulse.wait_seconds"] >= 0.1


def test_n_plus_one_event_names_relationship_and_count(
    registry: CollectorRegistry,
    instrumented: Instrumented,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """The N+1 span event carries the relationship and how many loads triggered it."""
    provider, exporter = spans
    engine, _ = instrumented(
        "sqlite://", instrument_kw={"tracer_provider": provider}, poolclass=StaticPool
    )
    seed(engine, users=6)
    with provider.get_tracer("app").start_as_current_span("request"), Session(engine) as session:
        for user in session.scalars(select(User)):
            _ = user.posts
    (request,) = exporter.get_finished_spans()
    (event,) = [e for e in request.events if e.name == "db.n_plus_one"]
    assert attrs(event)["dbpulse.n_plus_one.relationship"] == "User.posts"
    assert attrs(event)["dbpulse.n_plus_one.count"] == 5
    assert attrs(event)["dbpulse.n_plus_one.kind"] == "lazy load"
