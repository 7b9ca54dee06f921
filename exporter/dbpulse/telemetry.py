"""OpenTelemetry TracerProvider and OTLP exporter from the ``telemetry:`` settings.

Nothing here runs unless ``telemetry.enabled`` is true: with tracing off no provider is
created and the sidecar's and the hooks' tracing paths are never installed. Settings
win over the standard ``OTEL_*`` environment variables, which win over the defaults.
Spans leave through a ``BatchSpanProcessor``; ``Telemetry.shutdown()`` flushes it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from dbpulse import __version__
from dbpulse.logging import get_logger
from dbpulse.settings import TelemetrySettings

__all__ = ["Telemetry", "create_telemetry", "otlp_exporter", "resource_attributes"]

DEFAULT_SERVICE_NAME = "dbpulse"
# Environment variables Kubernetes manifests commonly fill from the downward API.
_POD_VARS = ("K8S_POD_NAME", "POD_NAME")
_NAMESPACE_VARS = ("K8S_NAMESPACE_NAME", "POD_NAMESPACE", "K8S_NAMESPACE")


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((environ[n] for n in names if environ.get(n)), None)


def resource_attributes(settings: TelemetrySettings, environ: Mapping[str, str]) -> dict[str, str]:
    """service.*, host.name and k8s.* attributes (OTEL_RESOURCE_ATTRIBUTES merges in)."""
    attrs = {"service.version": __version__, "host.name": socket.gethostname()}
    service = settings.service_name or environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    attrs["service.name"] = service
    pod = _first(environ, _POD_VARS)
    if pod is None and environ.get("KUBERNETES_SERVICE_HOST"):
        # In a pod, HOSTNAME is the pod's name unless the spec overrides hostname.
        pod = environ.get("HOSTNAME") or None
    if pod:
        attrs["k8s.pod.name"] = pod
    namespace = _first(environ, _NAMESPACE_VARS)
    if namespace:
        attrs["k8s.namespace.name"] = namespace
    return attrs


def _protocol(settings: TelemetrySettings, environ: Mapping[str, str]) -> str:
    return (
        settings.protocol
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )


def _http_endpoint(endpoint: str) -> str:
    # Like OTEL_EXPORTER_OTLP_ENDPOINT: a base URL gets the signal path appended.
    path = urlsplit(endpoint).path
    return endpoint.rstrip("/") + "/v1/traces" if path in ("", "/") else endpoint


def otlp_exporter(settings: TelemetrySettings, environ: Mapping[str, str]) -> SpanExporter:
    """The OTLP span exporter for the configured protocol (unset fields: OTEL_* env)."""
    headers = {k: v.get_secret_value() for k, v in settings.headers.items()} or None
    protocol = _protocol(settings, environ)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        insecure = None
        if settings.endpoint is not None:
            insecure = urlsplit(settings.endpoint).scheme != "https"
        return GrpcExporter(
            endpoint=settings.endpoint,
            insecure=insecure,
            headers=headers,
            timeout=settings.timeout,
        )
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        endpoint = _http_endpoint(settings.endpoint) if settings.endpoint else None
        return HttpExporter(endpoint=endpoint, headers=headers, timeout=settings.timeout)
    raise ValueError(f"unsupported OTLP protocol {protocol!r} (grpc or http/protobuf)")


@dataclass
class Telemetry:
    """A provider dbpulse created and therefore shuts down (flushing queued spans)."""

    tracer_provider: TracerProvider

    def shutdown(self) -> None:
        try:
            self.tracer_provider.force_flush()
            self.tracer_provider.shutdown()
        except Exception as exc:  # noqa: BLE001 - an unreachable collector must not block exit
            get_logger().warning("telemetry shutdown failed", error=type(exc).__name__)


def create_telemetry(
    settings: TelemetrySettings,
    *,
    exporter: SpanExporter | None = None,
    environ: Mapping[str, str] | None = None,
) -> Telemetry | None:
    """A batching TracerProvider exporting over OTLP, or None when tracing is disabled.

    ``exporter`` replaces the OTLP exporter (tests). The provider is not made global:
    dbpulse passes it where it is needed, so an application's own provider is untouched.
    """
    if not settings.enabled:
        return None
    env = os.environ if environ is None else environ
    provider = TracerProvider(
        resource=Resource.create(resource_attributes(settings, env)),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(
        BatchSpanProcessor(exporter if exporter is not None else otlp_exporter(settings, env))
    )
    return Telemetry(provider)
