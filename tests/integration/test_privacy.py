"""Secrets and privacy: passwords and query literals never leave dbpulse; missing privileges are named."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import create_engine, exc, text

from dbpulse.inprocess.instrumentation import instrument
from dbpulse.localpg import LocalPostgres
from dbpulse.logging import configure_logging
from dbpulse.settings import load_settings
from dbpulse.sidecar.daemon import Sidecar
from tests.integration.collector_helpers import wait_for
from tests.logcapture import capture_logs
from tests.sidecar_process import SidecarProcess, fetch, value

ADMIN_PW = "Adm1n-pw-7731"
MONITOR_PW = "M0nitor-pw-4417"
APP_PW = "App-pw-9902-xyz"
WRONG_PW = "Wr0ng-pw-5519"
EMAIL = "alice.secret@example.com"
CARD = "4111111111111111"
NOTE = "Sup3r-Secret-Literal"
SECRETS = [ADMIN_PW, MONITOR_PW, APP_PW, WRONG_PW, EMAIL, CARD, NOTE]
DEBUG_VIEWS = ["activity", "statements", "locks", "blocking", "progress", "database", "migrations"]

HBA = """
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
"""


@pytest.fixture(scope="module")
def scram() -> Iterator[LocalPostgres]:
    """A cluster with SCRAM password authentication on TCP, roles admin/monitor/app."""
    with LocalPostgres(settings={"password_encryption": "'scram-sha-256'"}) as pg:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute(f"ALTER ROLE postgres PASSWORD '{ADMIN_PW}'")
            conn.execute(f"CREATE ROLE dbpulse_mon LOGIN PASSWORD '{MONITOR_PW}'")
            conn.execute("GRANT pg_monitor TO dbpulse_mon")
            conn.execute(f"CREATE ROLE app LOGIN PASSWORD '{APP_PW}'")
            conn.execute("GRANT CREATE ON SCHEMA public TO app")
            (pg.datadir / "pg_hba.conf").write_text(HBA, encoding="utf-8")
            conn.execute("SELECT pg_reload_conf()")
        yield pg


def _grep(label: str, haystack: str) -> list[str]:
    return [f"{label}: {s!r}" for s in SECRETS if s.lower() in haystack.lower()]


def test_no_password_or_literal_in_anything_dbpulse_emits(scram: LocalPostgres) -> None:
    """Sidecar (debug logs, /metrics, every /debug view) and instrumented app (logs, metrics, spans) never show a password or a literal."""
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(scram.dsn, connect_timeout=5).close()  # auth is real: no password, no entry
    admin_dsn = scram.dsn_for(password=ADMIN_PW)
    app_url = scram.dsn_for(user="app", password=APP_PW).replace(
        "postgresql://", "postgresql+psycopg://"
    )

    # The application: literals inline, as parameters, in an error's DETAIL; traced and logged.
    saved = structlog.get_config()
    app_log = io.StringIO()
    configure_logging("debug", "json", stream=app_log)
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    registry = CollectorRegistry()
    engine = create_engine(app_url, pool_size=2)
    inst = instrument(engine, registry=registry, slow_query_seconds=1e-6, tracer_provider=provider)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE customers (email text UNIQUE, card bigint, note text)"))
            conn.execute(text(f"INSERT INTO customers VALUES ('{EMAIL}', {CARD}, '{NOTE}')"))
            conn.execute(
                text("SELECT * FROM customers WHERE email = :e AND card = :c AND note = :n"),
                {"e": EMAIL, "c": int(CARD), "n": NOTE},
            )
        with pytest.raises(exc.IntegrityError, match="already exists"), engine.begin() as conn:
            conn.execute(text("INSERT INTO customers VALUES (:e, 1, 'x')"), {"e": EMAIL})
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            # PostgreSQL 15 keeps a utility statement's literals in pg_stat_statements.
            admin.execute(f"ALTER ROLE app PASSWORD '{APP_PW}'")

        # The sidecar at debug level, started after the workload so its first text fetch
        # sees those statements; a query with a literal stays active while it polls.
        side = SidecarProcess(
            scram.dsn_for(user="dbpulse_mon", password=MONITOR_PW),
            interval=0.3,
            env={"DBPULSE_LOG_LEVEL": "debug"},
        )

        def hold() -> None:
            app_dsn = scram.dsn_for(user="app", password=APP_PW)
            with psycopg.connect(app_dsn) as conn:
                conn.execute(f"SELECT pg_sleep(2), '{EMAIL}'")

        holder = threading.Thread(target=hold)
        try:
            holder.start()
            side.wait_for(
                lambda s: (
                    value(s, "pg_up") == 1.0
                    and value(s, "pg_scrape_collector_success", collector="statements") == 1.0
                    and value(s, "pg_scrape_collector_success", collector="activity") == 1.0
                ),
                timeout=30,
            )
            time.sleep(1.0)  # a few polls while the literal query is active
            leaks: list[str] = []
            status, body = fetch(side.url + "/metrics")
            assert status == 200
            leaks += _grep("/metrics", body)
            for view in DEBUG_VIEWS:
                status, body = fetch(f"{side.url}/debug/{view}")
                assert status == 200, view
                leaks += _grep(f"/debug/{view}", body)
                if view == "statements":
                    # Texts are served (scrubbed), the password-bearing utility one too.
                    assert "customers" in body
                    assert "ALTER ROLE app PASSWORD" in body
            leaks += _grep("/readyz", fetch(side.url + "/readyz")[1])
        finally:
            holder.join()
            assert side.stop() == 0
        sidecar_log = "".join(side.output)
        assert '"level": "info"' in sidecar_log
        leaks += _grep("sidecar log", sidecar_log)

        # A wrong password: the failure is logged, the password is not.
        wrong = SidecarProcess(
            scram.dsn_for(user="dbpulse_mon", password=WRONG_PW),
            env={"DBPULSE_LOG_LEVEL": "debug"},
        )
        try:
            wrong.wait_for(lambda s: value(s, "pg_up") == 0.0)
            leaks += _grep("/readyz (wrong password)", fetch(wrong.url + "/readyz")[1])
        finally:
            wrong.stop()
        wrong_log = "".join(wrong.output)
        assert "password authentication failed" in wrong_log
        leaks += _grep("sidecar log (wrong password)", wrong_log)

        leaks += _grep("app /metrics", generate_latest(registry).decode())
        app_text = app_log.getvalue()
        assert "slow query" in app_text  # every statement was logged as slow (threshold 1 µs)
        leaks += _grep("app log", app_text)
        finished = spans.get_finished_spans()
        assert finished, "no span was recorded; the span check would prove nothing"
        for span in finished:
            dumped = span.to_json()
            leaks += _grep(f"span {span.name}", dumped)
        assert leaks == []
    finally:
        inst.uninstrument()
        engine.dispose()
        structlog.configure(**saved)


def test_role_without_pg_monitor_is_told_what_is_missing(scram: LocalPostgres) -> None:
    """A role without pg_monitor: collectors run, but a warning names what is hidden and the GRANT that fixes it."""
    admin_dsn = scram.dsn_for(password=ADMIN_PW)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute("CREATE ROLE plain LOGIN PASSWORD 'plain-pw'")
    other = psycopg.connect(admin_dsn)
    sidecar = Sidecar.build(load_settings(dsn=scram.dsn_for(user="plain", password="plain-pw")))
    try:
        other.execute("SELECT 1")  # another role's idle-in-transaction session
        with capture_logs() as logs:
            outcome = sidecar.poller.run_all_once()
        body = generate_latest(sidecar.registry).decode()
    finally:
        other.rollback()
        other.close()
        sidecar.close()
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute("DROP ROLE plain")
    assert outcome == dict.fromkeys(outcome, True)
    warnings = [e for e in logs if e.get("event") == "missing privilege"]
    assert len(warnings) == 1, logs
    problem = warnings[0]["problem"]
    assert "lacks pg_monitor" in problem
    assert "GRANT pg_monitor TO plain" in problem
    # What the warning is about: the other role's open transaction is invisible.
    assert 'pg_stat_activity_idle_in_transaction_max_seconds{datname="postgres"} 0.0' in body


def test_pg_monitor_role_gets_no_privilege_warning(scram: LocalPostgres) -> None:
    """The documented role (LOGIN + pg_monitor) runs every collector with no privilege warning."""
    sidecar = Sidecar.build(
        load_settings(dsn=scram.dsn_for(user="dbpulse_mon", password=MONITOR_PW))
    )
    try:
        with capture_logs() as logs:
            outcome = sidecar.poller.run_all_once()
    finally:
        sidecar.close()
    assert outcome == dict.fromkeys(outcome, True)
    assert not [e for e in logs if e.get("event") == "missing privilege"]


def test_database_without_connect_privilege_is_named(scram: LocalPostgres) -> None:
    """REVOKE CONNECT on the database: pg_up 0 and /readyz names 'permission denied for database'; GRANT CONNECT recovers."""
    admin_dsn = scram.dsn_for(password=ADMIN_PW)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute("CREATE DATABASE locked")
        admin.execute("REVOKE CONNECT ON DATABASE locked FROM PUBLIC")
    sidecar = Sidecar.build(
        load_settings(dsn=scram.dsn_for("locked", user="dbpulse_mon", password=MONITOR_PW))
    )
    try:
        assert not any(sidecar.poller.run_all_once().values())
        ready, reason = sidecar.snapshot.readiness(60)
        assert not ready
        assert "permission denied for database" in reason, reason
        assert MONITOR_PW not in reason
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute("GRANT CONNECT ON DATABASE locked TO dbpulse_mon")
        # Polls are refused until the 1 s reconnect backoff ends; then one gets through.
        assert wait_for(lambda: sidecar.poller.run_once("database"), timeout=10)
    finally:
        sidecar.close()
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute("DROP DATABASE locked WITH (FORCE)")
