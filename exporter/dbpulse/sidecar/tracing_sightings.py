"""Collector rows -> episode sightings, per kind (pure; unit-tested with dict rows).

- index builds: ``pg_stat_progress_create_index`` rows from the progress collector;
- blocking episodes: one per root blocker of the locks collector's blocking tree;
- slow queries: the activity collector's ``slow`` rows (present only with tracing on),
  whose text was normalised in fetch; only that text ever reaches a sighting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dbpulse.inprocess.fingerprint import fingerprint
from dbpulse.sidecar.base import Row
from dbpulse.sidecar.collectors.locks import BlockingTree, build_tree
from dbpulse.sidecar.collectors.progress import progress_ratio
from dbpulse.sidecar.tracing_episodes import Sighting

__all__ = ["blocking_sightings", "index_build_sightings", "slow_query_sightings"]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _float(value: Any) -> float:
    return 0.0 if value is None else max(0.0, float(value))


def _tp(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def index_build_sightings(rows: Sequence[Row], now: float) -> list[Sighting]:
    """One sighting per index build in flight, its phase and ratio."""
    found = []
    for row in rows:
        relname = _text(row.get("relname"))
        command = _text(row.get("command")) or "CREATE INDEX"
        ratio = progress_ratio("create_index", row)
        found.append(
            Sighting(
                key=("index_build", row.get("pid"), _text(row.get("datname")), relname),
                started_at=now - _float(row.get("elapsed_seconds")),
                name=f"{command} {relname}".strip(),
                phase=_text(row.get("phase")) or None,
                attributes={
                    "db.system.name": "postgresql",
                    "db.namespace": _text(row.get("datname")),
                    "db.collection.name": relname,
                    "db.operation.name": command,
                    "dbpulse.index.name": _text(row.get("index_relname")),
                    "dbpulse.pid": int(row.get("pid") or 0),
                    "dbpulse.progress.ratio": ratio,
                },
                traceparent=_tp(row.get("traceparent")),
            )
        )
    return found


def _reachable(tree: BlockingTree, root: int) -> list[int]:
    seen: set[int] = set()
    stack = [root]
    while stack:
        for child in tree.waiters.get(stack.pop(), ()):
            if child not in seen and child != root:
                seen.add(child)
                stack.append(child)
    return sorted(seen)


def blocking_sightings(rows: Sequence[Row], now: float) -> list[Sighting]:
    """One sighting per root blocker; it started when its longest waiter began waiting."""
    tree = build_tree(list(rows))
    found = []
    for root in tree.roots:
        waiters = _reachable(tree, root)
        if not waiters:
            continue
        root_row = tree.sessions.get(root, {})
        longest = max(_float(tree.sessions.get(p, {}).get("wait_seconds")) for p in waiters)
        attrs: dict[str, str | bool | int | float] = {
            "db.system.name": "postgresql",
            "db.namespace": _text(root_row.get("datname")),
            "dbpulse.blocking.root_pid": root,
            "dbpulse.blocking.root_state": _text(root_row.get("state")),
            "dbpulse.blocking.root_application_name": _text(root_row.get("application_name")),
            "dbpulse.blocking.waiter_pids": ",".join(str(p) for p in waiters),
            "dbpulse.blocking.waiters": len(waiters),
            "dbpulse.blocking.max_wait_seconds": longest,
        }
        if root_row.get("query_id") is not None:
            attrs["dbpulse.blocking.root_query_id"] = str(root_row["query_id"])
        found.append(
            Sighting(
                key=("blocking", root),
                started_at=now - longest,
                name="blocking episode",
                attributes=attrs,
                traceparent=_tp(root_row.get("traceparent")),
            )
        )
    return found


def slow_query_sightings(rows: Sequence[Row], now: float) -> list[Sighting]:
    """One sighting per statement still running past the slow threshold."""
    found = []
    for row in rows:
        text = _text(row.get("query_text"))
        fp = fingerprint(text)  # text is normalised already: no literal left to find
        attrs: dict[str, str | bool | int | float] = {
            "db.system.name": "postgresql",
            "db.namespace": _text(row.get("datname")),
            "db.operation.name": fp.operation,
            "db.query.text": text,
            "db.query.summary": f"{fp.operation} {fp.collection}".strip(),
            "dbpulse.pid": int(row.get("pid") or 0),
            "dbpulse.application_name": _text(row.get("application_name")),
            "dbpulse.slow_query": True,
            "dbpulse.query_text_source": _text(row.get("query_text_source")) or "pg_stat_activity",
        }
        if fp.collection:
            attrs["db.collection.name"] = fp.collection
        if row.get("query_id") is not None:
            attrs["dbpulse.query_id"] = str(row["query_id"])
        found.append(
            Sighting(
                # query_start tells two statements of one backend apart.
                key=("slow_query", row.get("pid"), row.get("query_start_epoch")),
                started_at=now - _float(row.get("query_age_seconds")),
                name=f"{fp.operation} {fp.collection}".strip(),
                attributes=attrs,
                traceparent=_tp(row.get("traceparent")),
            )
        )
    return found
