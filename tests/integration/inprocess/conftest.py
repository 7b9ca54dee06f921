"""Fixtures for in-process tests: fresh registries, instrumented engines, ORM models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import pytest
from dbpulse.inprocess.instrumentation import Instrumentation, instrument
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, create_engine


def sqlalchemy_url(dsn: str, driver: str = "psycopg") -> str:
    """postgresql://... -> postgresql+psycopg://... for SQLAlchemy."""
    return dsn.replace("postgresql://", f"postgresql+{driver}://", 1)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value, 0 when the series does not exist (yet)."""
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


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
