"""Unit tests for the pure build step of the database collector."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics

from dbpulse.http.barecounter import text_encoder
from dbpulse.sidecar.base import BuildResult, Context
from dbpulse.sidecar.collectors.database import DatabaseCollector

CTX = Context("t", 150000, 0.0, server="db:5432")
generate_openmetrics: Callable[[CollectorRegistry], bytes] = openmetrics.generate_latest


class _Fixed:
    def __init__(self, result: BuildResult) -> None:
        self.result = result

    def collect(self) -> Iterator[Metric]:
        return iter(self.result.families)


def _registry(result: BuildResult) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(result))
    return registry


def _render(result: BuildResult) -> str:
    """Text format 0.0.4 as dbpulse serves it (postgres_exporter's counters keep their names)."""
    return text_encoder(generate_latest)(_registry(result)).decode()


def _stat(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"datid": 16384, "datname": "app", "xact_commit": 10}
    row.update(kw)
    return row


def _build(stats: list[dict[str, Any]], **rows: list[dict[str, Any]]) -> BuildResult:
    return DatabaseCollector().build({"stats": stats, **rows}, CTX, None)


def test_postgres_exporter_names_types_and_units() -> None:
    """Counters keep postgres_exporter's names without _total, milliseconds stay milliseconds."""
    row = _stat(xact_rollback=2, blk_read_time=1500.0, numbackends=3, deadlocks=1)
    text = _render(_build([row]))
    labels = '{datid="16384",datname="app",server="db:5432"}'
    assert "# TYPE pg_stat_database_xact_commit counter\n" in text
    assert f"pg_stat_database_xact_commit{labels} 10.0" in text
    assert f"pg_stat_database_blk_read_time{labels} 1500.0" in text
    assert "# TYPE pg_stat_database_numbackends gauge\n" in text
    assert "_total" not in text


def test_openmetrics_keeps_the_names_too() -> None:
    """OpenMetrics output names the counter and its sample without _total (Prometheus stores that)."""
    text = generate_openmetrics(_registry(_build([_stat()]))).decode()
    assert "# TYPE pg_stat_database_xact_commit counter\n" in text
    assert 'pg_stat_database_xact_commit{datid="16384",datname="app",server="db:5432"} 10.0' in text


def test_session_columns_are_untyped_as_in_postgres_exporter() -> None:
    """PostgreSQL 14's session columns are untyped (postgres_exporter 0.11.1 leaves them so)."""
    text = _render(_build([_stat(sessions=4, active_time=12.5)]))
    assert "# TYPE pg_stat_database_sessions untyped\n" in text
    assert "# TYPE pg_stat_database_active_time untyped\n" in text
    assert 'pg_stat_database_active_time{datid="16384",datname="app",server="db:5432"} 12.5' in text


def test_older_server_rows_without_session_columns() -> None:
    """Rows from a pre-14 server (no session columns) build without those families."""
    text = _render(_build([_stat()]))
    assert "pg_stat_database_sessions" not in text
    assert "pg_stat_database_xact_commit{" in text


def test_null_columns_are_nan_and_shared_row_is_kept() -> None:
    """NULL becomes NaN as in postgres_exporter, and the shared-objects row (datid 0) stays."""
    rows = [_stat(stats_reset=None), _stat(datid=0, datname="", stats_reset=1700000000.0)]
    text = _render(_build(rows))
    assert 'pg_stat_database_stats_reset{datid="16384",datname="app",server="db:5432"} NaN' in text
    assert 'pg_stat_database_stats_reset{datid="0",datname="",server="db:5432"} 1.7e+09' in text


def test_conflicts_and_database_catalog_families() -> None:
    """Recovery conflicts per database, sizes, connection limits and wraparound age."""
    conflicts = [{"datid": 5, "datname": "postgres", "confl_lock": 2}]
    databases = [
        {"datname": "template0", "size_bytes": 8192, "datconnlimit": -1, "frozen_xid_age": 7}
    ]
    text = _render(_build([], conflicts=conflicts, databases=databases))
    assert "# TYPE pg_stat_database_conflicts_confl_lock counter\n" in text
    assert (
        'pg_stat_database_conflicts_confl_lock{datid="5",datname="postgres",server="db:5432"} 2.0'
        in text
    )
    assert 'pg_database_size_bytes{datname="template0",server="db:5432"} 8192.0' in text
    assert 'pg_database_connection_limit{datname="template0",server="db:5432"} -1.0' in text
    assert 'pg_database_frozen_xid_age{datname="template0"} 7.0' in text
