"""The /debug views of sessions and operations in flight, built from rows (pure)."""

from __future__ import annotations

from typing import Any

from dbpulse.sidecar.base import Context
from dbpulse.sidecar.collectors.activity import ActivityCollector
from dbpulse.sidecar.collectors.progress import ProgressCollector
from dbpulse.sidecar.inflight import MAX_ITEMS, sessions_view

CTX = Context("t", 170000, 42.0)


def _session(pid: int, xact: float | None, **kw: Any) -> dict[str, Any]:
    return {
        "pid": pid,
        "datname": "app",
        "usename": "web",
        "application_name": "api",
        "state": "idle in transaction",
        "wait_event_type": "Client",
        "backend_type": "client backend",
        "xact_age_seconds": xact,
        "query_age_seconds": 1.0,
        "state_age_seconds": 1.0,
        **kw,
    }


def test_activity_debug_lists_client_sessions_oldest_transaction_first() -> None:
    """Client sessions come oldest transaction first, with counts by state; others are out."""
    rows = [
        _session(1, None, state="idle"),
        _session(2, 30.0),
        _session(3, 300.0),
        _session(4, 999.0, backend_type="autovacuum worker"),
    ]
    debug = ActivityCollector().build({"activity": rows, "settings": []}, CTX, None).debug
    assert [s["pid"] for s in debug["sessions"]] == [3, 2, 1]
    assert debug["client_backends"] == 3
    assert debug["by_state"] == {"idle": 1, "idle in transaction": 2}
    assert debug["generated_at"] == 42.0


def test_activity_debug_is_empty_not_null_when_nobody_is_connected() -> None:
    """No session: an object with an empty list, never null."""
    debug = ActivityCollector().build({"activity": [], "settings": []}, CTX, None).debug
    assert debug == {
        "generated_at": 42.0,
        "client_backends": 0,
        "by_state": {},
        "omitted": 0,
        "sessions": [],
    }


def test_session_view_names_whitelisted_columns_only_and_is_bounded() -> None:
    """A query text column never reaches the view, and past MAX_ITEMS sessions it says so."""
    rows = [_session(i, float(i), query="SELECT 'secret'") for i in range(MAX_ITEMS + 5)]
    view = sessions_view(rows, 0.0)
    assert len(view["sessions"]) == MAX_ITEMS
    assert view["omitted"] == 5
    assert "secret" not in repr(view)
    assert view["sessions"][0]["pid"] == MAX_ITEMS + 4


def test_progress_debug_lists_operations_and_is_empty_when_idle() -> None:
    """An index build shows with its phase, counters and ratio; no operation: an empty list."""
    build = {
        "pid": 7,
        "datname": "app",
        "relname": "items",
        "index_relname": "",
        "command": "CREATE INDEX",
        "phase": "building index: scanning table",
        "blocks_total": 100,
        "blocks_done": 25,
        "elapsed_seconds": 3.5,
        "traceparent": None,
    }
    idle = ProgressCollector().build({"create_index": [], "vacuum": []}, CTX, None).debug
    assert idle["operations"] == []
    assert idle["in_flight"] == 0
    assert idle["views"] == ["create_index", "vacuum"]
    busy = ProgressCollector().build({"create_index": [build], "vacuum": []}, CTX, None).debug
    (op,) = busy["operations"]
    assert op["view"] == "create_index"
    assert op["pid"] == 7
    assert op["phase"] == "building index: scanning table"
    assert op["ratio"] == 0.25
    assert op["elapsed_seconds"] == 3.5
    assert "traceparent" not in op
