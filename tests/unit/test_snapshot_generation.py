"""Snapshot.generation(): equal exactly while the served families (bar snapshot age) are equal."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from dbpulse.sidecar.base import BuildResult
from dbpulse.sidecar.snapshot import Snapshot
from tests.unit.test_snapshot import Clock


def _result(value: float) -> BuildResult:
    family = GaugeMetricFamily("pg_example", "x")
    family.add_metric([], value)
    return BuildResult([family])


def test_generation_moves_with_every_change_collect_would_show() -> None:
    """Polls, failures, added/removed collectors and staleness change the generation; time alone does not."""
    clock = Clock()
    snap = Snapshot("t", {"a": 30.0}, clock=clock)
    seen = [snap.generation()]
    clock.now += 5
    assert snap.generation() == seen[-1]  # nothing happened: the cached body stays valid
    snap.record_success("a", _result(1), 0.01)
    seen.append(snap.generation())
    snap.record_failure("a", 0.01, "boom", reached=True)
    seen.append(snap.generation())
    snap.add_collector("b", 30.0)
    seen.append(snap.generation())
    snap.remove_collector("b")
    seen.append(snap.generation())
    clock.now += 31  # "a"'s last success goes stale: its families leave the body
    seen.append(snap.generation())
    assert len(set(seen)) == len(seen), seen
