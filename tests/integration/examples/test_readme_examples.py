"""The README's embedding programs (FastAPI and Flask) run exactly as written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

import dbpulse
from tests.integration.inprocess.conftest import sqlalchemy_url

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_example(name: str) -> str:
    """The ```python block right after ``<!-- readme-example: NAME -->`` in README.md."""
    found = re.search(
        rf"<!-- readme-example: {name} -->\n```python\n(.*?)\n```",
        README.read_text(encoding="utf-8"),
        re.S,
    )
    assert found is not None, name
    return found.group(1)


@pytest.fixture
def run_example(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Runs a README block as a module with DATABASE_URL set; uninstruments its engine after."""
    monkeypatch.setenv("DATABASE_URL", sqlalchemy_url(fresh_db))
    ran: list[dict[str, Any]] = []

    def run(name: str) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": f"readme_{name}"}
        exec(compile(readme_example(name), f"README.md:{name}", "exec"), namespace)  # noqa: S102 - our README
        ran.append(namespace)
        return namespace

    yield run
    for namespace in ran:
        dbpulse.instrument(namespace["engine"]).uninstrument()
        namespace["engine"].dispose()


def _pool_series(body: str, pool_name: str) -> list[str]:
    return [
        line
        for line in body.splitlines()
        if line.startswith("db_client_connection_count{") and f'pool_name="{pool_name}"' in line
    ]


def test_readme_fastapi_program(run_example: Any) -> None:
    """The FastAPI block: a query route counted per request, /metrics in the app's router, the health route."""
    namespace = run_example("fastapi")
    pool_name = dbpulse.instrument(namespace["engine"]).pool_name
    with TestClient(namespace["app"]) as client:
        now = client.get("/now")
        metrics = client.get("/metrics")
        health = client.get("/health/database")
    assert now.status_code == 200
    assert now.headers["X-DB-Query-Count"] == "1"
    assert metrics.status_code == 200
    assert len(_pool_series(metrics.text, pool_name)) == 2  # idle and used
    assert health.status_code == 200
    assert health.json()["status"] == "healthy"
    assert (
        REGISTRY.get_sample_value(
            "db_client_connection_count", {"pool_name": pool_name, "state": "used"}
        )
        == 0
    )


def test_readme_flask_program(run_example: Any) -> None:
    """The Flask block: app.wsgi_app = DBPulseWSGIMiddleware(app.wsgi_app) counts per request; /metrics route."""
    namespace = run_example("flask")
    pool_name = dbpulse.instrument(namespace["engine"]).pool_name
    client = namespace["app"].test_client()
    now = client.get("/now")
    metrics = client.get("/metrics")
    assert now.status_code == 200
    assert now.headers["X-DB-Query-Count"] == "1"
    assert len(_pool_series(metrics.get_data(as_text=True), pool_name)) == 2
