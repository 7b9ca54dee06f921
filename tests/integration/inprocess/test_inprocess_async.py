"""AsyncEngine (postgresql+psycopg, AsyncAdaptedQueuePool): the same metrics, via sync_engine.

SQLAlchemy's asyncio layer needs the greenlet package (the ``sqlalchemy[asyncio]``
extra); without it these tests skip.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, exc, select, text
from sqlalchemy.pool import QueuePool

from dbpulse.inprocess.instrumentation import instrument
from tests.integration.inprocess.conftest import value
from tests.integration.inprocess.models import User, seed
from tests.logcapture import capture_logs

pytest.importorskip("greenlet")

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_async_engine_statements_pool_and_transactions(
    registry: CollectorRegistry, pg_url: str
) -> None:
    """Statements, transactions and AsyncAdaptedQueuePool gauges, read while connections are out."""

    async def main() -> None:
        engine = create_async_engine(pg_url, pool_size=2, max_overflow=1)
        inst = instrument(engine, registry=registry)
        name = inst.pool_name
        assert type(engine.sync_engine.pool).__name__ == "AsyncAdaptedQueuePool"
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id int)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        a, b, c = engine.connect(), engine.connect(), engine.connect()
        for conn in (a, b, c):
            await conn.start()
            await conn.execute(text("SELECT * FROM t"))
        pool = engine.sync_engine.pool
        assert isinstance(pool, QueuePool)
        assert value(registry, "db_client_connection_count", pool_name=name, state="used") == 3
        assert pool.checkedout() == 3
        assert value(registry, "db_client_connection_overflow", pool_name=name) == 1
        for conn in (a, b, c):
            await conn.close()
        assert value(registry, "db_client_connection_count", pool_name=name, state="idle") == 2
        assert (
            value(
                registry,
                "db_client_operation_duration_seconds_count",
                pool_name=name,
                db_operation_name="SELECT",
                db_collection_name="t",
            )
            == 3
        )
        assert (
            value(
                registry,
                "db_client_transaction_duration_seconds_count",
                pool_name=name,
                outcome="commit",
            )
            == 1
        )
        inst.uninstrument()
        await engine.dispose()

    _run(main())


def test_async_pool_exhaustion_pending_then_timeouts(
    registry: CollectorRegistry, pg_url: str
) -> None:
    """Tasks waiting on a full AsyncAdaptedQueuePool are pending, then time out."""

    async def main() -> None:
        engine = create_async_engine(pg_url, pool_size=1, max_overflow=0, pool_timeout=0.5)
        inst = instrument(engine, registry=registry)
        name = inst.pool_name
        holder = await engine.connect()

        async def waiter() -> str:
            try:
                async with engine.connect():
                    return "got"
            except exc.TimeoutError:
                return "timeout"

        tasks = [asyncio.create_task(waiter()) for _ in range(2)]
        for _ in range(100):
            await asyncio.sleep(0.01)
            if value(registry, "db_client_connection_pending_requests", pool_name=name) == 2:
                break
        assert value(registry, "db_client_connection_pending_requests", pool_name=name) == 2
        assert await asyncio.gather(*tasks) == ["timeout", "timeout"]
        await holder.close()
        assert value(registry, "db_client_connection_timeouts_total", pool_name=name) == 2
        assert value(registry, "db_client_connection_pending_requests", pool_name=name) == 0
        inst.uninstrument()
        await engine.dispose()

    _run(main())


def test_async_lazy_loads_and_slow_query_name_the_application_line(
    registry: CollectorRegistry, pg_url: str
) -> None:
    """Lazy loads in a loop under AsyncSession are an N+1; logs point at this file, not SQLAlchemy."""

    async def main() -> list[MutableMapping[str, Any]]:
        engine = create_async_engine(pg_url)
        inst = instrument(engine, registry=registry, slow_query_seconds=0.1)
        seeder = create_engine(pg_url)
        seed(seeder, users=6)
        seeder.dispose()
        with capture_logs() as logs:
            async with AsyncSession(engine) as session:
                # The classic loop, run in the session's greenlet as run_sync does.
                await session.run_sync(
                    lambda sync: [len(u.posts) for u in sync.scalars(select(User))]
                )
                await session.execute(text("SELECT pg_sleep(0.15)"))
        assert (
            value(
                registry,
                "db_client_n_plus_one_total",
                pool_name=inst.pool_name,
                db_collection_name="posts",
            )
            == 1
        )
        inst.uninstrument()
        await engine.dispose()
        return logs

    logs = _run(main())
    report = next(e for e in logs if e["event"] == "N+1 query pattern")
    slow = next(e for e in logs if e["event"] == "slow query")
    assert report["relationship"] == "User.posts"
    assert str(report["caller"]).startswith(__file__ + ":")
    assert str(slow["caller"]).startswith(__file__ + ":")


def test_async_starlette_endpoint_with_async_engine(
    registry: CollectorRegistry, pg_url: str
) -> None:
    """An async endpoint awaiting an AsyncEngine is counted per request by the ASGI middleware."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from dbpulse.inprocess.middleware import DBPulseASGIMiddleware

    engine = create_async_engine(pg_url)
    inst = instrument(engine, registry=registry)

    async def two(request: Request) -> JSONResponse:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await conn.execute(text("SELECT 2"))
        return JSONResponse({"ok": True})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        await engine.dispose()  # on the loop that opened the connections

    app = Starlette(routes=[Route("/two", two)], lifespan=lifespan)
    with TestClient(DBPulseASGIMiddleware(app, registry=registry)) as client:
        counts = [client.get("/two").headers["X-DB-Query-Count"] for _ in range(3)]
    assert counts == ["2", "2", "2"]
    assert value(registry, "db_client_request_queries_sum") == 6
    inst.uninstrument()
