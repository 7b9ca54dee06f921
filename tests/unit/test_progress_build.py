"""Unit tests for the pure build step and version gating of the progress collector."""

from __future__ import annotations

from typing import Any

import pytest

from dbpulse.sidecar.base import Context
from dbpulse.sidecar.collectors.progress import ProgressCollector, progress_ratio, queries_for

CTX = Context("t", 150000, 0.0)


def _samples(rows: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, Any], float]:
    out = {}
    for fam in ProgressCollector().build(rows, CTX, None).families:
        for s in fam.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def _index_row(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "pid": 123,
        "datname": "app",
        "relname": "orders",
        "index_relname": "orders_customer_idx",
        "command": "CREATE INDEX CONCURRENTLY",
        "phase": "building index: scanning table",
        "lockers_total": 0,
        "lockers_done": 0,
        "blocks_total": 1000,
        "blocks_done": 250,
        "tuples_total": 0,
        "tuples_done": 0,
        "partitions_total": 0,
        "partitions_done": 0,
        "elapsed_seconds": 12.5,
    }
    row.update(kw)
    return row


INDEX_LABELS = (
    ("command", "CREATE INDEX CONCURRENTLY"),
    ("datname", "app"),
    ("index_relname", "orders_customer_idx"),
    ("phase", "building index: scanning table"),
    ("pid", "123"),
    ("relname", "orders"),
)


def test_create_index_counters_ratio_and_elapsed() -> None:
    """Every counter of an index build is exported with its labels, plus ratio and elapsed."""
    s = _samples({"create_index": [_index_row()]})
    assert s["pg_stat_progress_create_index_blocks_done", INDEX_LABELS] == 250
    assert s["pg_stat_progress_create_index_blocks_total", INDEX_LABELS] == 1000
    assert s["pg_stat_progress_create_index_lockers_total", INDEX_LABELS] == 0
    assert s["pg_stat_progress_create_index_partitions_done", INDEX_LABELS] == 0
    assert s["pg_stat_progress_create_index_ratio", INDEX_LABELS] == 0.25
    assert s["pg_stat_progress_create_index_elapsed_seconds", INDEX_LABELS] == 12.5


@pytest.mark.parametrize(
    ("counters", "expected"),
    [
        ({"blocks_total": 10, "blocks_done": 5, "tuples_total": 100, "tuples_done": 1}, 0.5),
        ({"blocks_total": 0, "tuples_total": 100, "tuples_done": 25}, 0.25),
        ({"blocks_total": 0, "tuples_total": 0, "lockers_total": 4, "lockers_done": 1}, 0.25),
        ({"blocks_total": 0, "tuples_total": 0, "lockers_total": 0}, 0.0),
        ({"blocks_total": None, "tuples_total": None, "lockers_total": None}, 0.0),
        ({"blocks_total": 10, "blocks_done": 11}, 1.0),
    ],
)
def test_create_index_ratio_picks_the_phase_counter(
    counters: dict[str, Any], expected: float
) -> None:
    """The ratio uses blocks, then tuples, then lockers, is 0 when none applies, and caps at 1."""
    row = {"blocks_done": 0, "tuples_done": 0, "lockers_done": 0, **counters}
    assert progress_ratio("create_index", row) == expected


def test_vacuum_ratio_follows_the_phase() -> None:
    """Vacuum progress is blocks scanned, or blocks vacuumed in the 'vacuuming heap' phase."""
    row = {"heap_blks_total": 100, "heap_blks_scanned": 100, "heap_blks_vacuumed": 40}
    assert progress_ratio("vacuum", {**row, "phase": "scanning heap"}) == 1.0
    assert progress_ratio("vacuum", {**row, "phase": "vacuuming heap"}) == 0.4


def test_null_columns_and_unresolved_names() -> None:
    """NULL counters (other users' rows without pg_monitor) give no sample; an OID relname stays."""
    row = {
        "pid": 7,
        "datname": "other",
        "relname": "16384",
        "phase": "scanning heap",
        "heap_blks_total": None,
        "heap_blks_scanned": None,
        "heap_blks_vacuumed": None,
        "index_vacuum_count": 0,
        "max_dead_tuples": None,
        "num_dead_tuples": None,
        "elapsed_seconds": None,
    }
    s = _samples({"vacuum": [row]})
    labels = (("datname", "other"), ("phase", "scanning heap"), ("pid", "7"), ("relname", "16384"))
    where = (("datname", "other"), ("relname", "16384"))
    assert s["pg_stat_progress_vacuum_index_vacuums", where] == 0
    assert (
        s["pg_stat_progress_vacuum_phase", (*where[:1], ("phase", "scanning heap"), *where[1:])]
        == 1
    )
    assert s["pg_stat_progress_vacuum_ratio", labels] == 0
    assert ("pg_stat_progress_vacuum_heap_blks", where) not in s
    assert ("pg_stat_progress_vacuum_elapsed_seconds", labels) not in s


def test_copy_uses_command_and_type_instead_of_phase() -> None:
    """COPY has no phase: its series carry command and type, and the ratio is bytes."""
    row = {
        "pid": 8,
        "datname": "app",
        "relname": "events",
        "command": "COPY FROM",
        "type": "FILE",
        "bytes_processed": 50,
        "bytes_total": 200,
        "tuples_processed": 10,
        "tuples_excluded": 0,
        "elapsed_seconds": 1.0,
    }
    s = _samples({"copy": [row]})
    labels = (
        ("command", "COPY FROM"),
        ("datname", "app"),
        ("pid", "8"),
        ("relname", "events"),
        ("type", "FILE"),
    )
    assert s["pg_stat_progress_copy_ratio", labels] == 0.25
    assert s["pg_stat_progress_copy_tuples_processed", labels] == 10
    # 17's tuples_skipped is absent on this server's rows: no family for it.
    assert not any(name == "pg_stat_progress_copy_tuples_skipped" for name, _ in s)


def test_no_operations_no_series() -> None:
    """With nothing in flight the server's views give empty families; absent views give none."""
    families = ProgressCollector().build({"vacuum": []}, CTX, None).families
    assert families
    assert all(not f.samples for f in families)
    assert {f.name.split("_")[3] for f in families} == {"vacuum"}


@pytest.mark.parametrize(
    ("version", "views"),
    [
        (110000, {"vacuum"}),
        (120000, {"vacuum", "create_index", "cluster"}),
        (130000, {"vacuum", "create_index", "cluster", "analyze"}),
        (150000, {"vacuum", "create_index", "cluster", "analyze", "copy"}),
    ],
)
def test_views_gated_by_server_version(version: int, views: set[str]) -> None:
    """Each progress view is queried only on servers that have it."""
    assert set(queries_for(version)) == views


def test_pg17_column_variants() -> None:
    """17 gets the renamed vacuum columns and COPY's tuples_skipped; 16 the old ones."""
    assert "dead_tuple_bytes" in queries_for(170000)["vacuum"]
    assert "num_dead_tuples" in queries_for(160000)["vacuum"]
    assert "tuples_skipped" in queries_for(170000)["copy"]
    assert "tuples_skipped" not in queries_for(160000)["copy"]


def test_waiting_phase_ratio_counts_lockers_not_leftover_blocks() -> None:
    """A build waiting for old snapshots reports its lockers, not the finished scan's blocks."""
    from dbpulse.sidecar.collectors.progress import progress_ratio

    row = {
        "phase": "waiting for old snapshots",
        "blocks_done": 500,
        "blocks_total": 500,
        "tuples_done": 9,
        "tuples_total": 9,
        "lockers_done": 0,
        "lockers_total": 1,
    }
    assert progress_ratio("create_index", row) == 0.0
    assert progress_ratio("create_index", {**row, "lockers_done": 1}) == 1.0
    assert progress_ratio("create_index", {**row, "phase": "building index"}) == 1.0


def test_vacuum_in_postgres_exporters_families() -> None:
    """A vacuum shows as postgres_exporter names it: datname/relname, a one-hot phase, heap_blks, index_vacuums."""
    row = {
        "pid": 7,
        "datname": "app",
        "relname": "t",
        "phase": "vacuuming heap",
        "heap_blks_total": 100,
        "heap_blks_scanned": 100,
        "heap_blks_vacuumed": 40,
        "index_vacuum_count": 1,
        "max_dead_tuples": 291,
        "num_dead_tuples": 12,
        "elapsed_seconds": 3.0,
    }
    s = _samples({"vacuum": [row, {**row, "pid": 8}]})  # one table, one series
    where = (("datname", "app"), ("relname", "t"))
    phases = {
        dict(k)["phase"]: v for (n, k), v in s.items() if n == "pg_stat_progress_vacuum_phase"
    }
    assert phases["vacuuming heap"] == 1
    assert sum(phases.values()) == 1
    assert len(phases) == 7
    assert s["pg_stat_progress_vacuum_heap_blks", where] == 100
    assert s["pg_stat_progress_vacuum_heap_blks_vacuumed", where] == 40
    assert s["pg_stat_progress_vacuum_index_vacuums", where] == 1
    assert s["pg_stat_progress_vacuum_num_dead_tuples", where] == 12
    assert not any(n == "pg_stat_progress_vacuum_heap_blks_total" for n, _ in s)


def test_vacuum_on_17_has_no_tuple_counts() -> None:
    """PostgreSQL 17 rows (dead tuple bytes, no tuple counts) give no *_dead_tuples family."""
    row = {
        "pid": 7,
        "datname": "app",
        "relname": "t",
        "phase": "scanning heap",
        "heap_blks_total": 10,
        "dead_tuple_bytes": 4096,
    }
    s = _samples({"vacuum": [row]})
    assert not any(n.endswith("_dead_tuples") for n, _ in s)
    assert any(n == "pg_stat_progress_vacuum_dead_tuple_bytes" for n, _ in s)
