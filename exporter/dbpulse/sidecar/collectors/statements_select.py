"""Which pg_stat_statements entries to export, under a series budget (pure).

``summarise`` folds the raw entries into per-database totals and ranked candidates (the
top-N plus the statements currently held); ``select`` picks the statements to export.
Selection is stateful but pure: a statement that ranked in the top-N stays exported
until ``hold_seconds`` after it last ranked there, so series do not flap at the
boundary. The budget is hard: at most ``(max_series - 2 x databases) // 6`` statements,
the current top-N first, held statements in the room left over. The state
(:class:`StatementsState`) is owned by the runtime and passed in and out.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dbpulse.sidecar.base import Row

# (dbid, userid, queryid): what pg_stat_statements keys a statement by (minus toplevel).
Key = tuple[int, int, int]

_SUMMED = (
    "calls",
    "total_ms",
    "rows",
    "shared_blks_hit",
    "shared_blks_read",
    "temp_blks_written",
    "blk_read_ms",
    "blk_write_ms",
)
# Series per exported statement (one per counter family) and per database (the totals).
SERIES_PER_STATEMENT = 8
TOTAL_FAMILIES = 2
# Minimum seconds between two reads of the query-text file.
TEXT_FETCH_INTERVAL = 60.0


@dataclass(frozen=True)
class StatementsState:
    """What the statements collector carries from one poll to the next."""

    # selected statement -> when it last ranked in the top-N
    last_in_top: Mapping[Key, float] = field(default_factory=dict)
    # scrubbed texts of selected statements (None: asked for, the server had none)
    texts: Mapping[Key, str | None] = field(default_factory=dict)
    last_text_fetch: float | None = None


def key_of(row: Row) -> Key:
    return (int(row["dbid"]), int(row["userid"]), int(row["queryid"]))


def statement_capacity(max_series: int, databases: int) -> int:
    """Statements that fit the budget next to the per-database totals."""
    return max(0, (max_series - TOTAL_FAMILIES * databases) // SERIES_PER_STATEMENT)


def rank(candidates: Sequence[Row]) -> list[Row]:
    """Rows by total execution time, heaviest first, ties broken by key."""
    return sorted(candidates, key=lambda r: (-float(r.get("total_ms") or 0.0), *key_of(r)))


def summarise(
    raw: Sequence[Row], names: Sequence[Row], top_n: int, held_queryids: set[int]
) -> tuple[list[Row], list[Row]]:
    """Per-database totals, and the top-N candidates plus held ones, ranked (pure).

    Entries that differ only by ``toplevel`` (PostgreSQL 14+) are one statement here.
    The candidates come out in :func:`rank` order; nothing downstream sorts them again.
    """
    dbs = {int(r["oid"]): str(r["name"]) for r in names if r["is_db"]}
    roles = {int(r["oid"]): str(r["name"]) for r in names if not r["is_db"]}
    merged: dict[Key, dict[str, Any]] = {}
    totals: dict[int, list[float]] = {}
    for row in raw:
        dbid = int(row["dbid"])
        acc = totals.setdefault(dbid, [0.0, 0.0])
        acc[0] += float(row["calls"] or 0)
        acc[1] += float(row["total_ms"] or 0.0)
        if row["queryid"] is None:
            continue
        key = (dbid, int(row["userid"]), int(row["queryid"]))
        entry = merged.get(key)
        if entry is None:
            merged[key] = {col: float(row.get(col) or 0) for col in _SUMMED}
        else:
            for col in _SUMMED:
                entry[col] += float(row.get(col) or 0)

    def heaviest(k: Key) -> tuple[float, int, int, int]:
        return (-merged[k]["total_ms"], *k)

    top = heapq.nsmallest(top_n, merged, key=heaviest)
    picked = set(top) | {k for k in merged if k[2] in held_queryids}
    candidates = [
        {
            "dbid": k[0],
            "userid": k[1],
            "queryid": k[2],
            "datname": dbs.get(k[0], str(k[0])),
            "user": roles.get(k[1], str(k[1])),
            **merged[k],
        }
        for k in sorted(picked, key=heaviest)
    ]
    total_rows = [
        {"datname": dbs.get(dbid, str(dbid)), "calls": acc[0], "total_ms": acc[1]}
        for dbid, acc in totals.items()
    ]
    total_rows.sort(key=lambda r: str(r["datname"]))
    return total_rows, candidates


@dataclass(frozen=True)
class Selection:
    keys: list[Key]
    # keys ranking in the current top-N (the rest of ``keys`` are held)
    in_top: frozenset[Key]
    # the state for the next poll: selected key -> when it last ranked in the top-N
    last_in_top: dict[Key, float]
    capacity: int
    # held statements that did not fit the budget
    dropped_held: int


def select(
    ranked: Sequence[Key],
    last_in_top: Mapping[Key, float],
    now: float,
    *,
    top_n: int,
    capacity: int,
    hold_seconds: float,
) -> Selection:
    """Choose the statements to export; pure, the state goes in and comes out.

    ``ranked`` is every candidate heaviest first. The current top ``min(top_n,
    capacity)`` are always exported; statements that left the top-N less than
    ``hold_seconds`` ago fill the remaining budget, heaviest first. A statement that
    is no longer in pg_stat_statements (evicted or reset) is forgotten.
    """
    n = min(top_n, capacity)
    top = list(ranked[:n])
    held = [
        key for key in ranked[n:] if key in last_in_top and now - last_in_top[key] < hold_seconds
    ]
    room = max(0, capacity - len(top))
    kept = held[:room]
    state = {key: last_in_top[key] for key in kept}
    state.update(dict.fromkeys(top, now))
    return Selection(
        keys=top + kept,
        in_top=frozenset(top),
        last_in_top=state,
        capacity=capacity,
        dropped_held=len(held) - len(kept),
    )


def texts_wanted(state: StatementsState, now: float, text_max_length: int) -> list[Key]:
    """Selected statements whose text is not known yet, when the rate limit allows a read."""
    if text_max_length <= 0:
        return []
    last = state.last_text_fetch
    if last is not None and now - last < TEXT_FETCH_INTERVAL:
        return []
    return sorted(key for key in state.last_in_top if key not in state.texts)
