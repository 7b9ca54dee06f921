"""An instrumented Starlette app and the sidecar put their spans in one trace."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from dbpulse.inprocess.instrumentation import instrument
from dbpulse.inprocess.middleware import DBPulseASGIMiddleware
from dbpulse.settings import load_settings
from dbpulse.sidecar.collectors import create_enabled
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.poller import Poller, Schedule
from dbpulse.sidecar.snapshot import Snapshot
from dbpulse.sidecar.tracing import SidecarTracer
from tests.integration.collector_helpers import wait_for
from tests.integration.inprocess.conftest import sqlalchemy_url
from tests.otel import attrs, times

SECRET = "secret-literal-42"


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


class ServerSpans:
    """The application's own tracing: a SERVER span per HTTP request, made current."""

    def __init__(self, app: Any, provider: TracerProvider) -> None:
        self.app = app
        self.tracer = provider.get_tracer("app")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.tracer.start_as_current_span(f"GET {scope['path']}", kind=SpanKind.SERVER):
            await self.app(scope, receive, send)


def test_app_request_and_sidecar_slow_query_share_one_trace(fresh_db: str) -> None:
    """A request running pg_sleep with traceparent comments: the sidecar's span is a child of the app's server span."""
    app_provider, app_spans = _provider()
    engine = create_engine(sqlalchemy_url(fresh_db))
    inst = instrument(
        engine,
        registry=CollectorRegistry(),
        tracer_provider=app_provider,
        traceparent_comment=True,
        slow_query_seconds=10.0,
    )

    def slow(request: Request) -> PlainTextResponse:
        with engine.connect() as conn:
            conn.execute(text(f"SELECT pg_sleep(1.0), '{SECRET}'"))
        return PlainTextResponse("done")

    app = ServerSpans(DBPulseASGIMiddleware(Starlette(routes=[Route("/slow", slow)])), app_provider)

    # The sidecar: its own provider (another process in production), tracing on.
    sidecar_provider, sidecar_spans = _provider()
    settings = load_settings(dsn=fresh_db, telemetry={"enabled": True, "slow_query_seconds": 0.3})
    collectors = {"slow_queries": create_enabled(settings)["slow_queries"]}
    conns = ConnectionManager(fresh_db, target="t", connect_timeout=5)
    poller = Poller(
        collectors=collectors,
        schedules={"slow_queries": Schedule(interval=1.0, timeout=5.0)},
        connections=conns,
        snapshot=Snapshot("t", {"slow_queries": 60.0}),
        observer=SidecarTracer(sidecar_provider, target="t").observe,
    )
    statuses: list[int] = []
    try:
        with TestClient(app) as client:
            request = threading.Thread(
                target=lambda: statuses.append(client.get("/slow").status_code)
            )
            request.start()

            def finished() -> bool:
                poller.run_once("slow_queries")
                return not request.is_alive()

            wait_for(finished, timeout=30)
            poller.run_once("slow_queries")
    finally:
        conns.close()
        inst.uninstrument()
        engine.dispose()
    assert statuses == [200]
    (server,) = [s for s in app_spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    (db_side,) = sidecar_spans.get_finished_spans()
    assert db_side.context.trace_id == server.context.trace_id
    assert db_side.parent is not None
    assert db_side.parent.span_id == server.context.span_id
    assert attrs(db_side)["db.query.text"] == "SELECT pg_sleep(?), ?"
    # The database-side span lies within the request.
    assert times(server)[0] <= times(db_side)[0] <= times(db_side)[1] <= times(server)[1]
    for span in (*app_spans.get_finished_spans(), db_side):
        assert SECRET not in str(dict(span.attributes or {}))
