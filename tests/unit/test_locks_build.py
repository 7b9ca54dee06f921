"""Unit tests for the pure lock counting and blocking-tree building of the locks collector."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from dbpulse.sidecar.base import Context
from dbpulse.sidecar.collectors.locks import MAX_DEPTH, LocksCollector, build_tree

CTX = Context("t", 150000, 100.0, server="db:5432")


def _s(pid: int, blocked_by: list[int] | None = None, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "pid": pid,
        "datname": "app",
        "usename": "web",
        "application_name": "api",
        "state": "active",
        "backend_type": "client backend",
        "wait_event_type": "Lock" if blocked_by else "Client",
        "wait_event": "transactionid" if blocked_by else "ClientRead",
        "query_id": 42,
        "blocked_by": blocked_by or [],
        "xact_age_seconds": 10.0,
        "state_age_seconds": 8.0,
        "wait_seconds": 3.0 if blocked_by else None,
    }
    row.update(kw)
    return row


def _build(
    blocking: list[dict[str, Any]],
    locks: Sequence[dict[str, Any]] = (),
    databases: Sequence[dict[str, Any]] = (),
    all_databases: Sequence[dict[str, Any]] = (),
) -> tuple[dict[tuple[str, Any], float], Any]:
    ctx = replace(CTX, databases=tuple(str(d["datname"]) for d in databases))
    rows = {"locks": list(locks), "blocking": blocking, "all_databases": list(all_databases)}
    result = LocksCollector().build(rows, ctx, None)
    samples = {}
    for fam in result.families:
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, result.debug


def test_simple_chain_root_and_nested_waiters() -> None:
    """1 blocks 2 which blocks 3: one root (1) with 2 under it and 3 under 2."""
    rows = [
        _s(1, state="idle in transaction", state_age_seconds=7.5),
        _s(2, [1]),
        _s(3, [2]),
    ]
    samples, debug = _build(rows)
    assert [r["pid"] for r in debug["roots"]] == [1]
    root = debug["roots"][0]
    assert root["idle_in_transaction_seconds"] == 7.5
    assert root["xact_age_seconds"] == 10.0
    assert root["wait_seconds"] is None
    assert [w["pid"] for w in root["waiters"]] == [2]
    assert [w["pid"] for w in root["waiters"][0]["waiters"]] == [3]
    assert samples[("pg_blocking_sessions", (("datname", "app"),))] == 2
    assert samples[("pg_blocking_root_blockers", (("datname", "app"),))] == 1
    assert samples[("pg_blocking_max_wait_seconds", (("datname", "app"),))] == 3.0


def test_tree_json_has_no_query_text() -> None:
    """The debug tree is JSON-serialisable and carries a query_id but never a query text."""
    rows = [_s(1), _s(2, [1], query="UPDATE t SET secret = 'x'")]
    _, debug = _build(rows)
    text = json.dumps(debug)
    assert "secret" not in text
    assert '"query_id": 42' in text


def test_multiple_blockers_and_duplicate_pids() -> None:
    """A waiter blocked by two sessions appears under both; duplicate pids count once."""
    rows = [_s(1), _s(2), _s(3, [1, 2, 2, 1])]
    samples, debug = _build(rows)
    tree = build_tree(rows)
    assert tree.blockers[3] == [1, 2]
    assert [r["pid"] for r in debug["roots"]] == [1, 2]
    assert all([w["pid"] for w in r["waiters"]] == [3] for r in debug["roots"])
    assert samples[("pg_blocking_sessions", (("datname", "app"),))] == 1
    assert samples[("pg_blocking_root_blockers", (("datname", "app"),))] == 2


def test_cycle_without_root_is_reported_unrooted() -> None:
    """A deadlock cycle not yet broken by the server has no root and is listed as unrooted."""
    rows = [_s(1, [2]), _s(2, [1])]
    samples, debug = _build(rows)
    assert debug["roots"] == []
    assert [u["pid"] for u in debug["unrooted"]] == [1, 2]
    # The nesting stops where the cycle would repeat.
    assert debug["unrooted"][0]["waiters"][0]["waiters"] == []
    assert samples[("pg_blocking_sessions", (("datname", "app"),))] == 2
    assert samples[("pg_blocking_root_blockers", (("datname", "app"),))] == 0


def test_self_reference_is_ignored() -> None:
    """A pid listed as blocking itself (parallel workers fold into the leader) is not a wait."""
    tree = build_tree([_s(5, [5])])
    assert tree.blockers == {}
    assert tree.roots == []


def test_prepared_transaction_root_with_null_columns() -> None:
    """A lock held by a prepared transaction (pid 0, all columns NULL) is a root in ''."""
    prepared = {
        "pid": 0,
        "datname": None,
        "usename": None,
        "state": None,
        "blocked_by": None,
        "xact_age_seconds": None,
        "state_age_seconds": None,
        "wait_seconds": None,
    }
    samples, debug = _build([prepared, _s(9, [0], wait_seconds=None)])
    root = debug["roots"][0]
    assert root["pid"] == 0
    assert root["prepared_transaction"] is True
    assert root["xact_age_seconds"] is None
    assert samples[("pg_blocking_root_blockers", (("datname", ""),))] == 1
    # A NULL wait time (waitstart not yet set) counts as 0, not a crash.
    assert samples[("pg_blocking_max_wait_seconds", (("datname", "app"),))] == 0


def test_deep_chain_is_truncated() -> None:
    """A chain deeper than MAX_DEPTH stops nesting and says how many waiters were cut."""
    rows = [_s(1)] + [_s(i, [i - 1]) for i in range(2, MAX_DEPTH + 5)]
    _, debug = _build(rows)
    node = debug["roots"][0]
    depth = 0
    while node["waiters"]:
        node = node["waiters"][0]
        depth += 1
    assert depth == MAX_DEPTH
    assert node["waiters_truncated"] == 1


def test_lock_counts_and_zero_filled_databases() -> None:
    """postgres_exporter's pg_locks_count: lowercased modes, summed, nine modes zero-filled per database."""
    locks: list[dict[str, Any]] = [
        {"datname": "app", "mode": "rowexclusivelock", "count": 4},
        {"datname": "app", "mode": "RowExclusiveLock", "count": 1},
        {"datname": "app", "mode": "sharelock", "count": 1},
    ]
    all_dbs = [{"datname": "app"}, {"datname": "b"}, {"datname": "template0"}]
    samples, debug = _build(
        [], locks=locks, databases=[{"datname": "app"}, {"datname": "b"}], all_databases=all_dbs
    )

    def count(datname: str, mode: str) -> float:
        key = (("datname", datname), ("mode", mode), ("server", "db:5432"))
        return samples[("pg_locks_count", key)]

    assert count("app", "rowexclusivelock") == 5
    assert count("app", "sharelock") == 1
    assert count("template0", "sireadlock") == 0
    assert samples[("pg_blocking_sessions", (("datname", "b"),))] == 0
    assert count("b", "accessexclusivelock") == 0
    assert len([k for k in samples if k[0] == "pg_locks_count"]) == 3 * 9
    assert samples[("pg_blocking_root_blockers", (("datname", "app"),))] == 0
    assert debug["waiting_sessions"] == 0
    assert debug["generated_at"] == 100.0
