"""Unit tests for the snapshot store: staleness, readiness and exporter metrics."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from dbpulse.sidecar.base import BuildResult
from dbpulse.sidecar.connection import Backoff
from dbpulse.sidecar.snapshot import Snapshot


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _family(value: float) -> GaugeMetricFamily:
    fam = GaugeMetricFamily("pg_example", "x", labels=["datname"])
    fam.add_metric(["app"], value)
    return fam


def _text(snap: Snapshot) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snap)
    return generate_latest(registry).decode()


def test_success_is_served_and_expires_after_stale_after() -> None:
    """A collector's families are served while fresh and dropped once stale."""
    clock = Clock()
    snap = Snapshot("t", {"a": 30.0}, clock=clock)
    snap.record_success("a", BuildResult([_family(5)]), 0.01)
    assert 'pg_example{datname="app"} 5.0' in _text(snap)
    assert "pg_up 1.0" in _text(snap)
    clock.now += 31
    assert "pg_example" not in _text(snap)


def test_failure_keeps_last_good_data_and_reports_success_zero() -> None:
    """A failed run keeps serving the last good families with collector_success 0."""
    clock = Clock()
    snap = Snapshot("t", {"a": 30.0, "b": 30.0}, clock=clock)
    snap.record_success("a", BuildResult([_family(5)]), 0.01)
    clock.now += 5
    snap.record_failure("a", 0.02, "boom", reached=True)
    text = _text(snap)
    assert 'pg_example{datname="app"} 5.0' in text
    assert 'pg_scrape_collector_success{collector="a"} 0.0' in text
    assert 'pg_scrape_collector_success{collector="b"} 0.0' in text


def test_readiness_needs_database_and_fresh_poll() -> None:
    """/readyz logic: not ready before any poll, ready after, not ready when unreachable or stale."""
    clock = Clock()
    snap = Snapshot("t", {"a": 30.0}, clock=clock)
    ready, reason = snap.readiness(45)
    assert not ready
    assert "not reachable" in reason
    snap.record_success("a", BuildResult([]), 0.01)
    assert snap.readiness(45) == (True, "ok")
    clock.now += 50
    ready, reason = snap.readiness(45)
    assert not ready
    assert "stale" in reason
    snap.record_failure("a", 0.0, "connection refused", reached=False)
    ready, reason = snap.readiness(45)
    assert not ready
    assert "connection refused" in reason
    assert "pg_up 0.0" in _text(snap)


def test_snapshot_age_counts_from_last_reach() -> None:
    """dbpulse_snapshot_age_seconds is the time since a poll last reached the database."""
    clock = Clock()
    snap = Snapshot("t", {"a": 30.0}, clock=clock)
    snap.record_success("a", BuildResult([]), 0.01)
    clock.now += 12
    assert snap.snapshot_age() == 12
    assert "dbpulse_snapshot_age_seconds 12.0" in _text(snap)


def test_backoff_doubles_and_caps() -> None:
    """Reconnect backoff doubles per failure up to its maximum and resets on success."""
    backoff = Backoff(initial=1, maximum=8)
    delays = [backoff.failed(0.0) for _ in range(6)]
    assert delays == [1, 2, 4, 8, 8, 8]
    assert not backoff.ready(7.9)
    backoff.succeeded()
    assert backoff.ready(0.0)


def _part(part: object) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(part)  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def test_generation_changes_exactly_when_the_cached_part_would_render_differently() -> None:
    """Success, failure, added/removed collectors and crossing stale_after change it; time alone does not."""
    clock = Clock()
    snap = Snapshot("t", {"a": 30.0}, clock=clock)
    seen = [snap.generation()]
    clock.now += 5
    assert snap.generation() == seen[-1]
    assert _part(snap.cached) == _part(snap.cached)
    changes: list[Callable[[], None]] = [
        lambda: snap.record_success("a", BuildResult([_family(5)]), 0.01),
        lambda: snap.record_failure("a", 0.02, "boom", reached=True),
        lambda: snap.add_collector("b", 30.0),
        lambda: snap.remove_collector("b"),
    ]
    for change in changes:
        before = _part(snap.cached)
        change()
        assert snap.generation() not in seen
        assert _part(snap.cached) != before
        seen.append(snap.generation())
    rendered = _part(snap.cached)
    clock.now += 10  # still fresh: same generation, same body
    assert snap.generation() == seen[-1]
    assert _part(snap.cached) == rendered
    clock.now += 21  # "a" crosses stale_after: its families drop out
    assert snap.generation() != seen[-1]
    assert "pg_example" not in _part(snap.cached)


def test_live_part_holds_the_clock_driven_family_and_the_cached_part_the_rest() -> None:
    """dbpulse_snapshot_age_seconds is only in live; every other family only in cached."""
    clock = Clock()
    snap = Snapshot("t", {"a": 30.0}, clock=clock)
    snap.record_success("a", BuildResult([_family(5)]), 0.01)
    clock.now += 3
    live, cached = _part(snap.live), _part(snap.cached)
    assert "dbpulse_snapshot_age_seconds 3.0" in live
    assert "pg_up" not in live
    assert "dbpulse_snapshot_age_seconds" not in cached
    for name in ("pg_up", "dbpulse_build_info", "pg_scrape_collector_success", "pg_example"):
        assert name in cached
    assert sorted((live + cached).splitlines()) == sorted(_text(snap).splitlines())
