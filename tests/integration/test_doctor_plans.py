"""``dbpulse doctor``'s plan advice against a real PostgreSQL (generic plans of the top
statements, never ANALYZE)."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.integration.test_doctor import _doctor, _tidy


def test_plan_advice_names_the_index_for_the_top_statement(
    fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The top statement's generic plan reads a large table sequentially through a
    selective filter: doctor warns with the CREATE INDEX CONCURRENTLY to run, and the
    report carries no constant of the statements it planned."""
    _tidy(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, account int, body text)")
        conn.execute(
            "INSERT INTO events (account, body) "
            "SELECT i % 5000, 'secret-body' FROM generate_series(1, 100000) i"
        )
        conn.execute("ANALYZE events")
        conn.execute("SELECT pg_stat_statements_reset()")
        for account in range(30):
            conn.execute("SELECT id FROM events WHERE account = %s", [account]).fetchall()
        conn.execute("SELECT count(*) FROM events WHERE body = 'secret-body'").fetchall()
    code, found = _doctor(capsys, "--dsn", fresh_db)
    advice = found["plan_advice"]
    assert advice["level"] == "warning", advice
    assert any(
        "fix: CREATE INDEX CONCURRENTLY ON public.events (account);" in line
        for line in advice["items"]
    ), advice["items"]
    assert code == 0  # advice never fails a deploy gate on its own
    assert "secret-body" not in json.dumps(found["_report"])
    code, found = _doctor(capsys, "--dsn", fresh_db, "--explain-top", "0")
    assert "plan_advice" not in found
