"""The migrations collector's pure build step, from plain dict rows."""

from __future__ import annotations

from dbpulse.sidecar.base import Row
from dbpulse.sidecar.collectors.migrations import build_result

FAMILIES = {
    "pg_index_invalid",
    "pg_constraint_not_valid",
    "pg_foreign_key_missing_index",
    "pg_index_unused_bytes",
    "pg_table_seq_scan_heavy",
    "pg_migration_findings",
}


def _rows(**found: list[Row]) -> dict[str, list[Row]]:
    return {"database": [{"datname": "app"}], **found}


def test_every_family_is_emitted_even_when_clean() -> None:
    """A clean schema still yields each family (HELP/TYPE visible) and zero findings."""
    result = build_result(_rows(), max_series=10)
    assert {fam.name for fam in result.families} == FAMILIES
    findings = next(f for f in result.families if f.name == "pg_migration_findings")
    assert {s.labels["check"]: s.value for s in findings.samples} == {
        "invalid_indexes": 0.0,
        "not_valid_constraints": 0.0,
        "fk_missing_index": 0.0,
        "unused_indexes": 0.0,
        "seq_scan_heavy": 0.0,
    }
    assert result.notices == []


def test_values_and_labels_follow_the_rows() -> None:
    """Invalid indexes are 1; unused indexes carry their size; heavy tables their scan count."""
    row = {"datname": "app", "schemaname": "public", "relname": "t", "total": 1}
    result = build_result(
        _rows(
            invalid_indexes=[{**row, "indexrelname": "t_v_key"}],
            unused_indexes=[{**row, "indexrelname": "t_x_idx", "size_bytes": 8192}],
            seq_scan_heavy=[{**row, "seq_scan": 5000, "seq_tup_read": 1}],
        ),
        max_series=10,
    )
    samples = {f.name: [(s.labels, s.value) for s in f.samples] for f in result.families}
    labels = {"datname": "app", "schemaname": "public", "relname": "t"}
    assert samples["pg_index_invalid"] == [({**labels, "indexrelname": "t_v_key"}, 1.0)]
    assert samples["pg_index_unused_bytes"] == [({**labels, "indexrelname": "t_x_idx"}, 8192.0)]
    assert samples["pg_table_seq_scan_heavy"] == [(labels, 5000.0)]


def test_bound_is_applied_and_the_true_count_reported() -> None:
    """More rows than max_series: only max_series series, the total in findings, one notice."""
    rows = [
        {"datname": "app", "schemaname": "s", "relname": f"t{i}", "conname": "c", "total": 7}
        for i in range(3)
    ]
    result = build_result(_rows(fk_missing_index=rows), max_series=2)
    fam = next(f for f in result.families if f.name == "pg_foreign_key_missing_index")
    assert len(fam.samples) == 2
    findings = next(f for f in result.families if f.name == "pg_migration_findings")
    assert {s.labels["check"]: s.value for s in findings.samples}["fk_missing_index"] == 7.0
    assert len(result.notices) == 1
    assert "max_series" in result.notices[0]
