"""Statement metrics: duration by operation/table, errors, slow queries, label budget."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import bindparam, column, exc, select, table, text
from sqlalchemy.pool import StaticPool

from dbpulse.inprocess import queries
from tests.clock import ManualClock
from tests.integration.inprocess.conftest import Instrumented, add_sleep_ms, value
from tests.logcapture import capture_logs
from tests.otel import attrs, times

DURATION = "db_client_operation_duration_seconds_count"


def test_duration_is_labelled_by_operation_and_table(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """CREATE, INSERT, SELECT and UPDATE each land in their own (operation, table) series."""
    engine, inst = instrumented(pg_url)
    name = inst.pool_name
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id int primary key, v text)"))
        conn.execute(
            text("INSERT INTO items VALUES (:id, :v)"), [{"id": i, "v": "x"} for i in (1, 2)]
        )
        conn.execute(text("INSERT INTO items VALUES (3, 'literal')"))
        conn.execute(text("SELECT * FROM items WHERE id = :id"), {"id": 1})
        conn.execute(text("UPDATE items SET v = 'y' WHERE id = 2"))

    def n(op: str, coll: str) -> float:
        return value(
            registry, DURATION, pool_name=name, db_operation_name=op, db_collection_name=coll
        )

    assert n("CREATE TABLE", "items") == 1
    assert n("INSERT", "items") == 2  # executemany is one execution; the literal one another
    assert n("SELECT", "items") == 1
    assert n("UPDATE", "items") == 1


def test_in_list_expansion_is_one_fingerprint(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """IN lists of different lengths share one cached entry and one series."""
    engine, inst = instrumented(pg_url)
    items = table("pg_class", column("oid"))
    stmt = select(items.c.oid).where(items.c.oid.in_(bindparam("ids", expanding=True)))
    with engine.connect() as conn:
        for ids in ([1], [1, 2, 3], list(range(50))):
            conn.execute(stmt, {"ids": ids})
    assert (
        value(
            registry,
            DURATION,
            pool_name=inst.pool_name,
            db_operation_name="SELECT",
            db_collection_name="pg_class",
        )
        == 3
    )
    fps = {e.fp.text for e in inst._queries._entries.values() if "pg_class" in e.fp.text}
    assert fps == {"SELECT pg_class.oid FROM pg_class WHERE pg_class.oid IN (?)"}


def test_failing_statement_counts_an_error_by_class(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """A statement on a missing table counts db_client_operation_errors{error_type}."""
    engine, inst = instrumented(pg_url)
    with engine.connect() as conn, pytest.raises(exc.ProgrammingError):
        conn.execute(text("SELECT * FROM no_such_table"))
    assert (
        value(
            registry,
            "db_client_operation_errors_total",
            pool_name=inst.pool_name,
            db_operation_name="SELECT",
            error_type="UndefinedTable",
        )
        == 1
    )


def test_slow_query_is_counted_and_logged_without_values(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """pg_sleep over the threshold: counter, one warning with caller line, no parameters."""
    engine, inst = instrumented(pg_url, instrument_kw={"slow_query_seconds": 0.2})
    with engine.connect() as conn, capture_logs() as logs:
        conn.execute(text("SELECT 'secret-value', pg_sleep(:s)"), {"s": 0.3})  # SLOW LINE
        conn.execute(text("SELECT 1"))
    slow = [e for e in logs if e["event"] == "slow query"]
    assert len(slow) == 1
    entry = slow[0]
    assert entry["fingerprint"] == "SELECT ?, pg_sleep(?)"
    assert entry["duration_seconds"] >= 0.3
    assert entry["caller"] == f"{__file__}:{_line_of('# SLOW LINE')}"
    assert "secret-value" not in repr(entry)
    assert "parameters" not in entry
    assert (
        value(
            registry,
            "db_client_slow_queries_total",
            pool_name=inst.pool_name,
            db_operation_name="SELECT",
            db_collection_name="",
        )
        == 1
    )


def test_parameters_are_logged_only_when_opted_in(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """log_parameters=True adds the parameter values to the slow-query log."""
    engine, _ = instrumented(
        pg_url, instrument_kw={"slow_query_seconds": 0.05, "log_parameters": True}
    )
    with engine.connect() as conn, capture_logs() as logs:
        conn.execute(text("SELECT pg_sleep(:s), :tag"), {"s": 0.1, "tag": "opted-in"})
    assert "opted-in" in next(e for e in logs if e["event"] == "slow query")["parameters"]


def test_label_budget_sends_new_tables_to_other(
    registry: CollectorRegistry, instrumented: Instrumented
) -> None:
    """Past max_label_sets distinct (operation, table) pairs, the table label is 'other'."""
    engine, _ = instrumented("sqlite://", instrument_kw={"max_label_sets": 2})
    with engine.connect() as conn:
        for t in ("a", "b", "c"):
            conn.execute(text(f"CREATE TABLE {t} (x int)"))
        conn.execute(text("SELECT * FROM c"))
    labels = {
        (s.labels["db_operation_name"], s.labels["db_collection_name"])
        for m in registry.collect()
        if m.name == "db_client_operation_duration_seconds"
        for s in m.samples
        if s.name.endswith("_count")
    }
    assert labels == {
        ("CREATE TABLE", "a"),
        ("CREATE TABLE", "b"),
        ("CREATE TABLE", "other"),
        ("SELECT", "other"),
    }


def test_failing_hook_never_breaks_the_query(
    registry: CollectorRegistry,
    pg_url: str,
    instrumented: Instrumented,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dbpulse bug inside a hook: the statement succeeds, the error counter goes up once per failure, one log."""
    engine, _ = instrumented(pg_url)

    def broken(sql: str, dialect: str = "postgresql") -> object:
        raise RuntimeError("fingerprint exploded")

    monkeypatch.setattr(queries, "fingerprint", broken)
    with engine.connect() as conn, capture_logs() as logs:
        assert conn.execute(text("SELECT 41 + 1 AS hook_test")).scalar_one() == 42
        assert conn.execute(text("SELECT 40 + 2 AS hook_test")).scalar_one() == 42
    hook = "execute"
    assert value(registry, "dbpulse_instrumentation_errors_total", hook=hook) == 2
    failures = [e for e in logs if e.get("hook") == hook]
    assert len(failures) == 1
    assert failures[0]["error_type"] == "RuntimeError"


def _line_of(marker: str) -> int:
    with open(__file__, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if marker in line and "_line_of" not in line:
                return number
    raise AssertionError(marker)


def test_slow_query_span_and_n_plus_one_span_event(
    registry: CollectorRegistry, instrumented: Instrumented, statement_clock: ManualClock
) -> None:
    """A slow statement becomes a CLIENT span with the fingerprint; an N+1 is an event on the current span."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from tests.integration.inprocess.models import User, seed

    exporter_ = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter_))
    engine, _ = instrumented(
        "sqlite://",
        instrument_kw={"slow_query_seconds": 0.05, "tracer_provider": provider},
        poolclass=StaticPool,
    )
    add_sleep_ms(engine, statement_clock)
    seed(engine, users=6)
    with provider.get_tracer("test").start_as_current_span("request"):
        with engine.connect() as conn:
            conn.execute(text("SELECT sleep_ms(80) FROM users WHERE id = :id"), {"id": 1})
        with Session(engine) as session:
            for user in session.scalars(select(User)):
                _ = user.posts
    spans = {s.name: s for s in exporter_.get_finished_spans()}
    slow = spans["SELECT users"]
    assert slow.kind.name == "CLIENT"
    assert attrs(slow)["db.query.text"] == "SELECT sleep_ms(?) FROM users WHERE id = ?"
    assert (times(slow)[1] - times(slow)[0]) / 1e9 >= 0.08
    events = [e for e in spans["request"].events if e.name == "db.n_plus_one"]
    assert [attrs(e)["dbpulse.pattern"] for e in events] == ["User.posts"]
