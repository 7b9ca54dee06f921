"""Unit tests for the pure build steps of the bgwriter, archiver, wal, server and roles collectors."""

from __future__ import annotations

import math
from typing import Any

from prometheus_client.metrics_core import Metric

from dbpulse.sidecar.base import Context
from dbpulse.sidecar.collectors.archiver import ArchiverCollector
from dbpulse.sidecar.collectors.bgwriter import BgwriterCollector
from dbpulse.sidecar.collectors.roles import RolesCollector
from dbpulse.sidecar.collectors.server import ServerCollector, short_version
from dbpulse.sidecar.collectors.wal import NO_PERMISSION, WalCollector

CTX = Context("t", 150000, 0.0, server="db:5432")


def _values(families: list[Metric]) -> dict[str, float]:
    out: dict[str, float] = {}
    for fam in families:
        for s in fam.samples:
            assert s.name not in out
            out[s.name] = s.value
    return out


def test_bgwriter_before_17_is_counters_with_postgres_exporter_names() -> None:
    """Pre-17 rows give pg_stat_bgwriter_*_total counters (ms times unscaled), no checkpointer."""
    row = {
        "checkpoints_timed": 5,
        "checkpoints_req": 1,
        "checkpoint_write_time": 1500.0,
        "checkpoint_sync_time": None,
        "buffers_checkpoint": 10,
        "buffers_clean": 0,
        "maxwritten_clean": 0,
        "buffers_backend": 7,
        "buffers_backend_fsync": 0,
        "buffers_alloc": 99,
        "stats_reset": 1_700_000_000.0,
    }
    result = BgwriterCollector().build({"bgwriter": [row], "checkpointer": []}, CTX, None)
    assert all(fam.type == "counter" for fam in result.families)
    v = _values(result.families)
    assert v["pg_stat_bgwriter_checkpoints_timed_total"] == 5
    assert v["pg_stat_bgwriter_checkpoint_write_time_total"] == 1500
    assert v["pg_stat_bgwriter_checkpoint_sync_time_total"] == 0
    assert v["pg_stat_bgwriter_buffers_backend_total"] == 7
    assert v["pg_stat_bgwriter_stats_reset_total"] == 1_700_000_000
    assert len(v) == 11
    assert not any(name.startswith("pg_stat_checkpointer") for name in v)


def test_bgwriter_17_moves_checkpoints_to_the_checkpointer() -> None:
    """On 17 the checkpoint families come from pg_stat_checkpointer; 18 adds num_done."""
    bgwriter: dict[str, Any] = {
        "buffers_clean": 3,
        "maxwritten_clean": 0,
        "buffers_alloc": 50,
        "stats_reset": 0,
    }
    checkpointer: dict[str, Any] = {
        "num_timed": 4,
        "num_requested": 2,
        "restartpoints_timed": 0,
        "restartpoints_req": 0,
        "restartpoints_done": 0,
        "write_time": 12.0,
        "sync_time": 3.0,
        "buffers_written": 40,
        "stats_reset": 1_700_000_000.0,
    }
    rows = {"bgwriter": [bgwriter], "checkpointer": [checkpointer]}
    v17 = _values(BgwriterCollector().build(rows, Context("t", 170000, 0.0), None).families)
    assert "pg_stat_bgwriter_checkpoints_timed_total" not in v17
    assert "pg_stat_bgwriter_buffers_backend_total" not in v17
    assert v17["pg_stat_bgwriter_buffers_alloc_total"] == 50
    assert v17["pg_stat_checkpointer_num_timed_total"] == 4
    assert v17["pg_stat_checkpointer_write_time_total"] == 12
    assert "pg_stat_checkpointer_num_done_total" not in v17
    rows18 = {
        "bgwriter": [bgwriter],
        "checkpointer": [{**checkpointer, "num_done": 6, "slru_written": 2}],
    }
    v18 = _values(BgwriterCollector().build(rows18, Context("t", 180000, 0.0), None).families)
    assert v18["pg_stat_checkpointer_num_done_total"] == 6
    assert v18["pg_stat_checkpointer_slru_written_total"] == 2


def test_archiver_never_archived_has_nan_age() -> None:
    """Counts are counters named without _total; the age is NaN until a segment was archived."""
    row: dict[str, Any] = {"archived_count": 0, "failed_count": 2, "last_archive_age": None}
    fams = ArchiverCollector().build({"archiver": [row]}, CTX, None).families
    assert {f.name: f.type for f in fams} == {
        "pg_stat_archiver_archived_count": "counter",
        "pg_stat_archiver_failed_count": "counter",
        "pg_stat_archiver_last_archive_age": "gauge",
    }
    v = _values(fams)
    assert v["pg_stat_archiver_archived_count"] == 0
    assert v["pg_stat_archiver_failed_count"] == 2
    assert math.isnan(v["pg_stat_archiver_last_archive_age"])
    assert all(s.labels == {"server": "db:5432"} for f in fams for s in f.samples)
    row = {"archived_count": 9, "failed_count": 0, "last_archive_age": -0.001}
    v = _values(ArchiverCollector().build({"archiver": [row]}, CTX, None).families)
    assert v["pg_stat_archiver_last_archive_age"] == 0


def test_wal_without_permission_gives_a_notice_not_zeros() -> None:
    """Denied pg_ls_waldir(): no families (not a fake 0) and the GRANT notice."""
    denied = WalCollector().build({"wal": [], "denied": [{}]}, CTX, None)
    assert denied.families == []
    assert denied.notices == [NO_PERMISSION]
    assert "pg_monitor" in NO_PERMISSION
    ok = WalCollector().build(
        {"wal": [{"segments": 3, "size_bytes": 3 << 24}], "denied": []}, CTX, None
    )
    assert _values(ok.families) == {"pg_wal_segments": 3, "pg_wal_size_bytes": 3 << 24}
    assert ok.notices == []


def test_server_start_time_and_static_version() -> None:
    """pg_static is untyped, 1, with postgres_exporter's three-part short_version."""
    row = {
        "start_time": 1_700_000_000.5,
        "version": "PostgreSQL 15.18 (Debian)",
        "version_num": 150018,
    }
    fams = ServerCollector().build({"server": [row]}, CTX, None).families
    static = next(f for f in fams if f.name == "pg_static")
    assert static.type == "unknown"
    assert static.samples[0].labels == {
        "server": "db:5432",
        "short_version": "15.18.0",
        "version": "PostgreSQL 15.18 (Debian)",
    }
    assert static.samples[0].value == 1
    assert _values(fams)["pg_postmaster_start_time_seconds"] == 1_700_000_000.5
    assert short_version(170000) == "17.0.0"
    assert short_version(90624) == "9.6.24"
    assert ServerCollector().build({"server": []}, CTX, None).families == []


def test_roles_connection_limit_skips_nulls() -> None:
    """Each role's rolconnlimit is a gauge labelled rolname; NULL rows are skipped."""
    rows: list[dict[str, Any]] = [
        {"rolname": "app", "rolconnlimit": 20},
        {"rolname": "postgres", "rolconnlimit": -1},
        {"rolname": None, "rolconnlimit": 1},
    ]
    (fam,) = RolesCollector().build({"roles": rows}, CTX, None).families
    assert {s.labels["rolname"]: s.value for s in fam.samples} == {"app": 20, "postgres": -1}
