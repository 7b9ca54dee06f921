"""In-process spans: per-statement CLIENT spans, errors, slow spans, sampling, hook failures."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import exc, text
from sqlalchemy.pool import StaticPool

from tests.integration.inprocess.conftest import Instrumented
from tests.otel import attrs, times

SECRET = "secret-literal-42"


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

    def broken(sql: str, dialect: str = "postgresql") -> object:
        raise RuntimeError("fingerprint exploded")

    monkeypatch.setattr(queries, "fingerprint", broken)
    with provider.get_tracer("app").start_as_current_span("request"), engine.connect() as conn:
        assert conn.execute(text("SELECT 40 + 2 AS traced_hook")).scalar_one() == 42
    assert (
        registry.get_sample_value("dbpulse_instrumentation_errors_total", {"hook": "trace_start"})
        == 1
    )
