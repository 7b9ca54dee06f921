"""The regressions collector on a real server: a statement slowed by a "deploy" (an index
dropped) or by a change in its data is reported against its own baseline, with its plan
flip and the advice that names the missing index; putting things back clears it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from dbpulse.plans.regressions import RegressionRules
from dbpulse.sidecar.base import BuildResult
from dbpulse.sidecar.collectors.regressions import RegressionsCollector
from tests.integration.collector_helpers import runner, value

ROWS = 200_000
RULES = RegressionRules(factor=2.0, clear_factor=1.5, min_calls=20, recent_window=600)


def _collector() -> RegressionsCollector:
    # The default explain_period (1 h): a plan made again within the tests' 800 s is made
    # because its regression cleared, not because the old plan aged out.
    return RegressionsCollector(rules=RULES, explain_top=5, explain_per_poll=5, explain_timeout=5)


def _calls(dsn: str, sql: str, args: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for params in args:
            conn.execute(sql, params).fetchall()


def _queryid(dsn: str, fragment: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT queryid FROM pg_stat_statements WHERE query LIKE %s "
            "AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [f"%{fragment}%"],
        ).fetchone()
    assert row is not None, f"no pg_stat_statements entry like {fragment!r}"
    return str(row[0])


def _entry(result: BuildResult, queryid: str, part: str) -> dict[str, Any] | None:
    found = [e for e in result.debug[part] if e["queryid"] == queryid]
    return found[0] if found else None


def _fixed(
    dsn: str, fix: str, sql: str, poll: Callable[[], BuildResult], qid: str
) -> tuple[BuildResult, dict[str, Any]]:
    """Run ``fix``, then the statement 60 times, then ``poll`` (at a time the slow polls
    have left the recent window): the regression has cleared; the poll and the
    statement's new plan entry."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(fix)
    _calls(dsn, sql, [(i,) for i in range(60)])
    result = poll()
    assert value(result, "pg_stat_statements_regression_ratio", queryid=qid) is None
    plan = _entry(result, qid, "plans")
    assert plan is not None
    return result, plan


@pytest.fixture
def stats_db(matrix_db: str) -> str:
    """A fresh database with pg_stat_statements created in it, on every server of the
    version matrix (plans: PREPARE on 13-15, GENERIC_PLAN on 16+)."""
    with psycopg.connect(matrix_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
    return matrix_db


@pytest.fixture
def orders_dsn(stats_db: str) -> str:
    fresh_db = stats_db
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL, "
            "amount int NOT NULL, pad text NOT NULL)"
        )
        conn.execute(
            "INSERT INTO orders (customer_id, amount, pad) "
            f"SELECT i % 20000, i % 97, repeat('x', 40) FROM generate_series(1, {ROWS}) i"
        )
        conn.execute("CREATE INDEX orders_customer_idx ON orders (customer_id)")
        conn.execute("ANALYZE orders")
        conn.execute("SELECT pg_stat_statements_reset()")  # the setup is not the workload
    return fresh_db


LOOKUP = "SELECT id, amount FROM orders WHERE customer_id = %s"


def test_dropped_index_is_a_regression_with_plan_flip_and_advice(orders_dsn: str) -> None:
    """Dropping the index behind a fast lookup makes it a regression within two polls,
    with its plan flipped to a sequential scan and advice naming the index to create;
    restoring the index clears the regression and the advice."""
    collector = _collector()
    with runner(orders_dsn) as run:
        _calls(orders_dsn, LOOKUP, [(i,) for i in range(60)])
        qid = _queryid(orders_dsn, "FROM orders WHERE customer_id")
        first = run(collector, now=1000.0)
        assert value(first, "pg_stat_statements_regression_ratio", queryid=qid) is None
        planned = _entry(first, qid, "plans")
        assert planned is not None, first.debug
        assert "Seq Scan" not in planned["summary"], planned

        with psycopg.connect(orders_dsn, autocommit=True) as conn:
            conn.execute("DROP INDEX orders_customer_idx")  # the "deploy"
        _calls(orders_dsn, LOOKUP, [(i,) for i in range(60)])
        second = run(collector, now=1060.0)
        ratio = value(second, "pg_stat_statements_regression_ratio", queryid=qid)
        assert ratio is not None, second.debug["regressions"]
        assert ratio > RULES.factor
        regression = _entry(second, qid, "regressions")
        assert regression is not None
        assert "customer_id = $1" in regression["query"]
        plan = regression["plan"]
        assert plan["summary"] == "Seq Scan on orders", plan
        fixes = [a["fix"] for a in plan["advice"] if a["rule"] == "seq-scan-large-table"]
        assert fixes == ["CREATE INDEX CONCURRENTLY ON public.orders (customer_id);"]
        flips = [f for f in second.debug["flips"] if f["queryid"] == qid]
        assert [f["to"] for f in flips] == ["Seq Scan on orders"]
        assert value(second, "pg_stat_statements_plan_flips_total") == 1.0
        advice = value(second, "pg_plan_advice_findings", rule="seq-scan-large-table")
        assert advice is not None
        assert advice >= 1

        fix = "CREATE INDEX orders_customer_idx ON orders (customer_id); ANALYZE orders"
        third, replanned = _fixed(orders_dsn, fix, LOOKUP, lambda: run(collector, now=1800.0), qid)
        assert "Seq Scan" not in replanned["summary"]
        assert not [a for a in replanned["advice"] if a["rule"] == "seq-scan-large-table"]
        assert value(third, "pg_plan_advice_findings", rule="seq-scan-large-table") == 0.0


def test_data_change_flips_the_plan_and_regresses(stats_db: str) -> None:
    """A statement whose data changes under it (a selective column becomes two values)
    flips from an index to a sequential scan and is reported as regressed, with no advice
    to build the index it already has; putting the data back clears it and its plan."""
    fresh_db = stats_db
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigserial PRIMARY KEY, category int, pad text)")
        conn.execute(
            "INSERT INTO items (category, pad) "
            f"SELECT i, repeat('y', 40) FROM generate_series(1, {ROWS}) i"
        )
        conn.execute("CREATE INDEX items_category_idx ON items (category)")
        conn.execute("ANALYZE items")
        conn.execute("SELECT pg_stat_statements_reset()")
    count = "SELECT count(pad) FROM items WHERE category = %s"
    collector = _collector()
    with runner(fresh_db) as run:
        _calls(fresh_db, count, [(i,) for i in range(60)])
        qid = _queryid(fresh_db, "FROM items WHERE category")
        first = run(collector, now=1000.0)
        before = _entry(first, qid, "plans")
        assert before is not None
        assert "items_category_idx" in before["summary"], before
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            conn.execute("UPDATE items SET category = id % 2")
            conn.execute("ANALYZE items")
        _calls(fresh_db, count, [(i % 2,) for i in range(60)])
        second = run(collector, now=1060.0)
        ratio = value(second, "pg_stat_statements_regression_ratio", queryid=qid)
        assert ratio is not None
        assert ratio > RULES.factor
        after = _entry(second, qid, "plans")
        assert after is not None
        assert "Seq Scan on items" in after["summary"], after
        assert [f["queryid"] for f in second.debug["flips"]] == [qid]
        # Half the table matches: an index would not help, and none is advised.
        assert not [a for a in after["advice"] if a["rule"] == "seq-scan-large-table"], after

        fix = "UPDATE items SET category = id; ANALYZE items"
        third, restored = _fixed(fresh_db, fix, count, lambda: run(collector, now=1800.0), qid)
        assert "items_category_idx" in restored["summary"], restored
        assert [f["to"] for f in third.debug["flips"] if f["queryid"] == qid][-1] == (
            restored["summary"]
        )
