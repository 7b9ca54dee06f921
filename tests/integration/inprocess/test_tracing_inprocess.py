"""In-process spans: per-statement CLIENT spans, errors, slow spans, comments, exemplars, events."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.openmetrics.exposition import generate_latest
from sqlalchemy import exc, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from tests.integration.inprocess.models import User, seed

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


def test_each_statement_is_a_client_span_child_of_the_current_span(pg_url, instrumented, spans):
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
        assert span.attributes["db.system.name"] == "postgresql"
        assert span.attributes["db.namespace"] == database
        assert span.attributes["db.collection.name"] == "orders"
        assert span.attributes["db.query.summary"] == span.name
        assert span.start_time <= span.end_time
    assert stmts[0].attributes["db.operation.name"] == "INSERT"
    assert stmts[0].attributes["db.query.text"] == "INSERT INTO orders VALUES (?, ?)"
    assert stmts[1].attributes["db.query.text"] == "SELECT * FROM orders WHERE note = ?"
    assert_no_literal(finished)
    assert inst.pool_name == stmts[0].attributes["db.client.connection.pool.name"]


def test_failed_statement_span_has_error_type_and_sqlstate(pg_url, instrumented, spans):
    """A rejected statement ends its span with status ERROR, error.type and the SQLSTATE."""
    provider, exporter = spans
    engine, _ = instrumented(
        pg_url, instrument_kw={"tracer_provider": provider, "statement_span_ratio": 1.0}
    )
    with engine.connect() as conn, pytest.raises(exc.ProgrammingError):
        conn.execute(text(f"SELECT '{SECRET}' FROM no_such_table"))
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "SELECT no_such_table"]
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "psycopg.errors.UndefinedTable"
    assert span.attributes["db.response.status_code"] == "42P01"
    assert_no_literal(exporter.get_finished_spans())


def test_slow_statement_with_statement_spans_is_one_span_marked_slow(pg_url, instrumented, spans):
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
    assert span.attributes["dbpulse.slow_query"] is True
    assert span.attributes["code.file.path"] == __file__
    assert (span.end_time - span.start_time) / 1e9 >= 0.1
    assert_no_literal(exporter.get_finished_spans())


def test_tracing_off_installs_the_plain_wrappers_and_makes_no_fast_spans(
    registry, instrumented, spans
):
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


def test_sample_ratio_keeps_about_that_fraction(instrumented, spans):
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
    return conn.execute(
        text("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()")
    ).scalar_one()


def test_traceparent_comment_names_the_current_span(pg_url, instrumented, spans):
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
    pg_url, instrumented, spans
):
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


def test_slow_observation_carries_a_trace_exemplar(registry, instrumented, spans):
    """The duration histogram's slow observation has the slow span's trace id (OpenMetrics)."""
    provider, exporter = spans
    engine, _ = instrumented(
        "sqlite://",
        instrument_kw={"tracer_provider": provider, "slow_query_seconds": 0.05},
        poolclass=StaticPool,
    )
    engine.raw_connection().driver_connection.create_function(  # type: ignore[union-attr]
        "sleep_ms", 1, lambda ms: time.sleep(ms / 1000) or ms
    )
    with provider.get_tracer("app").start_as_current_span("request"), engine.connect() as conn:
        conn.execute(text("SELECT sleep_ms(80)"))
        conn.execute(text("SELECT 1"))
    (slow,) = [s for s in exporter.get_finished_spans() if s.attributes.get("dbpulse.slow_query")]
    exposition = generate_latest(registry).decode()
    bucket_lines = [
        line
        for line in exposition.splitlines()
        if line.startswith("db_client_operation_duration_seconds_bucket") and "# {" in line
    ]
    assert len(bucket_lines) == 1
    assert f'trace_id="{slow.context.trace_id:032x}"' in bucket_lines[0]


def test_pool_timeout_is_an_event_on_the_current_span(pg_url, instrumented, spans):
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
    assert event.attributes["db.client.connection.pool.name"] == inst.pool_name
    assert event.attributes["dbpulse.wait_seconds"] >= 0.1


def test_n_plus_one_event_names_relationship_and_count(registry, instrumented, spans):
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
    assert event.attributes["dbpulse.n_plus_one.relationship"] == "User.posts"
    assert event.attributes["dbpulse.n_plus_one.count"] == 5
    assert event.attributes["dbpulse.n_plus_one.kind"] == "lazy load"


def test_a_failing_tracing_hook_never_breaks_the_statement(
    registry, instrumented, spans, monkeypatch
):
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

    def broken(sql: str, dialect: str = "postgresql") -> object:
        raise RuntimeError("fingerprint exploded")

    monkeypatch.setattr(queries, "fingerprint", broken)
    with provider.get_tracer("app").start_as_current_span("request"), engine.connect() as conn:
        assert conn.execute(text("SELECT 40 + 2 AS traced_hook")).scalar_one() == 42
    assert (
        registry.get_sample_value("dbpulse_instrumentation_errors_total", {"hook": "trace_start"})
        == 1
    )
