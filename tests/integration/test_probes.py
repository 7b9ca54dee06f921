"""Custom probes run by the real sidecar wiring against a real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dbpulse.localpg import LocalPostgres
from dbpulse.settings import load_settings
from dbpulse.sidecar.daemon import Sidecar
from tests.integration.collector_helpers import dbname
from tests.logcapture import capture_logs

BACKFILL = {
    "name": "backfill",
    "sql": "SELECT count(*) FILTER (WHERE ref IS NULL) AS remaining, count(*) AS total FROM orders",
    "remaining_column": "remaining",
    "total_column": "total",
}


def _sidecar(dsn: str, probes: list[dict[str, Any]]) -> Sidecar:
    return Sidecar.build(load_settings(dsn=dsn, probes=probes))


def _samples(sidecar: Sidecar, name: str) -> list[tuple[dict[str, str], float]]:
    text = generate_latest(sidecar.registry).decode()
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def _success(sidecar: Sidecar) -> dict[str, float]:
    return {
        labels["collector"]: value
        for labels, value in _samples(sidecar, "pg_scrape_collector_success")
        if labels["collector"].startswith("probe:")
    }


def test_backfill_in_batches_reports_remaining_going_down(fresh_db: str) -> None:
    """While a batched backfill runs, probe:backfill exports remaining rows 400, 300, ... 0."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, ref int)")
        conn.execute("INSERT INTO orders SELECT g, NULL FROM generate_series(1, 400) g")
    sidecar = _sidecar(fresh_db, [BACKFILL])
    seen: list[float] = []
    try:
        with psycopg.connect(fresh_db, autocommit=True) as app:
            for batch in range(5):
                assert sidecar.poller.run_once("probe:backfill")
                seen.append(_samples(sidecar, "dbpulse_probe_backfill_remaining")[0][1])
                assert _samples(sidecar, "dbpulse_probe_backfill_total") == [({}, 400.0)]
                app.execute(
                    "UPDATE orders SET ref = id WHERE id > %s AND id <= %s",
                    (batch * 100, (batch + 1) * 100),
                )
    finally:
        sidecar.close()
    assert seen == [400.0, 300.0, 200.0, 100.0, 0.0]
    assert _success(sidecar) == {"probe:backfill": 1.0}


def test_failing_probes_do_not_break_the_others(fresh_db: str) -> None:
    """Division by zero, text values and a timeout fail their own job; the good probe exports."""
    probes: list[dict[str, Any]] = [
        {"name": "good", "sql": "SELECT 42 AS answer"},
        {"name": "divzero", "sql": "SELECT 1 / 0 AS x"},
        {"name": "wordy", "sql": "SELECT 'secret-literal' AS word"},
        {"name": "slow", "sql": "SELECT pg_sleep(3) IS NULL AS s, 1 AS n", "timeout": 0.2},
    ]
    sidecar = _sidecar(fresh_db, probes)
    try:
        with capture_logs() as logs:
            outcome = sidecar.poller.run_all_once()
    finally:
        sidecar.close()
    assert {k: v for k, v in outcome.items() if k.startswith("probe:")} == {
        "probe:good": True,
        "probe:divzero": False,
        "probe:wordy": False,
        "probe:slow": False,
    }
    assert _samples(sidecar, "dbpulse_probe_good_answer") == [({}, 42.0)]
    assert _success(sidecar)["probe:wordy"] == 0.0
    logged = " ".join(str(v) for entry in logs for v in entry.values())
    assert "column 'word' is str, not a number" in logged
    assert "statement_timeout (0.2s)" in logged
    assert "secret-literal" not in logged  # a probe's data never reaches the log


def test_probe_cannot_write_even_by_committing_first(fresh_db: str) -> None:
    """A probe runs read-only: DELETE fails, and 'COMMIT; DELETE' is refused as two statements."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (id int)")
        conn.execute("INSERT INTO keep VALUES (1), (2)")
    probes = [
        {"name": "writer", "sql": "DELETE FROM keep RETURNING id AS n"},
        {"name": "escape", "sql": "COMMIT; DELETE FROM keep RETURNING id AS n"},
    ]
    sidecar = _sidecar(fresh_db, probes)
    try:
        assert not sidecar.poller.run_once("probe:writer")
        assert not sidecar.poller.run_once("probe:escape")
    finally:
        sidecar.close()
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM keep").fetchone() == (2,)


def test_label_columns_make_one_series_per_row(fresh_db: str) -> None:
    """Declared label columns become labels; a user-given metric prefix names the gauges."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE jobs (state text)")
        conn.execute("INSERT INTO jobs VALUES ('queued'), ('queued'), ('done')")
    probe = {
        "name": "jobs",
        "sql": "SELECT state, count(*) AS n FROM jobs GROUP BY state",
        "labels": ["state"],
        "metric": "app_jobs",
    }
    sidecar = _sidecar(fresh_db, [probe])
    try:
        assert sidecar.poller.run_once("probe:jobs")
    finally:
        sidecar.close()
    by_state = {labels["state"]: value for labels, value in _samples(sidecar, "app_jobs_n")}
    assert by_state == {"done": 1.0, "queued": 2.0}


def test_a_pg_monitor_role_is_told_the_grant_a_probe_needs(
    pg: LocalPostgres, fresh_db: str
) -> None:
    """A pg_monitor-only role's probe of an application table fails in one line naming the
    GRANT it needs (table, then schema), and succeeds once that grant is given."""
    role = f"mon_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(fresh_db, autocommit=True) as owner:
        owner.execute(f"CREATE ROLE {role} LOGIN IN ROLE pg_monitor")
        owner.execute("CREATE TABLE orders (id int)")
        owner.execute("CREATE SCHEMA billing")
        owner.execute("CREATE TABLE billing.invoices (id int)")
    probes: list[dict[str, Any]] = [
        {"name": "orders", "sql": "SELECT count(*) AS n FROM orders"},
        {"name": "invoices", "sql": "SELECT count(*) AS n FROM billing.invoices"},
    ]
    dsn = pg.dsn_for(dbname(fresh_db), user=role)
    try:
        sidecar = _sidecar(dsn, probes)
        try:
            with capture_logs() as logs:
                denied = sidecar.poller.run_all_once()
            with psycopg.connect(fresh_db, autocommit=True) as owner:
                owner.execute(f"GRANT SELECT ON orders TO {role}")
                owner.execute(f"GRANT USAGE ON SCHEMA billing TO {role}")
                owner.execute(f"GRANT SELECT ON billing.invoices TO {role}")
            granted = sidecar.poller.run_all_once()
        finally:
            sidecar.close()
    finally:
        with psycopg.connect(fresh_db, autocommit=True) as owner:
            owner.execute(f"DROP OWNED BY {role}")
            owner.execute(f"DROP ROLE {role}")
    assert (denied["probe:orders"], denied["probe:invoices"]) == (False, False)
    assert (granted["probe:orders"], granted["probe:invoices"]) == (True, True)
    logged = " | ".join(str(entry.get("error", "")) for entry in logs)
    assert f"run GRANT SELECT ON orders TO {role} " in logged
    assert f"run GRANT USAGE ON SCHEMA billing TO {role} " in logged
    assert "grant pg_monitor" not in logged  # the role has it: that advice would mislead
