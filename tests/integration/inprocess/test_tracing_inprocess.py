"""In-process spans: per-statement CLIENT spans, errors, slow spans, comments, exemplars, events."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest
from sqlalchemy import exc, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from tests.clock import ManualClock
from tests.integration.inprocess.conftest import Instrumented, add_sleep_ms
from tests.integration.inprocess.models import User, seed
from tests.otel import attrs, times

SECRET = "secret-literal-42"


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def assert_no_literal(found: Iterable[ReadableSpan], literal: str = SECRET) -> None:
    """No span name, attribute or event attribute holds ``literal``."""
    for span in found:
        texts: list[Any] = [span.name, *dict(span.attributes or {}).values()]
        for event in span.events:
            texts += [event.name, *dict(event.attributes or {}).values()]
        assert all(literal not in str(t) for t in texts), span.name


def test_each_statement_is_a_client_span_child_of_the_current_span(
    pg_url: str, instrumented: Instrumented, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """ratio 1: every statement is a CLIENT span under the request span, with the DB conventions and no literal."""
    provider, exporter = spans
    engine, inst = instrumented(
        pg_url, instrument_kw={"tracer_provider": provider, "statement_span_ratio": 1.0}
    )
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (id int primary key, note text)"))
    exporter.clear()
    with (
        provider.get_tracer("app").start_as_current_span("request") as request,
        engine.begin() as conn,
    ):
        conn.execute(text(f"INSERT INTO orders VALUES (1, '{SECRET}')"))
        conn.execute(text("SELECT * FROM orders WHERE note = :n"), {"n": SECRET})
    finished = exporter.get_finished_spans()
    stmts = [s for s in finished if s.name != "request"]
    assert [s.name for s in stmts] == ["INSERT orders", "SELECT orders"]
    database = engine.url.database
    for span in stmts:
        assert span.kind.name == "CLIENT"
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id
        assert span.context.trace_id == request.get_span_context().trace_id
        assert attrs(span)["db.system.name"] == "postgresql"
        assert attrs(span)["db.namespace"] == database
        assert attrs(span)["db.collection.name"] == "orders"
        assert attrs(span)["db.query.summary"] == span.name
        start, end = times(span)
        assert start <= end
    assert attrs(stmts[0])["db.operation.name"] == "INSERT"
    assert attrs(stmts[0])["db.query.text"] == "INSERT INTO orders VALUES (?, ?)"
    assert attrs(stmts[1])["db.query.text"] == "SELECT * FROM orders WHERE note = ?"
    assert_no_literal(finished)
    assert inst.pool_name == attrs(stmts[0])["db.client.connection.pool.name"]


def test_failed_statement_span_has_error_type_and_sqlstate(
    pg_url: str, instrumented: Instrumented, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """A rejected statement ends its span with status ERROR, error.type and the SQLSTATE."""
    provider, exporter = spans
    engine, _ = instrumented(
        pg_url, instrument_kw={"tracer_provider": provider, "statement_span_ratio": 1.0}
    )
    with engine.connect() as conn, pytest.raises(exc.ProgrammingError):
        conn.execute(text(f"SELECT '{SECRET}' FROM no_such_table"))
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "SELECT no_such_table"]
    assert span.status.status_code.name == "ERROR"
    assert attrs(span)["error.type"] == "psycopg.errors.UndefinedTable"
    assert attrs(span)["db.response.status_code"] == "42P01"
    assert_no_literal(exporter.get_finished_spans())


def test_slow_statement_with_statement_spans_is_one_span_marked_slow(
    pg_url: str, instrumented: Instrumented, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """When the statement already has a span, being slow marks it instead of adding a second."""
    provider, exporter = spans
    engine, _ = instrumented(
        pg_url,
        instrument_kw={
            "tracer_provider": provider,
            "statement_span_ratio": 1.0,
            "slow_query_seconds": 0.05,
        },
    )
    with engine.connect() as conn:
        conn.execute(text(f"SELECT pg_sleep(0.1), '{SECRET}'"))
    (span,) = [s for s in exporter.get_finished_spans() if "pg_sleep" in str(s.attributes)]
    assert attrs(span)["dbpulse.slow_query"] is True
    assert attrs(span)["code.file.path"] == __file__
    assert (times(span)[1] - times(span)[0]) / 1e9 >= 0.1
    assert_no_literal(exporter.get_finished_spans())


def test_tracing_off_installs_the_plain_wrappers_and_makes_no_fast_spans(
    registry: CollectorRegistry,
    instrumented: Instrumented,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """Defaults: the statement wrapper is the untraced one, and a fast statement makes no span."""
    provider, exporter = spans
    engine, _ = instrumented("sqlite://", instrument_kw={"tracer_provider": provider})
    assert "QueryHooks" in engine.dialect.do_execute.__qualname__
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert exporter.get_finished_spans() == ()
    traced, _ = instrumented(
        "sqlite://", instrument_kw={"tracer_provider": provider, "statement_span_ratio": 0.5}
    )
    assert "StatementTracer" in traced.dialect.do_execute.__qualname__


def test_sample_ratio_keeps_about_that_fraction(
    instrumented: Instrumented, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """statement_span_ratio=0.25 over 400 statements keeps roughly a quarter of them."""
    provider, exporter = spans
    engine, _ = instrumented(
        "sqlite://",
        instrument_kw={"tracer_provider": provider, "statement_span_ratio": 0.25},
        poolclass=StaticPool,
    )
    random.seed(1234)
    with engine.connect() as conn:
        for _ in range(400):
            conn.execute(text("SELECT 1"))
    assert 60 <= len(exporter.get_finished_spans()) <= 140


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


def test_a_failing_tracing_hook_never_breaks_the_statement(
    registry: CollectorRegistry,
    instrumented: Instrumented,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With spans and comments on, a dbpulse bug while starting the span leaves the statement working."""
    from dbpulse.inprocess import queries

    provider, _ = spans
    engine, _ = instrumented(
        "sqlite://",
        instrument_kw={
            "tracer_provider": provider,
            "statement_span_ratio": 1.0,
            "traceparent_comment": True,
        },
    )

    def broken(sql: str) -> object:
        raise RuntimeError("fingerprint exploded")

    monkeypatch.setattr(queries, "fingerprint", broken)
    with provider.get_tracer("app").start_as_current_span("request"), engine.connect() as conn:
        assert conn.execute(text("SELECT 40 + 2 AS traced_hook")).scalar_one() == 42
    assert (
        registry.get_sample_value("dbpulse_instrumentation_errors_total", {"hook": "trace_start"})
        == 1
    )
