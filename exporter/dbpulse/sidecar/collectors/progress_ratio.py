"""How far a progress-view operation is through its current phase (pure)."""

from __future__ import annotations

from typing import Any

from dbpulse.sidecar.base import Row


def _ratio(done: Any, total: Any) -> float | None:
    if total is None or done is None or float(total) <= 0:
        return None
    return min(1.0, max(0.0, float(done) / float(total)))


def progress_ratio(key: str, row: Row) -> float:
    """Fraction of the current phase that is done, from the counters that phase uses.

    Always a number in [0, 1]: 0 when the phase has nothing to count (waiting phases).
    """
    pairs: tuple[tuple[str, str], ...]
    if key == "create_index" and str(row.get("phase") or "").startswith("waiting"):
        # Waiting phases count lockers; the block and tuple counters still hold the
        # previous phase's totals (a build waiting for old snapshots would read 1.0).
        pairs = (("lockers_done", "lockers_total"),)
    elif key == "create_index":
        pairs = (
            ("blocks_done", "blocks_total"),
            ("tuples_done", "tuples_total"),
            ("lockers_done", "lockers_total"),
        )
    elif key == "vacuum":
        scanned = ("heap_blks_scanned", "heap_blks_total")
        vacuumed = ("heap_blks_vacuumed", "heap_blks_total")
        pairs = (vacuumed, scanned) if row.get("phase") == "vacuuming heap" else (scanned,)
    elif key == "analyze":
        pairs = (
            ("sample_blks_scanned", "sample_blks_total"),
            ("child_tables_done", "child_tables_total"),
        )
    elif key == "cluster":
        pairs = (("heap_blks_scanned", "heap_blks_total"),)
    elif key == "copy":
        pairs = (("bytes_processed", "bytes_total"),)
    else:
        pairs = ()
    for done, total in pairs:
        ratio = _ratio(row.get(done), row.get(total))
        if ratio is not None:
            return ratio
    return 0.0
