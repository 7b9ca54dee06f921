"""Telemetry from settings, traceparent comments, and the sidecar's span emitter."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpExporter,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from dbpulse.settings import TelemetrySettings, load_settings
from dbpulse.sidecar.base import BuildResult, Context
from dbpulse.sidecar.collectors.progress import ProgressCollector
from dbpulse.sidecar.facts import Facts, IndexBuild
from dbpulse.sidecar.tracing import SidecarTracer
from dbpulse.telemetry import create_telemetry, otlp_exporter, resource_attributes
from dbpulse.tracecontext import (
    comment_for,
    find_traceparent,
    format_traceparent,
    parse_traceparent,
)
from tests.otel import attrs

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_disabled_by_default_creates_no_provider() -> None:
    """Default settings have tracing off, and then no provider exists at all."""
    settings = load_settings()
    assert settings.telemetry.enabled is False
    assert create_telemetry(settings.telemetry) is None


def test_env_reaches_telemetry_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """DBPULSE_TELEMETRY__* variables set the nested telemetry fields."""
    monkeypatch.setenv("DBPULSE_TELEMETRY__ENABLED", "true")
    monkeypatch.setenv("DBPULSE_TELEMETRY__PROTOCOL", "http/protobuf")
    telemetry = load_settings().telemetry
    assert (telemetry.enabled, telemetry.protocol) == (True, "http/protobuf")


def test_resource_has_service_host_and_pod() -> None:
    """service.name from settings, else OTEL_SERVICE_NAME; the pod from POD_NAME/K8S_POD_NAME."""
    env = {"OTEL_SERVICE_NAME": "from-env", "POD_NAME": "db-7f9", "POD_NAMESPACE": "prod"}
    attrs = resource_attributes(TelemetrySettings(), env)
    assert attrs["service.name"] == "from-env"
    assert attrs["k8s.pod.name"] == "db-7f9"
    assert attrs["k8s.namespace.name"] == "prod"
    assert attrs["host.name"]
    assert resource_attributes(TelemetrySettings(service_name="mine"), env)["service.name"] == (
        "mine"
    )
    assert "k8s.pod.name" not in resource_attributes(TelemetrySettings(), {"HOSTNAME": "laptop"})
    in_pod = {"HOSTNAME": "web-1", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert resource_attributes(TelemetrySettings(), in_pod)["k8s.pod.name"] == "web-1"


def test_protocol_picks_the_exporter_settings_then_env() -> None:
    """grpc by default, http/protobuf from settings or OTEL_EXPORTER_OTLP_PROTOCOL."""
    assert isinstance(otlp_exporter(TelemetrySettings(enabled=True), {}), GrpcExporter)
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    http = otlp_exporter(TelemetrySettings(enabled=True, endpoint="http://c:4318"), env)
    assert isinstance(http, HttpExporter)
    assert http._endpoint == "http://c:4318/v1/traces"
    grpc = otlp_exporter(TelemetrySettings(enabled=True, protocol="grpc"), env)
    assert isinstance(grpc, GrpcExporter)


def test_traceparent_round_trip_and_extraction() -> None:
    """format -> comment -> find -> parse gives back the same span context."""
    ctx = parse_traceparent(TP)
    assert ctx is not None
    assert ctx.is_remote
    assert format_traceparent(ctx) == TP
    sql = comment_for(ctx) + "SELECT 'secret-literal-42'"
    assert find_traceparent(sql) == TP
    assert find_traceparent(f"web traceparent={TP}") == TP
    assert parse_traceparent("00-" + "0" * 32 + "-" + "0" * 16 + "-01") is None
    assert parse_traceparent("garbage") is None
    invalid = SpanContext(trace_id=0, span_id=0, is_remote=False, trace_flags=TraceFlags(0))
    assert comment_for(invalid) == ""


def _tracer() -> tuple[SidecarTracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return SidecarTracer(provider, target="db:5432/app"), exporter


def _build(phase: str, done: int, elapsed: float, tp: str | None = None) -> dict[str, object]:
    return {
        "pid": 11,
        "datname": "app",
        "relname": "orders",
        "index_relname": "",
        "command": "CREATE INDEX",
        "phase": phase,
        "blocks_done": done,
        "blocks_total": 100,
        "elapsed_seconds": elapsed,
        "traceparent": tp,
    }


def _ctx(now: float) -> Context:
    return Context(target="db:5432/app", server_version_num=150000, now=now)


def _observe(tracer: SidecarTracer, rows: dict[str, list[dict[str, object]]], ctx: Context) -> None:
    """Feed the tracer what the poller does: the progress collector's BuildResult."""
    tracer.observe("progress", ProgressCollector().build(rows, ctx, None), ctx)


def test_index_build_span_has_phase_events_final_ratio_and_times() -> None:
    """One span from first seen (dated back by elapsed) to last seen, an event per phase."""
    tracer, exporter = _tracer()
    _observe(tracer, {"create_index": [_build("initializing", 0, 2.0)]}, _ctx(1000.0))
    _observe(tracer, {"create_index": [_build("building", 40, 3.0)]}, _ctx(1001.0))
    _observe(tracer, {"create_index": [_build("building", 90, 4.0)]}, _ctx(1002.0))
    assert exporter.get_finished_spans() == ()
    _observe(tracer, {"create_index": []}, _ctx(1003.0))
    (span,) = exporter.get_finished_spans()
    assert span.name == "CREATE INDEX orders"
    assert span.start_time == 998 * 10**9
    assert span.end_time == 1002 * 10**9
    phases = [(attrs(e)["dbpulse.phase"], e.timestamp) for e in span.events]
    assert phases == [("initializing", 1000 * 10**9), ("building", 1001 * 10**9)]
    assert attrs(span)["dbpulse.progress.ratio"] == 0.9
    assert attrs(span)["dbpulse.final_phase"] == "building"
    assert span.parent is None


def test_episode_with_traceparent_joins_that_trace() -> None:
    """A build whose statement carried a traceparent is a child of that remote span."""
    tracer, exporter = _tracer()
    _observe(tracer, {"create_index": [_build("x", 0, 1.0, TP)]}, _ctx(10.0))
    _observe(tracer, {"create_index": []}, _ctx(11.0))
    (span,) = exporter.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == TP.split("-")[1]
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == TP.split("-")[2]


def test_close_ends_open_episodes_and_marks_them() -> None:
    """Stopping the sidecar ends a build still in flight, flagged as open at shutdown."""
    tracer, exporter = _tracer()
    _observe(tracer, {"create_index": [_build("x", 0, 1.0)]}, _ctx(10.0))
    tracer.close()
    (span,) = exporter.get_finished_spans()
    assert attrs(span)["dbpulse.episode.open_at_shutdown"] is True
    assert tracer.open_episodes() == 0


def test_a_broken_row_never_fails_the_poll() -> None:
    """A fact the sightings code cannot read is logged once and makes no span; no exception."""
    tracer, exporter = _tracer()
    broken = IndexBuild(11, "app", "t", "", "CREATE INDEX", "x", "not-a-number", 0.0)  # type: ignore[arg-type]
    tracer.observe("progress", BuildResult([], facts=Facts(index_builds=(broken,))), _ctx(1.0))
    assert exporter.get_finished_spans() == ()
