"""Unit tests for the pure build step of the activity collector."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from dbpulse.sidecar.base import Context
from dbpulse.sidecar.collectors.activity import STATES, ActivityCollector, build_families

CTX = Context("t", 150000, 0.0, server="db:5432")
SETTINGS = [
    {"name": "max_connections", "value": 100},
    {"name": "superuser_reserved_connections", "value": 3},
]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _row(**kw: Any) -> dict[str, Any]:
    row = {
        "datname": "app",
        "usename": "web",
        "application_name": "api",
        "state": "idle",
        "wait_event_type": "Client",
        "wait_event": "ClientRead",
        "backend_type": "client backend",
        "is_self": False,
        "xact_age_seconds": None,
        "query_age_seconds": 1.0,
        "state_age_seconds": 1.0,
    }
    row.update(kw)
    return row


def _samples(
    activity: list[dict[str, Any]],
    settings: Sequence[dict[str, Any]] = SETTINGS,
    databases: Sequence[str] = ("app",),
) -> Samples:
    rows = {
        "activity": activity,
        "settings": list(settings),
        "all_databases": [{"datname": d} for d in databases],
    }
    result = ActivityCollector().build(rows, replace(CTX), None)
    out: Samples = {}
    for fam in result.families:
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _count(samples: Samples, datname: str, state: str) -> float:
    return _get(samples, "pg_stat_activity_count", datname=datname, state=state, server="db:5432")


def _detail(samples: Samples) -> dict[tuple[tuple[str, str], ...], float]:
    return {k: v for (n, k), v in samples.items() if n == "pg_stat_activity_detail_count"}


def test_counts_per_database_and_state_with_postgres_exporters_labels() -> None:
    """pg_stat_activity_count has postgres_exporter's labels: datname, state, server."""
    s = _samples([_row(), _row(), _row(state="active")])
    assert _count(s, "app", "idle") == 2
    assert _count(s, "app", "active") == 1
    labels = {tuple(k for k, _ in key) for (n, key) in s if n == "pg_stat_activity_count"}
    assert labels == {("datname", "server", "state")}


def test_detail_groups_by_wait_event_and_has_no_zero_series() -> None:
    """The detail family groups by user, application, backend type and wait event; no zeros."""
    rows = [
        _row(),
        _row(),
        _row(state=None, usename=None, application_name=None, wait_event_type=None),
    ]
    detail = _detail(_samples(rows, databases=("app", "quiet")))
    assert sorted(detail.values()) == [1.0, 2.0]
    assert all(dict(key)["datname"] == "app" for key in detail)
    nulls = next(dict(k) for k, v in detail.items() if v == 1.0)
    assert nulls["usename"] == nulls["application_name"] == nulls["state"] == ""


def test_detail_is_bounded_and_sums_stay_exact() -> None:
    """Many distinct application names fold into (other) series; the total stays the same."""
    rows = [_row(application_name=f"app-{i}") for i in range(50)]
    rows += [_row(application_name="big") for _ in range(10)]
    result = build_families(rows, SETTINGS, ["app"], detail_max=20)
    family = next(f for f in result if f.name == "pg_stat_activity_detail_count")
    assert len(family.samples) <= 20
    assert sum(s.value for s in family.samples) == 60
    names = {s.labels["application_name"] for s in family.samples}
    assert "big" in names
    assert "(other)" in names


def test_every_backend_of_a_database_counts_as_postgres_exporter_counts() -> None:
    """Autovacuum workers and the exporter's own session count; background processes without a database do not."""
    rows = [
        _row(),
        _row(backend_type="autovacuum worker", state="active", xact_age_seconds=500.0),
        _row(state="active", is_self=True, application_name="dbpulse"),
        _row(datname=None, backend_type="checkpointer", state=None),
    ]
    s = _samples(rows)
    total = sum(v for (name, _), v in s.items() if name == "pg_stat_activity_count")
    assert total == 3
    max_tx = _get(
        s, "pg_stat_activity_max_tx_duration", datname="app", state="active", server="db:5432"
    )
    assert max_tx == 500.0
    # Saturation counts client backends other than dbpulse's own.
    assert _get(s, "pg_connections_saturation_ratio") == 1 / 97


def test_oldest_transaction_and_longest_active_query() -> None:
    """max_tx_duration is the oldest xact per (datname, state); max query only counts active ones."""
    rows = [
        _row(state="active", xact_age_seconds=5.0, query_age_seconds=4.0),
        _row(state="active", xact_age_seconds=9.0, query_age_seconds=2.0),
        _row(state="idle", xact_age_seconds=None, query_age_seconds=300.0),
        _row(state="idle in transaction", xact_age_seconds=30.0, state_age_seconds=25.0),
    ]
    s = _samples(rows)

    def tx(state: str) -> float:
        labels = {"datname": "app", "state": state, "server": "db:5432"}
        return _get(s, "pg_stat_activity_max_tx_duration", **labels)

    assert tx("active") == 9.0
    assert tx("idle") == 0.0
    assert tx("idle in transaction") == 30.0
    assert _get(s, "pg_stat_activity_max_query_duration_seconds", datname="app") == 4.0


def test_idle_in_transaction_includes_aborted_and_uses_state_change() -> None:
    """Both idle-in-transaction states count, and their age is the state_change age."""
    rows = [
        _row(state="idle in transaction", xact_age_seconds=60.0, state_age_seconds=10.0),
        _row(state="idle in transaction (aborted)", xact_age_seconds=70.0, state_age_seconds=40.0),
    ]
    s = _samples(rows)
    assert _count(s, "app", "idle in transaction") == 1
    assert _count(s, "app", "idle in transaction (aborted)") == 1
    assert _get(s, "pg_stat_activity_idle_in_transaction_max_seconds", datname="app") == 40.0


def test_every_database_gets_postgres_exporters_six_states() -> None:
    """Every database of pg_database, templates included, gets a zero for each of the six states."""
    s = _samples([], databases=("quiet", "template0"))
    for datname in ("quiet", "template0"):
        for state in STATES:
            assert _count(s, datname, state) == 0
    assert len(STATES) == 6
    assert _detail(s) == {}
    assert _get(s, "pg_stat_activity_max_query_duration_seconds", datname="quiet") == 0
    assert _get(s, "pg_connections_saturation_ratio") == 0


def test_negative_ages_are_clamped() -> None:
    """A transaction that began after the poll's now() shows age 0, never negative."""
    s = _samples([_row(state="active", xact_age_seconds=-0.002, query_age_seconds=-0.001)])
    labels = {"datname": "app", "state": "active", "server": "db:5432"}
    assert _get(s, "pg_stat_activity_max_tx_duration", **labels) == 0.0
    assert _get(s, "pg_stat_activity_max_query_duration_seconds", datname="app") == 0.0


def test_saturation_subtracts_pg16_reserved_connections() -> None:
    """On 16+ reserved_connections is removed from the usable ceiling too."""
    settings = [*SETTINGS, {"name": "reserved_connections", "value": 7}]
    s = _samples([_row(), _row(), _row()], settings=settings)
    assert _get(s, "pg_connections_saturation_ratio") == 3 / 90
    assert not any(name.startswith("pg_settings_") for name, _ in s)  # the settings collector's


def test_unusable_ceiling_gives_no_ratio() -> None:
    """A ceiling that leaves no ordinary slots yields no ratio instead of dividing by zero."""
    settings = [
        {"name": "max_connections", "value": 3},
        {"name": "superuser_reserved_connections", "value": 3},
    ]
    s = _samples([_row()], settings=settings)
    assert not any(name == "pg_connections_saturation_ratio" for name, _ in s)
