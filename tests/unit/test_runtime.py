"""The runtime's pure wiring: the collector registry, tracing collectors, and poll lanes."""

from __future__ import annotations

from dbpulse.settings import COLLECTOR_NAMES, load_settings
from dbpulse.sidecar import collectors
from dbpulse.sidecar.runtime import deal, server_collectors


def test_registry_agrees_with_the_settings() -> None:
    """Every collector the settings know has a module, and every module a settings entry."""
    assert set(collectors.FACTORIES) == set(COLLECTOR_NAMES)
    assert not set(collectors.TRACING) & set(COLLECTOR_NAMES)
    for name, (_, schedule) in collectors.TRACING.items():
        assert schedule in COLLECTOR_NAMES, name


def test_slow_queries_run_only_with_tracing_on_activity_schedule() -> None:
    """With tracing on, slow_queries joins the target on activity's interval, timeout and stale_after."""
    off = load_settings(dsn="postgresql://x@h/db")
    assert "slow_queries" not in server_collectors(off, set(), compact=False)[0]
    on = load_settings(
        dsn="postgresql://x@h/db",
        telemetry={"enabled": True},
        collectors={"activity": {"interval": 7, "timeout": 2, "stale_after": 50}},
    )
    found, schedules, stale = server_collectors(on, set(), compact=False)
    assert found["slow_queries"].name == "slow_queries"
    assert (schedules["slow_queries"].interval, schedules["slow_queries"].timeout) == (7.0, 2.0)
    assert stale["slow_queries"] == 50.0
    untraced, _, _ = server_collectors(on, set(), compact=False, traced=False)
    assert "slow_queries" not in untraced  # a probed target: no tracer reads it


def test_per_database_collectors_and_probes() -> None:
    """Per-database collectors leave the server set; each probe is its own collector."""
    settings = load_settings(
        dsn="postgresql://x@h/db", probes=[{"name": "jobs", "sql": "SELECT 1 AS n"}]
    )
    found, _, _ = server_collectors(settings, {"migrations"}, compact=True)
    assert "migrations" not in found
    assert "probe:jobs" in found
    assert found["probe:jobs"].name == "probe:jobs"


def test_lanes_deal_collectors_round_robin_one_per_connection() -> None:
    """One lane per connection, never more lanes than collectors, never an empty lane."""
    names = ["a", "b", "c", "d", "e"]
    assert deal(names, 1) == [names]
    assert deal(names, 2) == [["a", "c", "e"], ["b", "d"]]
    assert deal(names[:2], 5) == [["a"], ["b"]]
    assert deal([], 3) == []
