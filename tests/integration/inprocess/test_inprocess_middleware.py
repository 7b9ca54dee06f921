"""Per-request scopes behind real ASGI (Starlette) and WSGI (Flask) apps."""

from __future__ import annotations

import flask
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from dbpulse import query_counter
from dbpulse.inprocess.middleware import DBPulseASGIMiddleware, DBPulseWSGIMiddleware
from tests.integration.inprocess.conftest import Instrumented, value
from tests.integration.inprocess.models import User, seed
from tests.logcapture import capture_logs


def _starlette(engine: Engine, registry: CollectorRegistry, *, headers: bool = True) -> TestClient:
    def users(request: Request) -> JSONResponse:  # sync: runs in Starlette's threadpool
        with Session(engine) as session:
            rows = session.scalars(select(User)).all()
            posts = {u.name: len(u.posts) for u in rows}  # lazy loads: N+1
        return JSONResponse(posts)

    async def ping(request: Request) -> JSONResponse:  # async endpoint, sync engine
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            conn.execute(text("SELECT 2"))
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/users", users), Route("/ping", ping)])
    return TestClient(DBPulseASGIMiddleware(app, headers=headers, registry=registry))


def test_starlette_headers_count_each_request(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """X-DB-Query-Count/-Time report the request's own statements, per request."""
    engine, _ = instrumented(pg_url)
    seed(engine, users=3)
    client = _starlette(engine, registry)
    first = client.get("/ping")
    second = client.get("/ping")
    for response in (first, second):
        assert response.status_code == 200
        assert response.headers["X-DB-Query-Count"] == "2"
        assert float(response.headers["X-DB-Query-Time"]) > 0
    assert value(registry, "db_client_request_queries_count") == 2
    assert value(registry, "db_client_request_queries_bucket", le="2.0") == 2
    assert value(registry, "db_client_request_queries_bucket", le="1.0") == 0


def test_starlette_request_is_the_n_plus_one_unit(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """The lazy-load loop in a threadpool endpoint is counted once per request, logged once per interval."""
    engine, inst = instrumented(pg_url)
    seed(engine, users=6)
    client = _starlette(engine, registry)
    with capture_logs() as logs:
        response = client.get("/users")
        client.get("/users")
    assert response.headers["X-DB-Query-Count"] == "7"  # 1 + 6 lazy loads
    reports = [e for e in logs if e["event"] == "N+1 query pattern"]
    # The second request's report is counted below; its log line is rate-limited.
    assert [(r["relationship"], r["unit_of_work"]) for r in reports] == [
        ("User.posts", "request"),
    ]
    assert (
        value(
            registry,
            "db_client_n_plus_one_total",
            pool_name=inst.pool_name,
            db_collection_name="posts",
        )
        == 2
    )


def test_headers_can_be_turned_off(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """headers=False adds nothing to the response but still observes the histogram."""
    engine, _ = instrumented(pg_url)
    response = _starlette(engine, registry, headers=False).get("/ping")
    assert "X-DB-Query-Count" not in response.headers
    assert value(registry, "db_client_request_queries_count") == 1


def test_flask_wsgi_headers_and_histogram(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """Flask behind the WSGI middleware gets the same headers and request histogram."""
    engine, _ = instrumented(pg_url)
    app = flask.Flask(__name__)

    @app.get("/three")
    def three() -> dict[str, int]:
        with engine.connect() as conn:
            for i in range(3):
                conn.execute(text("SELECT :i"), {"i": i})
        return {"ok": 1}

    # Flask documents wrapping app.wsgi_app as the way to add WSGI middleware.
    app.wsgi_app = DBPulseWSGIMiddleware(app.wsgi_app, registry=registry)  # type: ignore[method-assign]
    client = app.test_client()
    response = client.get("/three")
    assert response.json == {"ok": 1}  # a server reads the body; the scope ends there
    assert response.headers["X-DB-Query-Count"] == "3"
    assert float(response.headers["X-DB-Query-Time"]) > 0
    again = client.get("/three")
    assert again.headers["X-DB-Query-Count"] == "3"
    again.close()
    assert value(registry, "db_client_request_queries_count") == 2
    assert value(registry, "db_client_request_queries_sum") == 6


def test_query_counter_inside_and_outside_a_request(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """query_counter() counts what its block ran, with the fingerprints for messages."""
    engine, _ = instrumented(pg_url)
    client = _starlette(engine, registry)
    with query_counter() as counter:
        client.get("/ping")
        with engine.connect() as conn:
            conn.execute(text("SELECT 'x' || :v"), {"v": "private"})
    # TestClient runs the app in a portal thread with a copied context: counted too.
    assert counter.count == 3, counter.statements
    assert "private" not in repr(counter.statements)
    assert counter.duration > 0
