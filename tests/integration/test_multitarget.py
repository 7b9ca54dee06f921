"""/probe in process against the session PostgreSQL: errors, filters, budget, idling, discovery."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from dbpulse.localpg import LocalPostgres
from dbpulse.settings import load_settings
from dbpulse.sidecar.multitarget import MultiTarget
from tests.integration.collector_helpers import wait_for
from tests.integration.probe_helpers import get, serve_multi


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _wait(url: str, predicate: Callable[[str], bool], timeout: float = 20.0) -> str:
    """The first 200 answer from ``url`` that satisfies ``predicate``."""

    def ready() -> str | None:
        status, text = get(url)
        return text if status == 200 and predicate(text) else None

    found: str = wait_for(ready, timeout=timeout, interval=0.2)
    return found


def _multi(pg: LocalPostgres, clock: Clock | None = None, **extra: Any) -> MultiTarget:
    settings = load_settings(
        interval=0.5,
        targets=extra.pop("targets", [{"name": "main", "dsn": pg.dsn}]),
        **extra,
    )
    return MultiTarget(settings, clock=clock) if clock else MultiTarget(settings)


@pytest.fixture
def served(pg: LocalPostgres) -> Iterator[str]:
    url, stop = serve_multi(_multi(pg))
    yield url
    stop()


def test_probe_refuses_bad_requests_with_clear_4xx(served: str) -> None:
    """No target is 400, an unknown name or a DSN is 404 naming the configured targets, a bad collector 400."""
    status, body = get(f"{served}/probe")
    assert (status, body) == (400, "exactly one target= parameter is required\n")
    status, body = get(f"{served}/probe?target=other")
    assert status == 404
    assert "unknown target 'other'" in body
    assert "configured targets: main" in body
    status, body = get(f"{served}/probe?target=postgresql://u:pw@10.0.0.1/x")
    assert status == 404
    assert "pw" not in body
    status, body = get(f"{served}/probe?target=main&collectors=activity,nonsense")
    assert status == 400
    assert "unknown collectors: nonsense" in body


def test_probe_serves_the_target_and_filters_collectors(served: str) -> None:
    """A probe answers pg_up for its target; collectors= keeps only those collectors' families."""
    text = _wait(
        f"{served}/probe?target=main",
        lambda t: 'pg_scrape_collector_success{collector="locks"} 1.0' in t,
    )
    assert "pg_up 1.0" in text
    assert "pg_locks_count" in text
    only = _wait(f"{served}/probe?target=main&collectors=activity", lambda t: "pg_up" in t)
    assert "pg_stat_activity_count" in only
    assert "pg_locks_count" not in only
    assert 'collector="locks"' not in only
    status, metrics = get(f"{served}/metrics")
    assert status == 200
    assert "dbpulse_targets_active 1.0" in metrics


def test_a_target_over_the_connection_budget_gets_503(pg: LocalPostgres) -> None:
    """With max_connections_total 1 the second target is refused with 503, the first keeps working."""
    targets = [{"name": "a", "dsn": pg.dsn}, {"name": "b", "dsn": pg.dsn}]
    url, stop = serve_multi(_multi(pg, targets=targets, max_connections_total=1))
    try:
        assert get(f"{url}/probe?target=a")[0] == 200
        status, body = get(f"{url}/probe?target=b")
        assert status == 503
        assert "connection budget exhausted" in body
        assert get(f"{url}/probe?target=a")[0] == 200
    finally:
        stop()


def _backends(pg: LocalPostgres, datname: str) -> int:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = 'dbpulse'",
            (datname,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_idle_target_is_dropped_and_its_connection_closed(pg: LocalPostgres, fresh_db: str) -> None:
    """A target unprobed past targets_idle_timeout loses its poller and its connection."""
    datname = fresh_db.rsplit("/", 1)[1]
    clock = Clock()
    multi = _multi(pg, clock, targets=[{"name": "idle", "dsn": fresh_db}], targets_idle_timeout=60)
    url, stop = serve_multi(multi)
    try:
        _wait(f"{url}/probe?target=idle", lambda t: "pg_up 1.0" in t)
        wait_for(lambda: _backends(pg, datname) == 1)
        clock.now = 30.0
        assert multi.sweep() == []
        clock.now = 61.0
        assert multi.sweep() == ["idle"]
        wait_for(lambda: _backends(pg, datname) == 0)
        assert "dbpulse_targets_active 0.0" in get(f"{url}/metrics")[1]
        # Probed again, it comes back.
        _wait(f"{url}/probe?target=idle", lambda t: "pg_up 1.0" in t)
    finally:
        stop()


def test_discovery_polls_each_database_and_follows_drops(pg: LocalPostgres) -> None:
    """Discovery runs migrations in every matching database and stops when one is dropped."""
    prefix = f"disc_{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}_{i}" for i in range(3)]
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(pg.dsn_for(names[1]), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, n int)")
        conn.execute("ALTER TABLE t ADD CONSTRAINT n_pos CHECK (n > 0) NOT VALID")
    multi = _multi(
        pg,
        targets=[{"name": "srv", "dsn": pg.dsn, "discovery": True}],
        discovery={"include": [f"{prefix}_.*"], "interval": 0.5},
        collectors={"migrations": {"interval": 1}},
    )
    url, stop = serve_multi(multi)
    try:
        probe = f"{url}/probe?target=srv"
        text = _wait(
            probe,
            lambda t: all(f'collector="migrations@{n}"}} 1.0' in t for n in names),
        )
        assert 'dbpulse_discovery_databases{state="polled"} 3.0' in text
        assert f'pg_constraint_not_valid{{conname="n_pos",datname="{names[1]}"' in text
        assert text.count("# TYPE pg_migration_findings gauge") == 1
        # Server-wide collectors run once, on the target's own database.
        assert text.count('pg_scrape_collector_success{collector="activity"}') == 1
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{names[0]}" WITH (FORCE)')
        text = _wait(probe, lambda t: f"migrations@{names[0]}" not in t)
        assert 'dbpulse_discovery_databases{state="polled"} 2.0' in text
        assert "pg_up 1.0" in text
    finally:
        stop()
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_single_target_and_targets_share_one_process(pg: LocalPostgres) -> None:
    """With dsn and targets both set, /metrics keeps the single target and /probe serves the rest."""
    from prometheus_client import generate_latest

    from dbpulse.sidecar.daemon import Sidecar

    settings = load_settings(dsn=pg.dsn, targets=[{"name": "other", "dsn": pg.dsn}])
    sidecar = Sidecar.build(settings)
    endpoints = sidecar.endpoints()
    assert sidecar.target is not None
    assert sidecar.multi is not None
    assert endpoints.probe is not None
    text = generate_latest(sidecar.registry).decode()
    assert text.count("# TYPE dbpulse_build_info gauge") == 1
    assert "pg_up 1.0" in text or "pg_up 0.0" in text
    assert "dbpulse_targets_active 0.0" in text
    # The split registries an HTTP cache serves together hold the same families, once each.
    split = generate_latest(sidecar.cached_registry) + generate_latest(sidecar.live_registry)
    assert split.decode().count("# TYPE dbpulse_build_info gauge") == 1
    assert "dbpulse_targets_active 0.0" in split.decode()
    sidecar.close()
