"""Unit tests for the pure build steps of the replication and replication_slots collectors."""

from __future__ import annotations

from typing import Any

from prometheus_client.metrics_core import Metric

from dbpulse.sidecar.base import Context
from dbpulse.sidecar.collectors.replication import ReplicationCollector
from dbpulse.sidecar.collectors.replication_slots import ReplicationSlotsCollector

CTX = Context("t", 150000, 0.0, server="db:5432")
SERVER = ("server", "db:5432")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(families: list[Metric]) -> Samples:
    out: Samples = {}
    for fam in families:
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def _types(families: list[Metric]) -> dict[str, str]:
    return {fam.name: fam.type for fam in families}


def _standby(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "pid": 100,
        "application_name": "walreceiver",
        "client_addr": "10.0.0.2",
        "state": "streaming",
        "slot_name": "standby1",
        "current_wal_lsn_bytes": 5000.0,
        "wal_lsn_diff": 120.0,
        "write_lag_seconds": 0.01,
        "flush_lag_seconds": 0.02,
        "replay_lag_seconds": 0.5,
        "reply_time": 1_700_000_000.0,
    }
    row.update(kw)
    return row


def _replication(role: dict[str, Any], standbys: list[dict[str, Any]]) -> list[Metric]:
    rows = {"role": [role], "standbys": standbys}
    return ReplicationCollector().build(rows, CTX, None).families


def test_primary_reports_zero_lag_and_its_standbys() -> None:
    """A primary is not a replica, has 0 lag, and labels each standby like postgres_exporter."""
    role = {"is_replica": False, "lag_seconds": 0.0, "last_replay_seconds": 0.0}
    fams = _replication(role, [_standby()])
    s = _samples(fams)
    assert s[("pg_replication_is_replica", ())] == 0
    assert s[("pg_replication_lag_seconds", ())] == 0
    assert s[("pg_replication_last_replay_seconds", ())] == 0
    labels = (
        ("application_name", "walreceiver"),
        ("client_addr", "10.0.0.2"),
        SERVER,
        ("slot_name", "standby1"),
        ("state", "streaming"),
    )
    assert s[("pg_stat_replication_pg_wal_lsn_diff", labels)] == 120
    assert s[("pg_stat_replication_pg_current_wal_lsn_bytes", labels)] == 5000
    assert s[("pg_stat_replication_replay_lag_seconds", labels)] == 0.5
    assert s[("pg_stat_replication_reply_time", labels)] == 1_700_000_000
    types = _types(fams)
    assert types["pg_stat_replication_reply_time"] == "unknown"
    assert types["pg_replication_lag_seconds"] == "gauge"


def test_replica_lag_and_null_replay_timestamp() -> None:
    """A replica reports 1 and its lag; a NULL age (nothing replayed yet) is 0."""
    role = {"is_replica": True, "lag_seconds": 12.5, "last_replay_seconds": None}
    s = _samples(_replication(role, []))
    assert s[("pg_replication_is_replica", ())] == 1
    assert s[("pg_replication_lag_seconds", ())] == 12.5
    assert s[("pg_replication_last_replay_seconds", ())] == 0


def test_caught_up_standby_without_slot_and_old_server_shape() -> None:
    """NULL lags (caught up), no slot and no reply_time (pre-12) give only the byte gauges."""
    row = _standby(
        slot_name=None,
        client_addr=None,
        write_lag_seconds=None,
        flush_lag_seconds=None,
        replay_lag_seconds=None,
        reply_time=None,
    )
    role = {"is_replica": False, "lag_seconds": 0.0, "last_replay_seconds": 0.0}
    s = _samples(_replication(role, [row]))
    names = {name for name, _ in s if name.startswith("pg_stat_replication")}
    assert names == {
        "pg_stat_replication_pg_wal_lsn_diff",
        "pg_stat_replication_pg_current_wal_lsn_bytes",
    }
    labels = dict(next(lab for name, lab in s if name == "pg_stat_replication_pg_wal_lsn_diff"))
    assert labels["server"] == "db:5432"
    assert labels["slot_name"] == ""
    assert labels["client_addr"] == ""


def test_walsenders_with_identical_labels_keep_the_worst() -> None:
    """Two walsenders that share every label make one series: the one lagging most."""
    rows = [
        _standby(pid=1, slot_name=None, wal_lsn_diff=10.0),
        _standby(pid=2, slot_name=None, wal_lsn_diff=900.0),
        _standby(pid=3, slot_name=None, wal_lsn_diff=None),
    ]
    role = {"is_replica": False, "lag_seconds": 0.0, "last_replay_seconds": 0.0}
    s = _samples(_replication(role, rows))
    diffs = [v for (name, _), v in s.items() if name == "pg_stat_replication_pg_wal_lsn_diff"]
    assert diffs == [900.0]


def _slot(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "slot_name": "s1",
        "slot_type": "logical",
        "database": "app",
        "active": True,
        "retained_bytes": 4096.0,
        "current_wal_lsn": 90000.0,
        "confirmed_flush_lsn": 85904.0,
        "safe_wal_size": 1_000_000,
        "wal_status": "reserved",
    }
    row.update(kw)
    return row


def _slots(rows: list[dict[str, Any]]) -> Samples:
    return _samples(ReplicationSlotsCollector().build({"slots": rows}, CTX, None).families)


def test_slot_families_and_labels() -> None:
    """An active logical slot gets every family, under postgres_exporter's two label sets."""
    s = _slots([_slot()])
    by_db = (("database", "app"), SERVER, ("slot_name", "s1"))
    by_type = (SERVER, ("slot_name", "s1"), ("slot_type", "logical"))
    assert s[("pg_replication_slots_active", by_db)] == 1
    assert s[("pg_replication_slots_pg_wal_lsn_diff", by_db)] == 4096
    assert s[("pg_replication_slots_slot_current_wal_lsn", by_type)] == 90000
    assert s[("pg_replication_slots_slot_confirmed_flush_lsn", by_type)] == 85904
    assert s[("pg_replication_slots_slot_is_active", by_type)] == 1
    assert s[("pg_replication_slots_safe_wal_size_bytes", by_type)] == 1_000_000
    assert s[("pg_replication_slots_wal_status", (*by_type, ("wal_status", "reserved")))] == 1


def test_inactive_physical_slot_on_old_server() -> None:
    """An inactive physical slot on 12 has no database, no flush position and no 13+ columns."""
    row = _slot(
        slot_name="phys",
        slot_type="physical",
        database=None,
        active=False,
        retained_bytes=None,
        confirmed_flush_lsn=0.0,
        safe_wal_size=None,
        wal_status=None,
    )
    s = _slots([row])
    assert (
        s[("pg_replication_slots_active", (("database", ""), SERVER, ("slot_name", "phys")))] == 0
    )
    names = {name for name, _ in s}
    assert "pg_replication_slots_slot_confirmed_flush_lsn" not in names
    assert "pg_replication_slots_safe_wal_size_bytes" not in names
    assert "pg_replication_slots_wal_status" not in names
    assert "pg_replication_slots_pg_wal_lsn_diff" not in names
    assert (
        s[
            (
                "pg_replication_slots_slot_is_active",
                (SERVER, ("slot_name", "phys"), ("slot_type", "physical")),
            )
        ]
        == 0
    )
