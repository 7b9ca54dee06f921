"""The /debug views of what is in flight: client sessions (activity) and operations (progress).

Built (pure) from the rows those collectors already read, so a debug view costs no query.
Each names only whitelisted columns: a query text can never reach it, even if a collector
starts reading one. An empty list means nothing is in flight; the views are bounded,
longest-running first, and say how many they left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dbpulse.sidecar.base import Row, Rows

MAX_ITEMS = 200

# Identifiers, states and ages only (application_name and usename are metric labels too).
SESSION_FIELDS = (
    "pid",
    "datname",
    "usename",
    "application_name",
    "backend_type",
    "state",
    "wait_event_type",
    "wait_event",
    "query_id",
    "xact_age_seconds",
    "query_age_seconds",
    "state_age_seconds",
)


def _seconds(value: Any) -> float:
    return max(0.0, float(value)) if value is not None else 0.0


def _oldest_first(rows: Iterable[Row], *ages: str) -> list[Row]:
    return sorted(rows, key=lambda r: tuple(-_seconds(r.get(a)) for a in ages))


def sessions_view(clients: Sequence[Row], now: float) -> dict[str, Any]:
    """Client sessions, the oldest transaction first, and their count by state."""
    ordered = _oldest_first(clients, "xact_age_seconds", "query_age_seconds")
    return {
        "generated_at": now,
        "client_backends": len(clients),
        "by_state": dict(sorted(Counter(str(r.get("state") or "") for r in clients).items())),
        "omitted": max(0, len(ordered) - MAX_ITEMS),
        "sessions": [
            {f: row[f] for f in SESSION_FIELDS if f in row} for row in ordered[:MAX_ITEMS]
        ],
    }


def operations_view(
    rows: Rows,
    columns: Mapping[str, Sequence[str]],
    ratio: Callable[[str, Row], float],
    now: float,
) -> dict[str, Any]:
    """Operations in flight in each view the server has (``columns``: view -> its labels and
    counters), the longest-running first, with the phase ratio the metrics export."""
    operations = []
    for view, names in columns.items():
        for row in rows.get(view, []):
            op: dict[str, Any] = {"view": view}
            op.update({name: row[name] for name in names if name in row})
            op["ratio"] = ratio(view, row)
            op["elapsed_seconds"] = _seconds(row.get("elapsed_seconds"))
            operations.append(op)
    ordered = _oldest_first(operations, "elapsed_seconds")
    return {
        "generated_at": now,
        "views": sorted(view for view in columns if view in rows),
        "in_flight": len(ordered),
        "omitted": max(0, len(ordered) - MAX_ITEMS),
        "operations": ordered[:MAX_ITEMS],
    }
