"""Unit tests for the pure build step of the activity collector."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from dbpulse.sidecar.base import Context
from dbpulse.sidecar.collectors.activity import ActivityCollector

CTX = Context("t", 150000, 0.0)
SETTINGS = [
    {"name": "max_connections", "value": 100},
    {"name": "superuser_reserved_connections", "value": 3},
]


def _row(**kw: Any) -> dict[str, Any]:
    row = {
        "datname": "app",
        "usename": "web",
        "application_name": "api",
        "state": "idle",
        "wait_event_type": "Client",
        "backend_type": "client backend",
        "xact_age_seconds": None,
        "query_age_seconds": 1.0,
        "state_age_seconds": 1.0,
    }
    row.update(kw)
    return row


def _samples(
    activity: list[dict[str, Any]],
    settings: Sequence[dict[str, Any]] = SETTINGS,
    databases: Sequence[dict[str, Any]] = (),
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    # The database list comes from the runtime, in the context, not from the rows.
    ctx = replace(CTX, databases=tuple(str(d["datname"]) for d in databases))
    result = ActivityCollector().build(
        {"activity": activity, "settings": list(settings)}, ctx, None
    )
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in result.families:
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_counts_group_by_labels_and_nulls_become_empty() -> None:
    """Backends are counted per label set and NULL columns become empty label values."""
    rows = [
        _row(),
        _row(),
        _row(state=None, usename=None, application_name=None, wait_event_type=None),
    ]
    s = _samples(rows)
    labels = {"datname": "app", "usename": "web", "application_name": "api"}
    assert _get(s, "pg_stat_activity_count", state="idle", wait_event_type="Client", **labels) == 2
    assert (
        _get(
            s,
            "pg_stat_activity_count",
            datname="app",
            state="",
            usename="",
            application_name="",
            wait_event_type="",
        )
        == 1
    )


def test_background_processes_are_not_clients() -> None:
    """Autovacuum and other background processes count neither as sessions nor toward saturation."""
    rows = [
        _row(),
        _row(backend_type="autovacuum worker", state="active", xact_age_seconds=500.0),
        _row(datname=None, backend_type="checkpointer", state=None),
    ]
    s = _samples(rows)
    assert sum(v for (name, _), v in s.items() if name == "pg_stat_activity_count") == 1
    assert _get(s, "pg_stat_activity_max_tx_duration", datname="app", state="idle") == 0
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
    assert _get(s, "pg_stat_activity_max_tx_duration", datname="app", state="active") == 9.0
    assert _get(s, "pg_stat_activity_max_tx_duration", datname="app", state="idle") == 0.0
    assert (
        _get(s, "pg_stat_activity_max_tx_duration", datname="app", state="idle in transaction")
        == 30.0
    )
    assert _get(s, "pg_stat_activity_max_query_duration_seconds", datname="app") == 4.0


def test_idle_in_transaction_includes_aborted_and_uses_state_change() -> None:
    """Both idle-in-transaction states count, and their age is the state_change age."""
    rows = [
        _row(state="idle in transaction", xact_age_seconds=60.0, state_age_seconds=10.0),
        _row(state="idle in transaction (aborted)", xact_age_seconds=70.0, state_age_seconds=40.0),
    ]
    s = _samples(rows)
    assert _get(s, "pg_stat_activity_idle_in_transaction_count", datname="app") == 2
    assert _get(s, "pg_stat_activity_idle_in_transaction_max_seconds", datname="app") == 40.0


def test_quiet_databases_report_zero() -> None:
    """A connectable database with no sessions gets zeros, not missing series."""
    s = _samples([], databases=[{"datname": "quiet"}])
    empty = {"usename": "", "application_name": "", "wait_event_type": ""}
    for state in ("active", "idle", "idle in transaction", "idle in transaction (aborted)"):
        assert _get(s, "pg_stat_activity_count", datname="quiet", state=state, **empty) == 0
        assert _get(s, "pg_stat_activity_max_tx_duration", datname="quiet", state=state) == 0
    assert _get(s, "pg_stat_activity_idle_in_transaction_count", datname="quiet") == 0
    assert _get(s, "pg_stat_activity_max_query_duration_seconds", datname="quiet") == 0
    assert _get(s, "pg_connections_saturation_ratio") == 0


def test_negative_ages_are_clamped() -> None:
    """A transaction that began after the poll's now() shows age 0, never negative."""
    s = _samples([_row(state="active", xact_age_seconds=-0.002, query_age_seconds=-0.001)])
    assert _get(s, "pg_stat_activity_max_tx_duration", datname="app", state="active") == 0.0
    assert _get(s, "pg_stat_activity_max_query_duration_seconds", datname="app") == 0.0


def test_saturation_subtracts_pg16_reserved_connections() -> None:
    """On 16+ reserved_connections is removed from the usable ceiling too."""
    settings = [*SETTINGS, {"name": "reserved_connections", "value": 7}]
    s = _samples([_row(), _row(), _row()], settings=settings)
    assert _get(s, "pg_connections_saturation_ratio") == 3 / 90
    # The settings themselves belong to the settings collector: no duplicate family.
    assert not any(name.startswith("pg_settings_") for name, _ in s)


def test_older_server_rows_without_backend_type() -> None:
    """Pre-10 rows (no backend_type) are all treated as client backends."""
    row = _row()
    del row["backend_type"]
    s = _samples([row], settings=[])
    assert sum(v for (name, _), v in s.items() if name == "pg_stat_activity_count") == 1
    assert not any(name == "pg_connections_saturation_ratio" for name, _ in s)


def test_unusable_ceiling_gives_no_ratio() -> None:
    """A ceiling that leaves no ordinary slots yields no ratio instead of dividing by zero."""
    settings = [
        {"name": "max_connections", "value": 3},
        {"name": "superuser_reserved_connections", "value": 3},
    ]
    s = _samples([_row()], settings=settings)
    assert not any(name == "pg_connections_saturation_ratio" for name, _ in s)
