"""target_info from the application's version (argument or OpenTelemetry resource)."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, generate_latest

from dbpulse.inprocess.appinfo import publish, service_labels


def test_explicit_version_wins_and_is_exported_as_target_info() -> None:
    """service_version= becomes target_info{service_version} (service_name from OTel)."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": "shop", "service.version": "9.9"})
    )
    registry = CollectorRegistry()
    publish(registry, "1.4.0", provider)
    text = generate_latest(registry).decode()
    assert 'target_info{service_name="shop",service_version="1.4.0"} 1.0' in text


def test_version_from_the_opentelemetry_resource() -> None:
    """Without the argument, the tracer provider's service.version is used."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": "shop", "service.version": "2.0.1"})
    )
    assert service_labels(None, provider) == {"service_name": "shop", "service_version": "2.0.1"}


def test_no_version_no_target_info_and_an_existing_one_is_kept() -> None:
    """Nothing is set without a version; an application's own target_info is not replaced."""
    registry = CollectorRegistry()
    publish(registry, None, TracerProvider(resource=Resource.create({"service.name": "x"})))
    assert registry.get_target_info() is None
    registry.set_target_info({"team": "payments"})
    publish(registry, "1.0", None)
    assert registry.get_target_info() == {"team": "payments"}
