"""The pg_stat_io collector's pure build and its per-version SQL choice."""

from __future__ import annotations

from dbpulse.sidecar.collectors.stat_io import FAMILIES, SQL_V16, SQL_V18, build_families


def _row(**values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "backend_type": "client backend",
        "object": "relation",
        "context": "normal",
    }
    row.update(values)
    return row


def test_counts_bytes_and_seconds_per_backend_object_context() -> None:
    """Operations stay counts, bytes stay bytes, the view's milliseconds become seconds."""
    families = build_families([_row(hits=10, read_bytes=81920, read_time=1500.0)])
    values = {s.name: s for f in families for s in f.samples}
    assert values["pg_stat_io_hits_total"].value == 10.0
    assert values["pg_stat_io_read_bytes_total"].value == 81920.0
    assert values["pg_stat_io_read_time_seconds_total"].value == 1.5
    assert values["pg_stat_io_hits_total"].labels == {
        "backend_type": "client backend",
        "object": "relation",
        "context": "normal",
    }


def test_null_cells_are_not_exported() -> None:
    """Operations a backend type cannot do (NULL in the view) produce no series."""
    families = build_families([_row(read_bytes=None, hits=5, evictions=0)])
    names = {s.name for f in families for s in f.samples}
    assert names == {"pg_stat_io_hits_total", "pg_stat_io_evictions_total"}


def test_rows_that_never_did_io_are_not_exported() -> None:
    """A backend type/object/context whose counters are all zero adds no series."""
    idle = _row(backend_type="standalone backend", hits=0, evictions=0, read_bytes=0)
    busy = _row(hits=3, evictions=0)
    families = build_families([idle, busy])
    backends = {s.labels["backend_type"] for f in families for s in f.samples}
    assert backends == {"client backend"}


def test_every_family_is_declared_without_rows() -> None:
    """Before PostgreSQL 16 (no rows) every family is still declared, with no samples."""
    families = build_families([])
    assert len(families) == len(FAMILIES)
    assert all(not f.samples for f in families)


def test_versions_read_bytes_their_own_way() -> None:
    """16-17 multiply by op_bytes; 18 reads its byte columns (op_bytes is gone)."""
    assert "op_bytes" in SQL_V16
    assert "op_bytes" not in SQL_V18
    assert "read_bytes" in SQL_V18
