"""Unit tests for the pure build step of the database collector."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from dbpulse.sidecar.base import BuildResult, Context
from dbpulse.sidecar.collectors.database import DatabaseCollector


class _Fixed:
    def __init__(self, result: BuildResult) -> None:
        self.result = result

    def collect(self) -> Iterator[Metric]:
        return iter(self.result.families)


def _render(result: BuildResult) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(result))
    return generate_latest(registry).decode()


def test_counters_and_ms_to_seconds() -> None:
    """Counters keep their values and millisecond columns are exported in seconds."""
    row = {
        "datname": "app",
        "xact_commit": 10,
        "xact_rollback": 2,
        "blk_read_time": 1500.0,
        "numbackends": 3,
        "size_bytes": 8192,
        "frozen_xid_age": 42,
        "deadlocks": 1,
    }
    text = _render(DatabaseCollector().build({"databases": [row]}, Context("t", 150000, 0.0), None))
    assert 'pg_stat_database_xact_commit_total{datname="app"} 10.0' in text
    assert 'pg_stat_database_blk_read_time_seconds_total{datname="app"} 1.5' in text
    assert 'pg_database_size_bytes{datname="app"} 8192.0' in text
    assert 'pg_database_frozen_xid_age{datname="app"} 42.0' in text


def test_older_server_rows_without_session_columns() -> None:
    """Rows from a pre-14 server (no session columns) build without those families."""
    row = {
        "datname": "app",
        "xact_commit": 1,
        "numbackends": 0,
        "size_bytes": 1,
        "frozen_xid_age": 1,
    }
    text = _render(DatabaseCollector().build({"databases": [row]}, Context("t", 130000, 0.0), None))
    assert "pg_stat_database_sessions_total" not in text
    assert "pg_stat_database_xact_commit_total" in text


def test_null_columns_are_skipped() -> None:
    """A NULL counter produces no sample instead of a crash or a fake zero."""
    row = {
        "datname": "app",
        "xact_commit": None,
        "numbackends": None,
        "size_bytes": 5,
        "frozen_xid_age": 7,
    }
    text = _render(DatabaseCollector().build({"databases": [row]}, Context("t", 150000, 0.0), None))
    assert "pg_stat_database_xact_commit_total" not in text
    assert 'pg_database_size_bytes{datname="app"} 5.0' in text
