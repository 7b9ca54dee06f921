"""Fixtures for in-process tests: fresh registries, instrumented engines, ORM models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, create_engine

from dbpulse.inprocess import queries, tracing
from dbpulse.inprocess.instrumentation import Instrumentation, instrument
from tests.clock import ManualClock


def sqlalchemy_url(dsn: str, driver: str = "psycopg") -> str:
    """postgresql://... -> postgresql+psycopg://... for SQLAlchemy."""
    return dsn.replace("postgresql://", f"postgresql+{driver}://", 1)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value, 0 when the series does not exist (yet)."""
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A tracer provider whose finished spans are kept in memory for the test to read."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def pg_url(fresh_db: str) -> str:
    return sqlalchemy_url(fresh_db)


class Instrumented(Protocol):
    """The ``instrumented`` fixture's factory."""

    def __call__(
        self, url: str, *, instrument_kw: dict[str, Any] | None = None, **engine_kw: Any
    ) -> tuple[Engine, Instrumentation]: ...


@pytest.fixture
def instrumented(registry: CollectorRegistry) -> Iterator[Instrumented]:
    """Factory: create_engine(url, **engine_kw) + instrument(registry=...); undone after."""
    made: list[tuple[Engine, Instrumentation]] = []

    def make(
        url: str, *, instrument_kw: dict[str, Any] | None = None, **engine_kw: Any
    ) -> tuple[Engine, Instrumentation]:
        engine = create_engine(url, **engine_kw)
        inst = instrument(engine, registry=registry, **(instrument_kw or {}))
        made.append((engine, inst))
        return engine, inst

    yield make
    for engine, inst in made:
        inst.uninstrument()
        engine.dispose()


@pytest.fixture
def statement_clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The statement hooks' perf_counter (metrics and tracing), moved only by hand.

    Statements then take no time unless a test says so (``add_sleep_ms``): what is slow
    is decided by the test, not by how busy the machine is.
    """
    clock = ManualClock()
    monkeypatch.setattr(queries, "perf_counter", clock)
    monkeypatch.setattr(tracing, "perf_counter", clock)
    return clock


def add_sleep_ms(engine: Engine, clock: ManualClock) -> None:
    """Give a single-connection SQLite engine ``sleep_ms(ms)``: ms of ``clock`` time."""

    def sleep_ms(ms: int) -> int:
        clock.advance(ms / 1000)
        return ms

    sqlite = engine.raw_connection().driver_connection
    assert sqlite is not None
    sqlite.create_function("sleep_ms", 1, sleep_ms)
