"""The /debug/locks and /debug/statements views served over real HTTP, free of literals."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import psycopg

from dbpulse.http import start_server
from dbpulse.localpg import LocalPostgres
from dbpulse.settings import load_settings
from dbpulse.sidecar.daemon import Sidecar
from tests.integration.collector_helpers import background, wait_for

SECRET = "hunter2-do-not-leak"


def _get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        found: dict[str, Any] = json.loads(resp.read())
        return found


def test_debug_views_show_tree_and_texts_without_literals(pg: LocalPostgres) -> None:
    """A live blocking tree and the top statements are served as JSON with no literal values."""
    with psycopg.connect(pg.dsn, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS debug_accounts (id int PRIMARY KEY, note text)")
        setup.execute("INSERT INTO debug_accounts VALUES (1, '') ON CONFLICT DO NOTHING")
        setup.execute(f"SET application_name = '{SECRET}'")  # utility text keeps its literal
    # A budget large enough for every statement the session has run so far, so the
    # tiny SET below is selected however many other tests ran before this one.
    everything = {"statements": {"top_n": 5000, "max_series": 100000}}
    sidecar = Sidecar.build(load_settings(dsn=pg.dsn, collectors=everything))
    server, thread = start_server("127.0.0.1", 0, sidecar.endpoints())
    port = server.server_address[1]
    holder = psycopg.connect(pg.dsn)
    try:
        holder.execute(f"UPDATE debug_accounts SET note = '{SECRET}' WHERE id = 1")
        with background(
            pg.dsn, f"UPDATE debug_accounts SET note = '{SECRET}-2' WHERE id = 1"
        ) as waiter:

            def tree_has_waiter() -> dict[str, Any] | None:
                sidecar.poller.run_once("locks")
                tree = _get(port, "/debug/locks")
                return tree if tree["waiting_sessions"] else None

            tree = wait_for(tree_has_waiter)
            holder.rollback()
            wait_for(waiter.done, timeout=10)
        assert [r["pid"] for r in tree["roots"]] == [holder.info.backend_pid]
        assert tree["roots"][0]["waiters"][0]["pid"] == waiter.pid

        # First poll selects the statements, the second fetches their texts.
        assert sidecar.poller.run_once("statements")
        assert sidecar.poller.run_once("statements")
        statements = _get(port, "/debug/statements")
    finally:
        holder.close()
        server.shutdown()
        thread.join(5)
        sidecar.close()
    texts = [s["query"] for s in statements["statements"] if s["query"]]
    assert "SET application_name = '?'" in texts
    assert SECRET not in json.dumps(tree)
    assert SECRET not in json.dumps(statements)


def test_debug_activity_and_progress_answer_objects(pg: LocalPostgres) -> None:
    """/debug/activity lists a session idle in its transaction by pid, and /debug/progress
    answers an object with a list of operations (empty when none is in flight), not null."""
    sidecar = Sidecar.build(load_settings(dsn=pg.dsn))
    server, thread = start_server("127.0.0.1", 0, sidecar.endpoints())
    port = server.server_address[1]
    holder = psycopg.connect(pg.dsn)
    pid = holder.info.backend_pid
    try:
        holder.execute("SELECT 1")  # opens a transaction, left idle
        assert sidecar.poller.run_once("activity")
        assert sidecar.poller.run_once("progress")
        activity = _get(port, "/debug/activity")
        progress = _get(port, "/debug/progress")
    finally:
        holder.close()
        server.shutdown()
        thread.join(5)
        sidecar.close()
    (held,) = [s for s in activity["sessions"] if s["pid"] == pid]
    assert held["state"] == "idle in transaction"
    assert activity["client_backends"] >= 1
    assert isinstance(progress["operations"], list)
    assert progress["in_flight"] == len(progress["operations"])
    assert "vacuum" in progress["views"]
