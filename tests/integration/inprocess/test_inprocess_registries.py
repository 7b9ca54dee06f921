"""Metric registries: shared between engines, the global one by default, none at import; config info."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from dbpulse.inprocess import lint
from dbpulse.inprocess.instrumentation import instrument
from dbpulse.localpg import LocalPostgres
from tests.integration.inprocess.conftest import value
from tests.logcapture import capture_logs


def test_engines_share_a_registry_under_their_own_pool_names(
    registry: CollectorRegistry, pg: LocalPostgres, fresh_db: str
) -> None:
    """Two engines, one registry: shared metric objects, host:port/dbname names, no password."""
    db = fresh_db.rsplit("/", 1)[1]
    a = create_engine(
        pg.dsn_for(db, password="hunter2").replace("postgresql://", "postgresql+psycopg://")
    )
    b = create_engine(pg.dsn_for("postgres").replace("postgresql://", "postgresql+psycopg://"))
    c = create_engine(pg.dsn_for("postgres").replace("postgresql://", "postgresql+psycopg://"))
    ia, ib, ic = (instrument(e, registry=registry) for e in (a, b, c))
    try:
        assert ia.pool_name == f"127.0.0.1:{pg.port}/{db}"
        assert ib.pool_name == f"127.0.0.1:{pg.port}/postgres"
        assert ic.pool_name == f"127.0.0.1:{pg.port}/postgres#2"  # same URL, still distinct
        assert ia.metrics is ib.metrics
        for e in (a, b, c):
            with e.connect() as conn:
                conn.execute(text("SELECT 1"))
        exposition = prometheus_client.generate_latest(registry).decode()
        assert "hunter2" not in exposition
        for inst in (ia, ib, ic):
            assert (
                value(
                    registry, "db_client_connection_count", pool_name=inst.pool_name, state="idle"
                )
                == 1
            )
    finally:
        for inst, e in ((ia, a), (ib, b), (ic, c)):
            inst.uninstrument()
            e.dispose()


ROOT = Path(__file__).resolve().parents[3]

# Run in a fresh interpreter: in a full pytest run another test has already put a metric
# set in the global registry (test_default_registry_is_the_global_one does, on purpose).
_IMPORT_AND_LIST = """
import importlib, json, prometheus_client
for mod in ("instrumentation", "metrics", "pool", "queries", "middleware", "scope"):
    importlib.import_module(f"dbpulse.inprocess.{mod}")
print(json.dumps(sorted(m.name for m in prometheus_client.REGISTRY.collect())))
"""


def test_nothing_is_registered_at_import() -> None:
    """Importing the in-process modules adds no metric to the global registry (checked in a fresh interpreter)."""
    path = os.pathsep.join([str(ROOT / "exporter"), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_AND_LIST],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names: list[str] = json.loads(done.stdout)
    assert "python_info" in names  # prometheus_client's own default collectors: the listing works
    assert not any(n.startswith("db_client_") for n in names)


def test_config_lint_warns_and_exports_info(
    registry: CollectorRegistry, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pre_ping, no statement_timeout and NullPool outside tests: three warnings, one info series."""
    monkeypatch.setattr(lint, "running_under_tests", lambda: False)
    monkeypatch.setattr("dbpulse.inprocess.instrumentation.running_under_tests", lambda: False)
    engine = create_engine(pg_url, poolclass=NullPool)
    with capture_logs() as logs:
        inst = instrument(engine, registry=registry)
    checks = sorted(e["check"] for e in logs if e["event"] == "pool configuration")
    assert checks == ["no_statement_timeout", "null_pool"]  # NullPool is not pre-pinged
    assert (
        value(
            registry,
            "db_client_pool_config_info",
            pool_name=inst.pool_name,
            pool_class="NullPool",
            size="",
            max_overflow="",
            timeout="",
            pre_ping="false",
            recycle="-1",
        )
        == 1
    )
    inst.uninstrument()
    good = create_engine(
        pg_url,
        pool_pre_ping=True,
        pool_size=3,
        connect_args={"options": "-c statement_timeout=5000"},
    )
    with capture_logs() as logs:
        inst = instrument(good, registry=registry)
    assert [e for e in logs if e["event"] == "pool configuration"] == []
    assert (
        value(
            registry,
            "db_client_pool_config_info",
            pool_name=inst.pool_name,
            pool_class="QueuePool",
            size="3",
            max_overflow="10",
            timeout="30",
            pre_ping="true",
            recycle="-1",
        )
        == 1
    )
    inst.uninstrument()
    good.dispose()


def test_default_registry_is_the_global_one() -> None:
    """registry=None registers the metric set in prometheus_client.REGISTRY (once)."""
    engine = create_engine("sqlite://")
    inst = instrument(engine, pool_name="global-registry-test")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        sample = prometheus_client.REGISTRY.get_sample_value(
            "db_client_connection_count", {"pool_name": "global-registry-test", "state": "idle"}
        )
        assert sample == 1
    finally:
        inst.uninstrument()
        engine.dispose()
