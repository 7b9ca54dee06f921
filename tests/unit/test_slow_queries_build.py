"""The slow_queries collector's pure build: typed facts, and the text cache as runtime-owned state."""

from __future__ import annotations

from typing import Any

from dbpulse.sidecar.base import Context
from dbpulse.sidecar.collectors import slow_queries
from dbpulse.sidecar.collectors.slow_queries import SlowQueriesCollector, remember

CTX = Context("t", 150000, 100.0)


def _slow(pid: int, query_id: int | None, text: str = "SELECT ?") -> dict[str, Any]:
    return {
        "pid": pid,
        "datname": "app",
        "application_name": "web",
        "query_id": query_id,
        "dbid": 1,
        "userid": 10,
        "query_start_epoch": 90.0,
        "query_age_seconds": 10.0,
        "traceparent": None,
        "query_text": text,
    }


def _req(query_id: int) -> dict[str, Any]:
    return {"dbid": 1, "userid": 10, "query_id": query_id}


def test_statement_text_is_preferred_and_misses_are_remembered() -> None:
    """A text found by query_id replaces pg_stat_activity's; a lookup that found nothing is cached as None."""
    rows = {
        "slow": [_slow(1, 7, "SELECT ? FROM t"), _slow(2, 8, "UPDATE t SET a = ?")],
        "texts_requested": [_req(7), _req(8)],
        "texts": [{**_req(7), "query": "SELECT $1 FROM t"}],
    }
    result = SlowQueriesCollector(1.0).build(rows, CTX, None)
    facts = result.facts.slow_queries
    assert facts is not None
    assert [(q.pid, q.text, q.text_source) for q in facts] == [
        (1, "SELECT $1 FROM t", "pg_stat_statements"),
        (2, "UPDATE t SET a = ?", "pg_stat_activity"),
    ]
    assert facts[0].age_seconds == 10.0
    assert result.state == {(1, 10, 7): "SELECT $1 FROM t", (1, 10, 8): None}
    assert result.families == []
    assert "SELECT" not in str(result.debug)


def test_cached_texts_are_used_without_a_new_lookup_and_the_old_state_is_untouched() -> None:
    """The state passed in answers the next build; build returns a new state and leaves the old one alone."""
    state = {(1, 10, 7): "SELECT $1 FROM t"}
    result = SlowQueriesCollector(1.0).build({"slow": [_slow(3, 7)]}, CTX, state)
    facts = result.facts.slow_queries
    assert facts is not None
    assert facts[0].text_source == "pg_stat_statements"
    assert result.state == state
    assert result.state is not state


def test_a_failed_lookup_is_not_cached_and_the_cache_is_bounded() -> None:
    """Without texts_requested (the lookup failed) nothing is cached; past MAX_CACHED the cache starts over."""
    assert remember({}, {"slow": [_slow(1, 7)]}) == {}
    full = {(1, 10, i): "x" for i in range(slow_queries.MAX_CACHED)}
    after = remember(full, {"texts_requested": [_req(-1)], "texts": []})
    assert after == {(1, 10, -1): None}


def test_no_query_id_means_the_activity_text() -> None:
    """Rows from servers before 14 (no query_id) keep pg_stat_activity's normalised text."""
    result = SlowQueriesCollector(1.0).build({"slow": [_slow(4, None, "SELECT ?")]}, CTX, {})
    facts = result.facts.slow_queries
    assert facts is not None
    assert (facts[0].text, facts[0].text_source, facts[0].query_id) == (
        "SELECT ?",
        "pg_stat_activity",
        None,
    )
