"""The application's name and version as ``target_info``, so dashboards can mark deploys.

OpenTelemetry's Prometheus mapping exposes a service's resource attributes as the
``target_info`` info metric (``service.version`` -> ``service_version``), and
prometheus_client writes it with ``CollectorRegistry.set_target_info``. ``instrument()``
sets it on its registry when the application told its version (the ``service_version``
argument, or ``service.version`` in the OpenTelemetry resource of the tracer provider,
which the SDK also reads from ``OTEL_RESOURCE_ATTRIBUTES``) and the registry has no
``target_info`` yet: an application that sets its own keeps it.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from prometheus_client import REGISTRY, CollectorRegistry

log = logging.getLogger("dbpulse")


def service_labels(service_version: str | None, tracer_provider: Any) -> dict[str, str]:
    """``service_name``/``service_version`` from the argument or the OTel resource."""
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    resource = getattr(provider, "resource", None)
    attributes = dict(getattr(resource, "attributes", None) or {})
    if not attributes:
        # No SDK provider yet: the SDK's own reading of OTEL_RESOURCE_ATTRIBUTES and
        # OTEL_SERVICE_NAME, as a provider made later would see them.
        try:
            from opentelemetry.sdk.resources import Resource

            attributes = dict(Resource.create().attributes)
        except ImportError:  # pragma: no cover - the SDK is a dependency
            attributes = {}
    version = service_version or attributes.get("service.version")
    if not version:
        return {}
    labels = {"service_version": str(version)}
    name = attributes.get("service.name")
    if name and not str(name).startswith("unknown_service"):
        labels["service_name"] = str(name)
    return labels


def publish(
    registry: CollectorRegistry | None, service_version: str | None, tracer_provider: Any
) -> None:
    """Set ``target_info`` from :func:`service_labels` unless the registry has one."""
    target = registry if registry is not None else REGISTRY
    try:
        labels = service_labels(service_version, tracer_provider)
        if labels and target.get_target_info() is None:
            target.set_target_info(labels)
    except Exception as exc:  # noqa: BLE001 - a version label must never fail instrument()
        log.warning("dbpulse: target_info not set: %s", type(exc).__name__)
