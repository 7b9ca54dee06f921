"""Unit tests for the statements collector's build: families, state, texts, summarise, ranking.

Selection (top-N, holds, the series budget) is in test_statements_select.py.
"""

from __future__ import annotations

import json
from typing import Any

from dbpulse.sidecar.base import BuildResult, Context
from dbpulse.sidecar.collectors.statements import (
    StatementsCollector,
    StatementsState,
    rank,
    scrub_text,
)
from dbpulse.sidecar.collectors.statements_select import texts_wanted


def _row(
    queryid: int, total_ms: float | None, *, dbid: int = 1, userid: int = 10, **kw: Any
) -> dict[str, Any]:
    row = {
        "dbid": dbid,
        "userid": userid,
        "queryid": queryid,
        "datname": "app",
        "user": "web",
        "calls": 3.0,
        "total_ms": total_ms,
        "rows": 6.0,
        "shared_blks_hit": 1.0,
        "shared_blks_read": 2.0,
        "temp_blks_written": 0.0,
    }
    row.update(kw)
    return row


def _k(queryid: int) -> tuple[int, int, int]:
    return (1, 10, queryid)


def test_rank_orders_by_time_with_stable_ties() -> None:
    """Ranking is by total time descending, ties by (dbid, userid, queryid) like the SQL."""
    rows = [_row(3, 5.0), _row(2, 5.0), _row(1, 9.0), _row(4, None)]
    assert [r["queryid"] for r in rank(rows)] == [1, 2, 3, 4]


def test_scrub_text_removes_literals_and_truncates() -> None:
    """Quoted and dollar-quoted literals become '?', parameters stay, long text is cut."""
    assert scrub_text("ALTER ROLE a PASSWORD 'it''s secret'", 200) == "ALTER ROLE a PASSWORD '?'"
    assert scrub_text("SELECT $1 FROM t WHERE x = $2", 200) == "SELECT $1 FROM t WHERE x = $2"
    assert scrub_text("DO $body$ BEGIN PERFORM 1; END $body$", 200) == "DO '?'"
    assert scrub_text("SET x = E'abc", 200) == "SET x = '?'"
    assert scrub_text("SELECT " + "a" * 50, 10) == "SELECT aa\u2026"
    assert "secret" not in scrub_text("COPY t FROM $$secret", 200)
    assert scrub_text("SET x = E'x\\'secret' ", 200) == "SET x = '?' "
    assert "secret" not in scrub_text("SET x = E'a\\'secret", 200)


def _collector(**kw: Any) -> StatementsCollector:
    return StatementsCollector(**{"top_n": 1, "hold_seconds": 60.0, **kw})


def _build(
    collector: StatementsCollector, rows: dict[str, Any], ctx: Context, state: Any = None
) -> BuildResult:
    """Build from summarise()'s output shape (totals, ranked candidates), state passed in."""
    return collector.build_summary(rows, ctx, state)


def _samples(result: BuildResult) -> dict[tuple[str, Any], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in result.families
        for s in fam.samples
    }


TOTALS = [{"datname": "app", "calls": 100.0, "total_ms": 5000.0}]


def test_build_exports_counters_in_seconds_with_string_queryids() -> None:
    """Selected statements become counters (ms in seconds) with datname/user/queryid labels."""
    collector = _collector()
    big = -(2**62)
    rows = {"totals": TOTALS, "candidates": [_row(big, 2500.0), _row(2, 100.0)]}
    samples = _samples(_build(collector, rows, Context("t", 150000, 0.0)))
    labels = (("datname", "app"), ("queryid", str(big)), ("user", "web"))
    assert samples["pg_stat_statements_seconds_total", labels] == 2.5
    assert samples["pg_stat_statements_calls_total", labels] == 3
    assert samples["pg_stat_statements_temp_blks_written_total", labels] == 0
    assert samples["pg_stat_statements_all_calls_total", (("datname", "app"),)] == 100
    assert samples["pg_stat_statements_all_seconds_total", (("datname", "app"),)] == 5
    assert not any(dict(k[1]).get("queryid") == "2" for k in samples)


def test_build_keeps_state_between_polls_and_reports_coverage() -> None:
    """The collector holds a statement that fell out of the top and shows coverage in debug."""
    collector = _collector()
    first = _build(
        collector,
        {"totals": TOTALS, "candidates": [_row(1, 300.0), _row(2, 100.0)]},
        Context("t", 150000, 0.0),
    )
    result = _build(
        collector,
        {"totals": TOTALS, "candidates": [_row(2, 900.0), _row(1, 300.0)]},
        Context("t", 150000, 15.0),
        first.state,
    )
    debug = result.debug
    assert [s["queryid"] for s in debug["statements"]] == ["2", "1"]
    assert [s["in_top_n"] for s in debug["statements"]] == [True, False]
    assert debug["covered"]["seconds"] == 1200.0 / 5000.0
    json.dumps(debug)


def test_texts_are_requested_once_scrubbed_and_kept_out_of_labels() -> None:
    """Texts come only for newly selected statements, are scrubbed, and never become labels."""
    collector = _collector(text_max_length=40)
    ctx = Context("t", 150000, 1000.0)
    first = _build(collector, {"totals": TOTALS, "candidates": [_row(1, 10.0)]}, ctx)
    assert texts_wanted(first.state, ctx.now, 40) == [_k(1)]
    rows = {
        "totals": TOTALS,
        "candidates": [_row(1, 20.0)],
        "texts_requested": [{"dbid": 1, "userid": 10, "queryid": 1}],
        "texts": [{"dbid": 1, "userid": 10, "queryid": 1, "query": "SET a = 'hunter2'"}],
    }
    result = _build(collector, rows, ctx, first.state)
    assert result.debug["statements"][0]["query"] == "SET a = '?'"
    assert "hunter2" not in json.dumps(result.debug)
    assert all("query" not in s.labels for fam in result.families for s in fam.samples)
    # Known now: not asked again, even after the rate limit has passed.
    assert texts_wanted(result.state, ctx.now + 3600, 40) == []


def test_text_fetch_is_rate_limited_and_can_be_disabled() -> None:
    """Newly selected statements wait for the text rate limit; text_max_length=0 never asks."""
    collector = _collector()
    rows = {"totals": TOTALS, "candidates": [_row(1, 10.0)]}
    fetched = StatementsState(last_text_fetch=1000.0)
    state = _build(collector, rows, Context("t", 1, 1001.0), fetched).state
    assert texts_wanted(state, 1010.0, collector.text_max_length) == []
    assert texts_wanted(state, 1061.0, collector.text_max_length) == [_k(1)]
    off = _collector(text_max_length=0)
    off_state = _build(off, rows, Context("t", 1, 0.0)).state
    assert texts_wanted(off_state, 10_000.0, off.text_max_length) == []


def test_budget_notice_and_null_names() -> None:
    """A top_n the budget cannot hold yields one static notice; NULL names become ''."""
    collector = _collector(top_n=5, max_series=10)
    rows = {
        "totals": [{"datname": None, "calls": None, "total_ms": None}],
        "candidates": [_row(1, 10.0, datname=None, user=None), _row(2, 5.0)],
    }
    result = _build(collector, rows, Context("t", 120000, 0.0))
    assert len(result.notices) == 1
    assert "max_series=10" in result.notices[0]
    samples = _samples(result)
    calls = [k for k in samples if k[0] == "pg_stat_statements_calls_total"]
    assert calls == [
        ("pg_stat_statements_calls_total", (("datname", ""), ("queryid", "1"), ("user", "")))
    ]
    assert result.debug["covered"] == {"calls": None, "seconds": None}


def test_counter_reset_is_passed_through() -> None:
    """After pg_stat_statements_reset() counters simply go down; the build does not object."""
    collector = _collector()
    before = _build(
        collector, {"totals": TOTALS, "candidates": [_row(1, 900.0)]}, Context("t", 1, 0.0)
    )
    after = _build(
        collector,
        {"totals": TOTALS, "candidates": [_row(1, 1.0, calls=1.0)]},
        Context("t", 1, 15.0),
        before.state,
    )
    labels = (("datname", "app"), ("queryid", "1"), ("user", "web"))
    assert _samples(after)["pg_stat_statements_calls_total", labels] == 1


def test_summarise_merges_toplevel_totals_every_entry_and_keeps_held() -> None:
    """summarise() merges toplevel twins, totals every entry per database, and adds held statements."""
    from dbpulse.sidecar.collectors.statements import summarise

    def raw(
        dbid: int, userid: int, queryid: int | None, ms: float, calls: int = 1
    ) -> dict[str, object]:
        return {
            "dbid": dbid,
            "userid": userid,
            "queryid": queryid,
            "calls": calls,
            "total_ms": ms,
            "rows": 1,
            "shared_blks_hit": 0,
            "shared_blks_read": None,
            "temp_blks_written": 0,
        }

    names = [{"is_db": True, "oid": 1, "name": "app"}, {"is_db": False, "oid": 10, "name": "web"}]
    rows = [
        raw(1, 10, 7, 5.0),
        raw(1, 10, 7, 6.0, calls=2),
        raw(1, 10, 8, 10.0),
        raw(1, 10, 9, 1.0),
        raw(1, 10, None, 100.0),
        raw(2, 10, 3, 0.5),
    ]
    totals, candidates = summarise(rows, names, top_n=2, held_queryids={9})
    assert totals == [
        {"datname": "2", "calls": 1.0, "total_ms": 0.5},
        {"datname": "app", "calls": 6.0, "total_ms": 122.0},
    ]
    assert [(c["queryid"], c["total_ms"], c["calls"]) for c in candidates] == [
        (7, 11.0, 3.0),
        (8, 10.0, 1.0),
        (9, 1.0, 1.0),
    ]
    assert candidates[0]["datname"] == "app"
    assert candidates[0]["user"] == "web"
    assert candidates[0]["shared_blks_read"] == 0.0


def _raw(queryid: int, ms: float) -> dict[str, object]:
    return {
        "dbid": 1,
        "userid": 10,
        "queryid": queryid,
        "calls": 1,
        "total_ms": ms,
        "rows": 1,
        "shared_blks_hit": 0,
        "shared_blks_read": 0,
        "temp_blks_written": 0,
    }


NAMES = [{"is_db": True, "oid": 1, "name": "app"}, {"is_db": False, "oid": 10, "name": "web"}]


def test_build_is_pure_and_the_state_goes_in_and_out() -> None:
    """build() from raw rows leaves the collector and the old state alone; the held set comes from the state passed in."""
    collector = _collector()
    ctx0, ctx1 = Context("t", 150000, 0.0), Context("t", 150000, 15.0)
    first = collector.build({"raw": [_raw(1, 300.0), _raw(2, 100.0)], "names": NAMES}, ctx0, None)
    assert first.state.last_in_top == {_k(1): 0.0}
    raw = {"raw": [_raw(2, 900.0), _raw(1, 300.0)], "names": NAMES}
    held = collector.build(raw, ctx1, first.state)
    fresh = collector.build(raw, ctx1, None)
    assert [s["queryid"] for s in held.debug["statements"]] == ["2", "1"]
    assert [s["queryid"] for s in fresh.debug["statements"]] == ["2"]
    assert first.state.last_in_top == {_k(1): 0.0}
    assert collector.build(raw, ctx1, first.state).debug == held.debug
