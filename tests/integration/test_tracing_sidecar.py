"""Sidecar spans from a real PostgreSQL: slow queries, blocking episodes, index builds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from psycopg.conninfo import make_conninfo

from dbpulse.localpg import LocalPostgres
from dbpulse.settings import load_settings
from dbpulse.sidecar.collectors import create_enabled
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.poller import Poller, Schedule
from dbpulse.sidecar.snapshot import Snapshot
from dbpulse.sidecar.tracing import SidecarTracer
from tests.integration.collector_helpers import background, wait_for

SECRET = "secret-literal-42"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TP = f"00-{TRACE}-{PARENT}-01"


@dataclass
class Traced:
    poller: Poller
    tracer: SidecarTracer
    exporter: InMemorySpanExporter

    def poll(self, collector: str) -> None:
        assert self.poller.run_once(collector)

    def spans(self, name_prefix: str = "") -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(name_prefix)]


@pytest.fixture
def traced(fresh_db: str) -> Iterator[Traced]:
    """A poller on fresh_db with tracing on (slow threshold 0.3 s) and an in-memory exporter."""
    settings = load_settings(dsn=fresh_db, telemetry={"enabled": True, "slow_query_seconds": 0.3})
    collectors = {
        name: c
        for name, c in create_enabled(settings).items()
        if name in ("slow_queries", "locks", "progress")
    }
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = SidecarTracer(provider, target="t")
    conns = ConnectionManager(fresh_db, target="t", connect_timeout=5)
    poller = Poller(
        collectors=collectors,
        schedules={n: Schedule(interval=1.0, timeout=5.0) for n in collectors},
        connections=conns,
        snapshot=Snapshot("t", dict.fromkeys(collectors, 60.0)),
        observer=tracer.observe,
    )
    try:
        yield Traced(poller, tracer, exporter)
    finally:
        conns.close()


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _seconds(span: ReadableSpan) -> float:
    assert span.start_time is not None
    assert span.end_time is not None
    return (span.end_time - span.start_time) / 1e9


def _no_literal(spans: list[ReadableSpan]) -> None:
    for span in spans:
        everything = [span.name, *dict(span.attributes or {}).values()]
        for event in span.events:
            everything += list(dict(event.attributes or {}).values())
        assert all(SECRET not in str(v) for v in everything)


def _poll_until_done(traced: Traced, collector: str, job_done: object) -> None:
    def finished() -> bool:
        traced.poll(collector)
        return bool(job_done())  # type: ignore[operator]

    wait_for(finished, timeout=30, interval=0.1)
    traced.poll(collector)  # the poll that no longer sees it ends the episode


def test_slow_query_with_traceparent_comment_joins_that_trace(
    fresh_db: str, traced: Traced
) -> None:
    """A commented pg_sleep seen in pg_stat_activity becomes a child of the comment's span, literals stripped."""
    sql = f"/*traceparent='{TP}'*/ SELECT pg_sleep(1.0), '{SECRET}'"
    with background(fresh_db, sql) as job:
        _poll_until_done(traced, "slow_queries", job.done)
    (span,) = traced.spans("SELECT")
    assert f"{span.context.trace_id:032x}" == TRACE
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == PARENT
    assert _attrs(span)["db.query.text"] == "SELECT pg_sleep(?), ?"
    # No pg_stat_statements in this database: the text is pg_stat_activity's, normalised.
    assert _attrs(span)["dbpulse.query_text_source"] == "pg_stat_activity"
    assert _attrs(span)["dbpulse.pid"] == job.pid
    assert _attrs(span)["dbpulse.query_id"]
    # From its start to the last poll that saw it: under the 1 s sleep, not far under.
    assert 0.5 <= _seconds(span) <= 1.05
    _no_literal(traced.spans())


def test_slow_query_with_traceparent_in_application_name(fresh_db: str, traced: Traced) -> None:
    """Without a comment, a traceparent as application_name (63-byte limit: the bare value) is the parent."""
    app_dsn = make_conninfo(fresh_db, application_name=f"web {TP}")
    with background(app_dsn, f"SELECT pg_sleep(0.8) WHERE '{SECRET}' <> ''") as job:
        _poll_until_done(traced, "slow_queries", job.done)
    (span,) = traced.spans("SELECT")
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == PARENT
    assert _attrs(span)["db.query.text"] == "SELECT pg_sleep(?) WHERE ? <> ?"
    _no_literal(traced.spans())


def test_fast_queries_and_uncommented_slow_ones(fresh_db: str, traced: Traced) -> None:
    """A query under the threshold makes no span; a slow one without a traceparent is a root span."""
    with background(fresh_db, "SELECT pg_sleep(0.05)") as quick:
        _poll_until_done(traced, "slow_queries", quick.done)
    assert traced.spans() == []
    with background(fresh_db, "SELECT pg_sleep(0.7)") as slow:
        _poll_until_done(traced, "slow_queries", slow.done)
    (span,) = traced.spans()
    assert span.parent is None


def test_blocking_episode_is_one_span_with_root_and_waiter(fresh_db: str, traced: Traced) -> None:
    """A row lock held 0.8 s: one span from the first wait to the last poll that saw it."""
    with psycopg.connect(fresh_db, autocommit=True) as setup:
        setup.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
        setup.execute("INSERT INTO accounts VALUES (1, 100)")
    with psycopg.connect(fresh_db) as holder:
        holder_pid = holder.info.backend_pid
        holder.execute(
            f"/*traceparent='{TP}'*/ UPDATE accounts SET balance = balance - 1 WHERE id = 1"
        )
        with background(fresh_db, "UPDATE accounts SET balance = 0 WHERE id = 1") as waiter:

            def seen() -> bool:
                traced.poll("locks")
                return traced.tracer.open_episodes() == 1

            wait_for(seen)
            for _ in range(8):  # the waiting goes on for about 0.8 s, polled every 0.1 s
                time.sleep(0.1)
                traced.poll("locks")
            holder.rollback()
            wait_for(waiter.done)
        traced.poll("locks")
    (span,) = traced.spans("blocking")
    assert _attrs(span)["dbpulse.blocking.root_pid"] == holder_pid
    assert _attrs(span)["dbpulse.blocking.waiter_pids"] == str(waiter.pid)
    assert _attrs(span)["dbpulse.blocking.root_state"] == "idle in transaction"
    assert _seconds(span) >= 0.7
    assert f"{span.context.trace_id:032x}" == TRACE  # the holder's statement carried it


def test_index_build_span_with_phase_events(fresh_db: str, traced: Traced) -> None:
    """A CREATE INDEX CONCURRENTLY held by a snapshot: one span, phase events, final ratio."""
    with psycopg.connect(fresh_db, autocommit=True) as setup:
        setup.execute("CREATE TABLE items (id int, v int)")
        setup.execute("INSERT INTO items SELECT g, g % 97 FROM generate_series(1, 5000) g")
    holder = psycopg.connect(fresh_db)
    holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        holder.execute("SELECT 1")
        with background(fresh_db, "CREATE INDEX CONCURRENTLY items_v_idx ON items (v)") as cic:

            def seen() -> bool:
                traced.poll("progress")
                return traced.tracer.open_episodes() == 1

            wait_for(seen)
            holder.commit()
            _poll_until_done(traced, "progress", cic.done)
    finally:
        holder.close()
    (span,) = traced.spans("CREATE INDEX")
    assert span.name == "CREATE INDEX CONCURRENTLY items"
    assert _attrs(span)["dbpulse.pid"] == cic.pid
    assert "dbpulse.progress.ratio" in _attrs(span)
    assert _attrs(span)["dbpulse.final_phase"]
    phases = [
        str(dict(e.attributes or {})["dbpulse.phase"]) for e in span.events if e.name == "phase"
    ]
    assert phases[0].startswith("waiting for old snapshots")
    start, end = span.start_time or 0, span.end_time or 0
    assert all(start <= e.timestamp <= end for e in span.events)


def test_slow_query_text_comes_from_pg_stat_statements_when_it_has_one(
    fresh_db: str, pg: LocalPostgres, traced: Traced
) -> None:
    """A statement pg_stat_statements knows is named by its text there, for its own database."""
    with psycopg.connect(pg.dsn, autocommit=True) as elsewhere:
        # Same query_id (aliases are not part of it), other database, other text.
        elsewhere.execute("SELECT pg_sleep(0.01), 'x'")
    with psycopg.connect(fresh_db, autocommit=True) as warm:
        warm.execute("CREATE EXTENSION pg_stat_statements")  # in the database polled
        warm.execute("SELECT pg_sleep(0.01), 'other-literal' AS second")
    with background(fresh_db, f"SELECT pg_sleep(0.8), '{SECRET}' AS second") as job:
        _poll_until_done(traced, "slow_queries", job.done)
    (span,) = traced.spans("SELECT")
    assert _attrs(span)["dbpulse.query_text_source"] == "pg_stat_statements"
    assert _attrs(span)["db.query.text"] == "SELECT pg_sleep(?), ? AS second"
    # The runtime holds the looked-up text for later polls (the collector holds nothing).
    assert "SELECT pg_sleep(?), ? AS second" in traced.poller.state("slow_queries").values()
    _no_literal(traced.spans())
