"""The /health/database check against real PostgreSQL, mounted in Starlette and Flask."""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

import httpx
import pytest
from flask import Flask
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import QueuePool
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import dbpulse
from dbpulse.inprocess.health import HealthASGIApp, HealthWSGIApp
from dbpulse.inprocess.instrumentation import instrument
from tests.integration.collector_helpers import wait_for
from tests.integration.inprocess.conftest import Instrumented, value

SEED_KEYS = {"status", "pool"}
SEED_POOL_KEYS = {"size", "checked_in", "checked_out", "overflow", "total_connections"}


def _asgi_get(engine: Engine) -> tuple[int, dict[str, Any]]:
    app = Starlette(routes=[Route("/health/database", dbpulse.HealthASGIApp(engine))])
    with TestClient(app) as client:
        response = client.get("/health/database")
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()


def _wsgi_get(engine: Engine) -> tuple[int, dict[str, Any]]:
    app = Flask(__name__)
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/health/database": dbpulse.HealthWSGIApp(engine)}
    )
    response = app.test_client().get("/health/database")
    assert response.content_type == "application/json"
    body = response.get_json()
    assert isinstance(body, dict)
    return response.status_code, body


GETTERS = [pytest.param(_asgi_get, id="starlette"), pytest.param(_wsgi_get, id="flask")]


def _from_status(pool: QueuePool) -> dict[str, int]:
    """The seed's numbers, parsed from ``pool.status()``."""
    found = re.fullmatch(
        r"Pool size: (-?\d+)\s+Connections in pool: (-?\d+)\s*"
        r"Current Overflow: (-?\d+)\s+Current Checked out connections: (-?\d+)",
        pool.status(),
    )
    assert found is not None, pool.status()
    size, idle, overflow, used = (int(g) for g in found.groups())
    return {
        "size": size,
        "checked_in": idle,
        "checked_out": used,
        "overflow": max(0, overflow),
        "total_connections": size + overflow,
    }


def _from_gauges(registry: CollectorRegistry, name: str) -> dict[str, float]:
    idle = value(registry, "db_client_connection_count", pool_name=name, state="idle")
    used = value(registry, "db_client_connection_count", pool_name=name, state="used")
    return {
        "checked_in": idle,
        "checked_out": used,
        "overflow": value(registry, "db_client_connection_overflow", pool_name=name),
        "total_connections": idle + used,
    }


@pytest.mark.parametrize("get", GETTERS)
def test_healthy_numbers_equal_pool_status_and_gauges(
    get: Any, registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """Healthy: 200, the seed's keys, and numbers equal to pool.status() and the gauges."""
    engine, inst = instrumented(pg_url, pool_size=2, max_overflow=2)
    held = [engine.connect() for _ in range(3)]  # two pooled plus one overflow
    for conn in held:
        conn.execute(text("SELECT 1"))
    held[0].close()
    try:
        status, body = get(engine)
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        from_status = _from_status(pool)
        gauges = _from_gauges(registry, inst.pool_name)
    finally:
        for conn in held[1:]:
            conn.close()
    assert status == 200, body
    assert set(body) == SEED_KEYS
    assert body["status"] == "healthy"
    assert set(body["pool"]) == SEED_POOL_KEYS
    assert body["pool"] == from_status
    assert {k: body["pool"][k] for k in gauges} == gauges
    assert body["pool"]["checked_out"] == 2
    assert body["pool"]["overflow"] == 1


@pytest.mark.parametrize("get", GETTERS)
def test_database_down_is_503_without_password(get: Any) -> None:
    """Nothing listening on the port: 503, one-line detail, the password nowhere."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = create_engine(
        f"postgresql+psycopg://app:s3cretPW@127.0.0.1:{port}/shop",
        connect_args={"connect_timeout": 5},
    )
    try:
        status, body = get(engine)
    finally:
        engine.dispose()
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["detail"].startswith("Database unhealthy: OperationalError")
    assert "\n" not in body["detail"]
    assert set(body["pool"]) == SEED_POOL_KEYS
    assert "s3cretPW" not in repr(body)


def test_terminated_backend_is_503_then_healthy_again(
    pg_url: str, instrumented: Instrumented
) -> None:
    """A backend killed under the pool: 503 (no pre-ping), then 200 once the pool recovers."""
    engine, _ = instrumented(pg_url, pool_size=1, max_overflow=0)
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    admin = create_engine(pg_url, poolclass=QueuePool)
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    finally:
        admin.dispose()
    app = HealthWSGIApp(engine)
    flask = Flask(__name__)
    flask.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        flask.wsgi_app, {"/health/database": app}
    )
    client = flask.test_client()
    first = client.get("/health/database")
    assert first.status_code == 503, first.get_json()
    # The dead connection was invalidated; the next probe opens a fresh one.
    second = client.get("/health/database")
    assert second.status_code == 200, second.get_json()


def test_exhausted_pool_answers_503_within_the_check_timeout(
    pg_url: str, instrumented: Instrumented
) -> None:
    """No connection free (pool_timeout far away): ASGI answers 503 "no answer", not a hang."""
    engine, _ = instrumented(pg_url, pool_size=1, max_overflow=0, pool_timeout=60)
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    app = Starlette(routes=[Route("/health/database", HealthASGIApp(engine, timeout=0.2))])
    held = engine.connect()
    # Released before the client's loop shuts down: that waits for the late probe thread.
    with TestClient(app) as client:
        try:
            response = client.get("/health/database")
        finally:
            held.close()
    body = response.json()
    assert response.status_code == 503, body
    assert body["detail"].startswith("Database unhealthy: no answer within 0.2s")
    assert body["pool"]["checked_out"] == 1
    # The late probe gets the released connection, runs and gives it back.
    wait_for(lambda: pool.checkedout() == 0)


def test_statement_timeout_does_not_stay_on_the_pooled_connection(
    pg_url: str, instrumented: Instrumented
) -> None:
    """SET LOCAL ends with the probe's transaction: the pooled connection keeps its default."""
    engine, _ = instrumented(pg_url, pool_size=1, max_overflow=0)
    with engine.connect() as conn:
        default = conn.execute(text("SHOW statement_timeout")).scalar_one()
    status, _ = _wsgi_get(engine)
    assert status == 200
    with engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == default


def test_async_engine_over_asgi_matches_pool_and_gauges(
    registry: CollectorRegistry, pg_url: str
) -> None:
    """An AsyncEngine (psycopg async) behind the ASGI app: 200 with its pool's numbers."""

    async def main() -> tuple[int, dict[str, Any], dict[str, int], dict[str, float]]:
        engine = create_async_engine(pg_url, pool_size=2, max_overflow=1)
        inst = instrument(engine, registry=registry)
        app = Starlette(routes=[Route("/health/database", HealthASGIApp(engine))])
        transport = httpx.ASGITransport(app=app)
        try:
            async with engine.connect() as held:
                await held.execute(text("SELECT 1"))
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    response = await client.get("/health/database")
                pool = engine.sync_engine.pool
                assert isinstance(pool, QueuePool)
                return (
                    response.status_code,
                    response.json(),
                    _from_status(pool),
                    _from_gauges(registry, inst.pool_name),
                )
        finally:
            inst.uninstrument()
            await engine.dispose()

    status, body, from_status, gauges = asyncio.run(main())
    assert status == 200, body
    assert set(body) == SEED_KEYS
    assert body["pool"] == from_status
    assert {k: body["pool"][k] for k in gauges} == gauges
    assert body["pool"]["checked_out"] == 1


def test_probe_statements_are_not_counted_as_the_applications(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """The probe's SET/SELECT 1 are plumbing: no statement metric moves, the app's still do."""
    engine, _ = instrumented(pg_url, pool_size=1, max_overflow=0)

    def statements() -> float:
        return sum(
            sample.value
            for family in registry.collect()
            if family.name == "db_client_operation_duration_seconds"
            for sample in family.samples
            if sample.name.endswith("_count")
        )

    status, _ = _wsgi_get(engine)
    assert status == 200
    assert statements() == 0
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert statements() == 1


def test_wrong_engines_are_refused_when_the_app_is_built(pg_url: str) -> None:
    """Not an engine, or an AsyncEngine for WSGI: TypeError at construction, not a 503 later."""
    with pytest.raises(TypeError):
        HealthASGIApp(object())  # type: ignore[arg-type]
    engine = create_async_engine(pg_url)
    with pytest.raises(TypeError):
        HealthWSGIApp(engine)  # type: ignore[arg-type]
