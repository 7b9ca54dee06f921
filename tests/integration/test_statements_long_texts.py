"""/debug/statements on real pg_stat_statements texts longer than text_max_length."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from dbpulse.localpg import LocalPostgres
from dbpulse.settings import load_settings
from dbpulse.sidecar.collectors import statements
from tests.integration.collector_helpers import runner

SECRET = "hunter2-at-the-tail"
COLUMNS = ", ".join(f"column_number_{i}" for i in range(30))


def _debug(dsn: str, max_length: int) -> list[dict[str, Any]]:
    """/debug/statements' entries, read through the database holding the extension."""
    collector = statements.StatementsCollector(
        top_n=100000, max_series=1000000, text_max_length=max_length
    )
    with runner(dsn) as run:
        run(collector)  # selects
        found: list[dict[str, Any]] = run(collector).debug["statements"]  # fetches texts
    return found


def test_cut_texts_keep_their_tail_and_a_hash_apart_and_no_literal(
    pg: LocalPostgres, fresh_db: str
) -> None:
    """Two ORM-like SELECTs sharing a 600-character prefix are told apart by their tails
    and hashes, the WHERE shows, and a utility statement's literal at the end stays out."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE wide ({COLUMNS.replace(',', ' int,')} int)")
        conn.execute(f"SELECT {COLUMNS} FROM wide WHERE column_number_1 = 5")
        conn.execute(f"SELECT {COLUMNS} FROM wide WHERE column_number_2 = 7 AND true")
        conn.execute(
            f"CREATE TABLE secret_tail ({COLUMNS.replace(',', ' int,')} int,"
            f" note text DEFAULT '{SECRET}')"
        )
    shown = _debug(pg.dsn, 200)
    selects = [s for s in shown if s["query_truncated"] and "FROM wide" in s["query_tail"]]
    tails = sorted(s["query_tail"] for s in selects)
    assert len(selects) == 2, tails
    assert selects[0]["query"] == selects[1]["query"]
    assert len(selects[0]["query"]) == 200
    assert tails[0].endswith("FROM wide WHERE column_number_1 = $1")
    assert tails[1].endswith("FROM wide WHERE column_number_2 = $1 AND $2")
    assert selects[0]["query_hash"] != selects[1]["query_hash"]
    (create,) = [s for s in shown if s["query_truncated"] and "secret_tail" in s["query"]]
    assert create["query_tail"].endswith("note text DEFAULT '?')")
    assert SECRET not in json.dumps(shown)


def test_default_keeps_2000_characters(pg: LocalPostgres, fresh_db: str) -> None:
    """With the default text_max_length a 600-character statement is shown whole."""
    collector = statements.create(load_settings(dsn=fresh_db))
    assert collector.text_max_length == 2000
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE wide ({COLUMNS.replace(',', ' int,')} int)")
        conn.execute(f"SELECT {COLUMNS} FROM wide WHERE column_number_3 = 9")
    shown = _debug(pg.dsn, collector.text_max_length)
    (whole,) = [s for s in shown if (s["query"] or "").endswith("WHERE column_number_3 = $1")]
    assert whole["query_truncated"] is False
    assert whole["query"].startswith(f"SELECT {COLUMNS}")
