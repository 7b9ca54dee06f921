"""The example applications in examples/ run for real against PostgreSQL, under
concurrent requests: pool gauges, per-request query counts, N+1 found and not found."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import dbpulse
from examples.fastapi_asyncpg.app import AUTHORS, create_app
from examples.flask_sqlalchemy import app as flask_example
from examples.sqlmodel_heroes import app as sqlmodel_example
from tests.integration.inprocess.conftest import sqlalchemy_url, value
from tests.logcapture import capture_logs

N1 = "db_client_n_plus_one_total"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
CONCURRENT = 8


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _gauge(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _line(path: Path, marker: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.rstrip().endswith(marker):
            return number
    raise AssertionError(marker)


async def _fastapi_run(app: Any) -> dict[str, Any]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            lazy = await asyncio.gather(*(client.get("/authors/lazy") for _ in range(CONCURRENT)))
            eager = await asyncio.gather(*(client.get("/authors") for _ in range(CONCURRENT)))
            metrics = await client.get("/metrics")
            pool = app.state.engine.sync_engine.pool
            checked = (pool.checkedin(), pool.checkedout())
            health = await client.get("/health/database")
    return {"lazy": lazy, "eager": eager, "metrics": metrics, "health": health, "pool": checked}


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_fastapi_example_async_driver_under_concurrent_requests(fresh_db: str, driver: str) -> None:
    """FastAPI on asyncpg / psycopg async: counts per request, N+1 via awaitable_attrs found once per request, none with selectinload, pool gauges = pool.status()."""
    registry = CollectorRegistry()
    app = create_app(sqlalchemy_url(fresh_db, driver), registry)
    with capture_logs() as logs:
        got = asyncio.run(_fastapi_run(app))
    assert [r.status_code for r in got["lazy"] + got["eager"]] == [200] * (2 * CONCURRENT)
    assert got["lazy"][0].json()[0] == {"name": "author 1", "books": 2}
    assert {r.headers["X-DB-Query-Count"] for r in got["lazy"]} == {str(AUTHORS + 1)}
    assert {r.headers["X-DB-Query-Count"] for r in got["eager"]} == {"2"}
    # Every lazy request is its own unit of work: eight counted, none for the eager ones.
    pool_name = dbpulse.instrument(app.state.engine).pool_name
    assert value(registry, N1, pool_name=pool_name, db_collection_name="books") == CONCURRENT
    reports = [e for e in logs if e["event"] == "N+1 query pattern"]
    assert len(reports) == 1  # the other seven are rate-limited
    source = EXAMPLES / "fastapi_asyncpg" / "app.py"
    assert reports[0]["relationship"] == "Author.books"
    assert reports[0]["caller"] == f"{source}:{_line(source, '# N+1 LINE')}"
    samples = _samples(got["metrics"].text)
    idle, used = got["pool"]
    assert _gauge(samples, "db_client_connection_count", pool_name=pool_name, state="idle") == idle
    assert _gauge(samples, "db_client_connection_count", pool_name=pool_name, state="used") == used
    assert used == 0
    assert _gauge(samples, "db_client_connection_pending_requests", pool_name=pool_name) == 0
    assert got["health"].status_code == 200
    assert got["health"].json()["status"] == "healthy"
    assert got["health"].json()["pool"]["size"] == 5


def test_flask_sqlalchemy_example_under_concurrent_requests(fresh_db: str) -> None:
    """Flask-SQLAlchemy behind DBPulseWSGIMiddleware, threads in parallel: counts per request, N+1 per lazy request, none eager, /metrics route."""
    registry = CollectorRegistry()
    app = flask_example.create_app(sqlalchemy_url(fresh_db), registry)

    def get(path: str) -> Any:
        return app.test_client().get(path)

    with capture_logs() as logs, ThreadPoolExecutor(CONCURRENT) as pool:
        lazy = list(pool.map(get, ["/authors/lazy"] * CONCURRENT))
        eager = list(pool.map(get, ["/authors"] * CONCURRENT))
    assert [r.status_code for r in lazy + eager] == [200] * (2 * CONCURRENT)
    assert {r.headers["X-DB-Query-Count"] for r in lazy} == {str(flask_example.AUTHORS + 1)}
    assert {r.headers["X-DB-Query-Count"] for r in eager} == {"2"}
    with app.app_context():
        engine = flask_example.db.engine
        pool_name = dbpulse.instrument(engine).pool_name
        checked = (engine.pool.checkedin(), engine.pool.checkedout())  # type: ignore[attr-defined]
    assert value(registry, N1, pool_name=pool_name, db_collection_name="authors") == 0
    assert value(registry, N1, pool_name=pool_name, db_collection_name="books") == CONCURRENT
    source = EXAMPLES / "flask_sqlalchemy" / "app.py"
    (report,) = [e for e in logs if e["event"] == "N+1 query pattern"]
    assert report["caller"] == f"{source}:{_line(source, '# N+1 LINE')}"
    metrics = app.test_client().get("/metrics")
    samples = _samples(metrics.get_data(as_text=True))
    idle = _gauge(samples, "db_client_connection_count", pool_name=pool_name, state="idle")
    used = _gauge(samples, "db_client_connection_count", pool_name=pool_name, state="used")
    assert (idle, used) == checked
    assert idle >= 1
    health = app.test_client().get("/health/database")
    assert health.status_code == 200
    assert health.get_json()["pool"]["checked_in"] == idle


def test_sqlmodel_example_counts_and_finds_the_lazy_loop(fresh_db: str) -> None:
    """SQLModel's engine instrumented as is: the lazy loop is 1 + 6 statements and one N+1, selectinload is 2 and none."""
    registry = CollectorRegistry()
    engine = sqlmodel_example.make_engine(sqlalchemy_url(fresh_db), registry)
    try:
        pool_name = dbpulse.instrument(engine).pool_name
        with dbpulse.query_counter() as lazy_count:
            lazy = sqlmodel_example.heroes_by_team(engine, eager=False)
        with dbpulse.query_counter() as eager_count:
            eager = sqlmodel_example.heroes_by_team(engine, eager=True)
        assert lazy == eager
        assert len(lazy) == 6
        assert (lazy_count.count, eager_count.count) == (7, 2)
        assert value(registry, N1, pool_name=pool_name, db_collection_name="hero") == 1
    finally:
        engine.dispose()
