"""OpenTelemetry trace export settings (off by default)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from dbpulse.settings.base import MIN_TIMEOUT, Strict, floor

__all__ = ["TelemetrySettings"]


class TelemetrySettings(Strict):
    """OpenTelemetry traces (off by default: no provider is created, nothing is exported).

    Unset fields fall back to the standard ``OTEL_*`` environment variables
    (``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` / ``_PROTOCOL`` / ``_HEADERS``,
    ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), then to the defaults below.
    """

    enabled: bool = Field(default=False, description="export spans over OTLP")
    protocol: Literal["grpc", "http/protobuf"] | None = Field(
        default=None, description="OTLP transport; default OTEL_EXPORTER_OTLP_PROTOCOL or grpc"
    )
    endpoint: str | None = Field(
        default=None, description="collector URL; default OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="extra OTLP request headers (e.g. an API key)"
    )
    service_name: str | None = Field(
        default=None, description="service.name; default OTEL_SERVICE_NAME or dbpulse"
    )
    sample_ratio: float = Field(
        default=1.0, ge=0, le=1, description="fraction of root spans kept (parent-based)"
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description="OTLP export timeout, s")
    slow_query_seconds: float = Field(
        default=5.0,
        gt=0,
        description="an active query older than this in pg_stat_activity becomes a span",
    )

    _check_min_timeout = floor(MIN_TIMEOUT, "timeout", "slow_query_seconds")
