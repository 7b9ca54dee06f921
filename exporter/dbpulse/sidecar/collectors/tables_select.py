"""Which tables' statistics to export, under a series budget (pure).

A database can hold 10,000 tables and each exported table costs ``SERIES_PER_TABLE``
series plus ``SERIES_PER_INDEX`` per exported index, so the tables collector exports the
worst tables only. "Worst" is, in order: tables whose dead rows exceed their autovacuum
threshold (most dead rows first), then the largest (heap + TOAST + indexes), then the
busiest, ties broken by relid. Size and cumulative counters move slowly, so the ranking
is stable from one poll to the next.

Selection works like the statements collector's (``statements_select``): the current
top-N are exported; a table that left the top-N stays exported for ``hold_seconds``
after it last ranked there, in the room the budget leaves, so series do not flap at the
boundary. The budget is hard: a table whose cost does not fit is skipped.

Budget across databases: with discovery, each database of a target has its own poller
and collector, polled at different moments, so they cannot rank against each other.
Each build reports what its database wants (``wanted``) and discovery splits the
target's ``top_n`` and ``max_series`` among the databases by those wants before each
poll (``sidecar/allotment.py``: max-min fair), so the target's total never exceeds
``max_series`` and a database without tables leaves its part to the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dbpulse.sidecar.allotment import Wants
from dbpulse.sidecar.base import Row

# pg_stat_user_tables (21 families) + pg_statio_user_tables (8) + the bloat estimate.
SERIES_PER_TABLE = 30
# pg_stat_user_indexes: scans, tuples read, tuples fetched.
SERIES_PER_INDEX = 3
# A table's largest indexes exported with it; the rest are counted, not exported.
INDEXES_PER_TABLE = 10


def _num(row: Row, column: str) -> float:
    value = row.get(column)
    return float(value) if value is not None else 0.0


def overdue(row: Row) -> bool:
    """Dead rows above the table's autovacuum threshold (threshold + scale x rows).

    Rows are ``pg_class.reltuples``, as autovacuum itself counts them; ``n_live_tup``
    only for a table never vacuumed or analyzed (reltuples NULL, or -1 on 14+).
    """
    tuples = row.get("reltuples")
    live = float(tuples) if tuples is not None and float(tuples) >= 0 else _num(row, "n_live_tup")
    threshold = _num(row, "vacuum_threshold") + _num(row, "vacuum_scale_factor") * live
    return _num(row, "n_dead_tup") > threshold


def total_bytes(row: Row) -> float:
    return _num(row, "heap_bytes") + _num(row, "toast_bytes") + _num(row, "index_bytes")


def activity(row: Row) -> float:
    return sum(
        _num(row, c)
        for c in ("seq_tup_read", "idx_tup_fetch", "n_tup_ins", "n_tup_upd", "n_tup_del")
    )


def rank(tables: Sequence[Row]) -> list[Row]:
    """Tables worst first (see the module docstring), ties broken by relid."""

    def key(row: Row) -> tuple[int, float, float, float, int]:
        late = overdue(row)
        return (
            0 if late else 1,
            -_num(row, "n_dead_tup") if late else 0.0,
            -total_bytes(row),
            -activity(row),
            int(row["relid"]),
        )

    return sorted(tables, key=key)


def wanted(ranked: Sequence[int], cost: Mapping[int, int], *, top_n: int, max_series: int) -> Wants:
    """What this database would export with the target's whole budget: its top-N tables
    that fit ``max_series``, and their series (reported to discovery's split)."""
    items = series = 0
    for key in ranked[:top_n]:
        if series + cost[key] <= max_series:
            items += 1
            series += cost[key]
    return Wants(items=items, series=series)


@dataclass(frozen=True)
class Selection:
    keys: list[int]
    in_top: frozenset[int]
    # the state for the next poll: selected relid -> when it last ranked in the top-N
    last_in_top: dict[int, float]
    budget: int
    used: int
    # tables that ranked in the top-N or were held, but did not fit the budget
    dropped: int


def select(
    ranked: Sequence[int],
    cost: Mapping[int, int],
    last_in_top: Mapping[int, float],
    now: float,
    *,
    top_n: int,
    budget: int,
    hold_seconds: float,
) -> Selection:
    """Choose the tables to export; pure, the state goes in and comes out.

    ``ranked`` is every table's relid, worst first; ``cost`` its series. The first
    ``top_n`` ranked tables that fit are the top; held tables (ranked in the top-N less
    than ``hold_seconds`` ago) fill what is left of the budget, worst first. A table that
    no longer exists is forgotten.
    """
    used = 0
    dropped = 0
    top: list[int] = []
    for key in ranked[:top_n]:
        if used + cost[key] > budget:
            dropped += 1
            continue
        top.append(key)
        used += cost[key]
    chosen = set(top)
    kept: list[int] = []
    for key in ranked:
        if key in chosen or key not in last_in_top or now - last_in_top[key] >= hold_seconds:
            continue
        if used + cost[key] > budget:
            dropped += 1
            continue
        kept.append(key)
        used += cost[key]
    state = {key: last_in_top[key] for key in kept}
    state.update(dict.fromkeys(top, now))
    return Selection(
        keys=top + kept,
        in_top=frozenset(top),
        last_in_top=state,
        budget=budget,
        used=used,
        dropped=dropped,
    )


def indexes_by_table(indexes: Sequence[Row]) -> dict[int, list[Row]]:
    """Each table's indexes, largest first (then by name), at most ``INDEXES_PER_TABLE``."""
    grouped: dict[int, list[Row]] = {}
    for row in indexes:
        grouped.setdefault(int(row["relid"]), []).append(row)
    for relid, rows in grouped.items():
        rows.sort(key=lambda r: (-_num(r, "size_bytes"), str(r.get("indexrelname") or "")))
        grouped[relid] = rows[:INDEXES_PER_TABLE]
    return grouped


def costs(tables: Sequence[Row], indexes: Mapping[int, list[Any]]) -> dict[int, int]:
    """Series each table would add: its own families plus its exported indexes'."""
    return {
        int(row["relid"]): SERIES_PER_TABLE
        + SERIES_PER_INDEX * len(indexes.get(int(row["relid"]), ()))
        for row in tables
    }
