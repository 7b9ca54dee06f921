"""The pure episode tracker and the facts -> sightings conversions."""

from __future__ import annotations

from dbpulse.sidecar.base import Context
from dbpulse.sidecar.blocking import build_tree
from dbpulse.sidecar.collectors.progress import index_builds
from dbpulse.sidecar.collectors.slow_queries import SlowQueriesCollector
from dbpulse.sidecar.tracing_episodes import Sighting, TrackerState, close_all, observe
from dbpulse.sidecar.tracing_sightings import (
    blocking_sightings,
    index_build_sightings,
    slow_query_sightings,
)


def _s(key: str, started: float, phase: str | None = None) -> Sighting:
    return Sighting(key=key, started_at=started, name=key, phase=phase)


def test_first_sighting_starts_at_its_own_start_time() -> None:
    """A new key is one 'started' event dated by the sighting, not by the poll."""
    state, events = observe(TrackerState(), [_s("a", 95.0, "p1")], now=100.0)
    assert [(e.kind, e.key, e.at) for e in events] == [("started", "a", 95.0)]
    assert set(state.open) == {"a"}


def test_start_is_never_in_the_future() -> None:
    """A start estimate after the poll (clock skew) is clamped to the poll time."""
    _, events = observe(TrackerState(), [_s("a", 105.0)], now=100.0)
    assert events[0].at == 100.0


def test_phase_change_is_an_event_at_the_poll_and_same_phase_is_silent() -> None:
    """Only a different phase produces an event; it names the previous phase."""
    state, _ = observe(TrackerState(), [_s("a", 90.0, "p1")], now=100.0)
    state, quiet = observe(state, [_s("a", 90.0, "p1")], now=101.0)
    assert quiet == []
    state, events = observe(state, [_s("a", 90.0, "p2")], now=102.0)
    assert [(e.kind, e.at, e.sighting.phase, e.previous_phase) for e in events] == [
        ("phase_changed", 102.0, "p2", "p1")
    ]


def test_disappearance_ends_at_the_last_sighting() -> None:
    """A key missing from a poll ends at the poll that last saw it, with its last phase."""
    state, _ = observe(TrackerState(), [_s("a", 90.0, "p1")], now=100.0)
    state, _ = observe(state, [_s("a", 90.0, "p2")], now=105.0)
    state, events = observe(state, [], now=110.0)
    assert [(e.kind, e.at, e.sighting.phase) for e in events] == [("ended", 105.0, "p2")]
    assert state.open == {}


def test_duplicate_keys_in_one_poll_count_once() -> None:
    """Two rows for one key (parallel workers) make one episode."""
    _, events = observe(TrackerState(), [_s("a", 1.0), _s("a", 2.0)], now=10.0)
    assert len(events) == 1


def test_close_all_ends_every_open_episode() -> None:
    """On shutdown each open episode ends at its last sighting."""
    state, _ = observe(TrackerState(), [_s("a", 1.0), _s("b", 2.0)], now=10.0)
    assert sorted((e.kind, e.key, e.at) for e in close_all(state)) == [
        ("ended", "a", 10.0),
        ("ended", "b", 10.0),
    ]


def test_index_build_sighting_has_phase_ratio_and_start() -> None:
    """A create_index row dates its start from elapsed_seconds and carries its ratio."""
    row = {
        "pid": 7,
        "datname": "app",
        "relname": "orders",
        "index_relname": "",
        "command": "CREATE INDEX CONCURRENTLY",
        "phase": "building index: scanning table",
        "blocks_done": 25,
        "blocks_total": 100,
        "elapsed_seconds": 12.0,
        "traceparent": None,
    }
    (s,) = index_build_sightings(index_builds([row]), now=1000.0)
    assert s.started_at == 988.0
    assert s.name == "CREATE INDEX CONCURRENTLY orders"
    assert s.phase == "building index: scanning table"
    assert s.attributes["dbpulse.progress.ratio"] == 0.25
    assert s.traceparent is None


def test_blocking_sighting_per_root_with_waiters_and_longest_wait() -> None:
    """One root blocking two waiters (one through another) is one episode dated by the longest wait."""
    rows = [
        {"pid": 1, "datname": "app", "state": "idle in transaction", "blocked_by": []},
        {"pid": 2, "datname": "app", "state": "active", "blocked_by": [1], "wait_seconds": 4.0},
        {"pid": 3, "datname": "app", "state": "active", "blocked_by": [2], "wait_seconds": 9.0},
    ]
    (s,) = blocking_sightings(build_tree(rows), now=100.0)
    assert s.key == ("blocking", 1)
    assert s.started_at == 91.0
    assert s.attributes["dbpulse.blocking.waiter_pids"] == "2,3"
    assert s.attributes["dbpulse.blocking.waiters"] == 2
    assert s.attributes["dbpulse.blocking.root_state"] == "idle in transaction"


def test_slow_query_sighting_uses_the_normalised_text_and_traceparent() -> None:
    """A slow row becomes a span-to-be named by its summary, with the comment's traceparent."""
    tp = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    row = {
        "pid": 5,
        "datname": "app",
        "application_name": "web",
        "query_id": 42,
        "query_start_epoch": 50.0,
        "query_age_seconds": 3.0,
        "traceparent": tp,
        "query_text": "SELECT ?, pg_sleep(?) FROM orders",
    }
    # The slow_queries collector's pure build turns its fetched rows into typed facts.
    result = SlowQueriesCollector(1.0).build({"slow": [row]}, Context("t", 150000, 60.0), None)
    assert result.facts.slow_queries is not None
    (s,) = slow_query_sightings(result.facts.slow_queries, now=60.0)
    assert s.key == ("slow_query", 5, 50.0)
    assert s.started_at == 57.0
    assert s.name == "SELECT orders"
    assert s.attributes["db.query.text"] == "SELECT ?, pg_sleep(?) FROM orders"
    assert s.attributes["dbpulse.query_id"] == "42"
    assert s.traceparent == tp


def test_slow_query_text_has_no_literal_even_when_cut_inside_one() -> None:
    """A pg_stat_activity text cut mid-literal (track_activity_query_size) keeps no part of it."""
    from dbpulse.sidecar.scrub import literal_free

    cut = (
        "/*traceparent='00-ab'*/ SELECT * FROM t WHERE a = 'secret-literal-42' AND b = 'secret-lit"
    )
    text = literal_free(cut)
    assert text == "SELECT * FROM t WHERE a = ? AND b = ?"
    assert "secret" not in literal_free("SELECT $q$secret-literal-42$q$, E'x\\'secret'")
    assert "secret" not in literal_free("SELECT 1 WHERE a = $$secret-literal-42")
    assert literal_free(None) == ""
