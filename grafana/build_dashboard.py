"""Generate grafana/dashboards/dbpulse.json from plain data (deterministic output).

    python grafana/build_dashboard.py            # rewrite the committed JSON
    python grafana/build_dashboard.py --check    # exit 1 if the committed JSON differs

Panels are declared row by row as data; this script only lays them out on Grafana's
24-column grid and adds the boilerplate. Review the data, not the JSON.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# layout-note: one data structure, the dashboard's panels row by row (ROWS, most of the
# layout-note: file), beside the small code that lays them out; review the data, not the JSON.

OUT = Path(__file__).resolve().parent / "dashboards" / "dbpulse.json"

UID = "dbpulse-overview"
TITLE = "dbpulse: PostgreSQL and SQLAlchemy"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# A service_version whose target_info series did not exist 5 minutes earlier.
DEPLOYS = (
    'count by (service_name, service_version) (target_info{service_version!=""}) unless '
    'count by (service_name, service_version) (target_info{service_version!=""} offset 5m)'
)
GRID_WIDTH = 24

# Selectors shared by the expressions below.
SIDE = 'instance=~"$instance"'
DB = 'instance=~"$instance", datname=~"$datname"'
POOL = 'pool_name=~"$pool_name"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # timeseries | stat | gauge | table
    targets: tuple[Target, ...]
    unit: str = "short"
    width: int = 8
    height: int = 8
    description: str = ""
    thresholds: tuple[tuple[float, str], ...] = ()
    mappings: tuple[tuple[str, str, str], ...] = ()  # (value, text, color)
    max_value: float | None = None
    merge: bool = False  # table: join the targets' rows on their common labels


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def _q(quantile: str, metric: str, by: str) -> Target:
    return Target(
        f"histogram_quantile({quantile}, sum by ({by}, le) "
        f"(rate({metric}_bucket{{{POOL}}}[{RATE}])))",
        f"{{{{pool_name}}}} p{quantile[2:].ljust(2, '0')}",
    )


ROWS: tuple[Row, ...] = (
    Row(
        "Overview",
        (
            Panel(
                "Database up",
                "stat",
                (Target(f"min by (instance) (pg_up{{{SIDE}}})", "{{instance}}"),),
                width=4,
                height=6,
                description="pg_up: 1 when the exporter's last poll connected to its PostgreSQL.",
                thresholds=((0, "red"), (1, "green")),
                mappings=(("0", "DOWN", "red"), ("1", "UP", "green")),
            ),
            Panel(
                "Connection saturation",
                "gauge",
                (Target(f"max(pg_connections_saturation_ratio{{{SIDE}}})"),),
                unit="percentunit",
                width=4,
                height=6,
                description="Backends / (max_connections - reserved). Alerts at 90%.",
                thresholds=((0, "green"), (0.8, "orange"), (0.9, "red")),
                max_value=1,
            ),
            Panel(
                "Backends by state",
                "timeseries",
                (Target(f"sum by (state) (pg_stat_activity_count{{{DB}}})", "{{state}}"),),
                width=8,
                height=6,
            ),
            Panel(
                "Idle in transaction",
                "timeseries",
                (
                    Target(
                        "sum by (datname) (pg_stat_activity_count"
                        f'{{{DB}, state=~"idle in transaction.*"}})',
                        "{{datname}} sessions",
                    ),
                ),
                width=4,
                height=6,
                description="Sessions holding a transaction open without running a query.",
            ),
            Panel(
                "Oldest idle in transaction",
                "timeseries",
                (
                    Target(
                        "max by (datname) "
                        f"(pg_stat_activity_idle_in_transaction_max_seconds{{{DB}}})",
                        "{{datname}}",
                    ),
                ),
                unit="s",
                width=4,
                height=6,
                thresholds=((0, "green"), (60, "orange"), (300, "red")),
            ),
            Panel(
                "Transactions per second",
                "timeseries",
                (
                    Target(
                        f"sum by (datname) (rate(pg_stat_database_xact_commit{{{DB}}}[{RATE}]))",
                        "{{datname}} commit",
                    ),
                    Target(
                        f"sum by (datname) (rate(pg_stat_database_xact_rollback{{{DB}}}[{RATE}]))",
                        "{{datname}} rollback",
                    ),
                ),
                unit="ops",
                width=8,
            ),
            Panel(
                "Rollback ratio",
                "timeseries",
                (
                    Target(
                        "sum by (datname) "
                        f"(rate(pg_stat_database_xact_rollback{{{DB}}}[{RATE}])) / "
                        "clamp_min(sum by (datname) ("
                        f"rate(pg_stat_database_xact_commit{{{DB}}}[{RATE}]) + "
                        f"rate(pg_stat_database_xact_rollback{{{DB}}}[{RATE}])), 1e-9)",
                        "{{datname}}",
                    ),
                ),
                unit="percentunit",
                width=8,
            ),
            Panel(
                "Deadlocks",
                "timeseries",
                (
                    Target(
                        f"sum by (datname) (increase(pg_stat_database_deadlocks{{{DB}}}[{RATE}]))",
                        "{{datname}}",
                    ),
                ),
                width=8,
            ),
        ),
    ),
    Row(
        "Application pool (in-process)",
        (
            Panel(
                "Pool connections",
                "timeseries",
                (
                    Target(
                        f"sum by (pool_name, state) (db_client_connection_count{{{POOL}}})",
                        "{{pool_name}} {{state}}",
                    ),
                    Target(
                        f"max by (pool_name) (db_client_connection_max{{{POOL}}})",
                        "{{pool_name}} max",
                    ),
                ),
                description="Used and idle connections against pool_size + max_overflow.",
            ),
            Panel(
                "Callers waiting for a connection",
                "timeseries",
                (
                    Target(
                        f"sum by (pool_name) (db_client_connection_pending_requests{{{POOL}}})",
                        "{{pool_name}}",
                    ),
                ),
            ),
            Panel(
                "Pool timeouts",
                "timeseries",
                (
                    Target(
                        "sum by (pool_name) "
                        f"(increase(db_client_connection_timeouts_total{{{POOL}}}[{RATE}]))",
                        "{{pool_name}}",
                    ),
                ),
                description="Checkouts that gave up after pool_timeout.",
            ),
            Panel(
                "Checkout wait time",
                "timeseries",
                tuple(
                    _q(q, "db_client_connection_wait_time_seconds", "pool_name")
                    for q in ("0.5", "0.95", "0.99")
                ),
                unit="s",
            ),
            Panel(
                "Connection use time",
                "timeseries",
                tuple(
                    _q(q, "db_client_connection_use_time_seconds", "pool_name")
                    for q in ("0.5", "0.95", "0.99")
                ),
                unit="s",
                description="Checkout to checkin: how long the application holds a connection.",
            ),
            Panel(
                "Overflow and invalidations",
                "timeseries",
                (
                    Target(
                        f"sum by (pool_name) (db_client_connection_overflow{{{POOL}}})",
                        "{{pool_name}} overflow in use",
                    ),
                    Target(
                        "sum by (pool_name) (increase("
                        f"db_client_connection_invalidations_total{{{POOL}}}[{RATE}]))",
                        "{{pool_name}} invalidated",
                    ),
                ),
            ),
        ),
    ),
    Row(
        "Queries",
        (
            Panel(
                "Statement duration p95 by operation and table",
                "timeseries",
                (
                    Target(
                        "histogram_quantile(0.95, sum by "
                        "(db_operation_name, db_collection_name, le) (rate("
                        f"db_client_operation_duration_seconds_bucket{{{POOL}}}[{RATE}])))",
                        "{{db_operation_name}} {{db_collection_name}}",
                    ),
                ),
                unit="s",
                width=12,
            ),
            Panel(
                "Statements per second by operation and table",
                "timeseries",
                (
                    Target(
                        "sum by (db_operation_name, db_collection_name) (rate("
                        f"db_client_operation_duration_seconds_count{{{POOL}}}[{RATE}]))",
                        "{{db_operation_name}} {{db_collection_name}}",
                    ),
                ),
                unit="ops",
                width=12,
            ),
            Panel(
                "Slow queries",
                "timeseries",
                (
                    Target(
                        "sum by (db_operation_name, db_collection_name) "
                        f"(increase(db_client_slow_queries_total{{{POOL}}}[{RATE}]))",
                        "{{db_operation_name}} {{db_collection_name}}",
                    ),
                ),
            ),
            Panel(
                "Statement errors",
                "timeseries",
                (
                    Target(
                        "sum by (db_operation_name, error_type) "
                        f"(increase(db_client_operation_errors_total{{{POOL}}}[{RATE}]))",
                        "{{db_operation_name}} {{error_type}}",
                    ),
                ),
            ),
            Panel(
                "N+1 detections",
                "timeseries",
                (
                    Target(
                        "sum by (pool_name, db_collection_name) "
                        f"(increase(db_client_n_plus_one_total{{{POOL}}}[{RATE}]))",
                        "{{pool_name}} {{db_collection_name}}",
                    ),
                ),
            ),
            Panel(
                "Top statements by time (pg_stat_statements)",
                "table",
                (
                    Target(
                        "topk($topn, sum by (datname, user, queryid) "
                        f"(rate(pg_stat_statements_seconds_total{{{DB}}}[5m])))",
                        instant=True,
                        table=True,
                    ),
                ),
                unit="s",
                width=12,
                description="Seconds of execution per second over 5m; queryid links to "
                "/debug/statements on the sidecar.",
            ),
            Panel(
                "What got slower",
                "table",
                (
                    Target(
                        f"topk(10, pg_stat_statements_regression_ratio{{{DB}}})",
                        instant=True,
                        table=True,
                    ),
                ),
                width=12,
                description="Statements whose recent time per call is at least "
                "collectors.regressions.factor x their own baseline (the value); their "
                "text, plan, plan flips and advice are at /debug/regressions on the sidecar.",
            ),
            Panel(
                "Plan advice findings",
                "timeseries",
                (
                    Target(
                        f"sum by (rule) (pg_plan_advice_findings{{{DB}}})",
                        "{{rule}}",
                    ),
                ),
                width=12,
                description="Findings over the latest plans of top and regressed statements "
                "(sequential scans a filter could avoid, N+1-like nested loops, sorts and "
                "hashes past work_mem, joins on unindexed foreign keys); /debug/plans.",
            ),
            Panel(
                "Top statements by calls (pg_stat_statements)",
                "table",
                (
                    Target(
                        "topk($topn, sum by (datname, user, queryid) "
                        f"(rate(pg_stat_statements_calls_total{{{DB}}}[5m])))",
                        instant=True,
                        table=True,
                    ),
                ),
                unit="ops",
                width=12,
            ),
            Panel(
                "Execution time covered by the exported top-N",
                "timeseries",
                (
                    Target(
                        "sum by (datname) "
                        f"(rate(pg_stat_statements_seconds_total{{{DB}}}[{RATE}])) / "
                        "clamp_min(sum by (datname) "
                        f"(rate(pg_stat_statements_all_seconds_total{{{DB}}}[{RATE}])), 1e-9)",
                        "{{datname}}",
                    ),
                ),
                unit="percentunit",
                width=24,
                height=6,
                description="Low coverage means raise collectors.statements.top_n.",
            ),
        ),
    ),
    Row(
        "Locks",
        (
            Panel(
                "Blocked sessions",
                "timeseries",
                (Target(f"sum by (datname) (pg_blocking_sessions{{{DB}}})", "{{datname}}"),),
                width=6,
            ),
            Panel(
                "Longest lock wait",
                "timeseries",
                (
                    Target(
                        f"max by (datname) (pg_blocking_max_wait_seconds{{{DB}}})",
                        "{{datname}}",
                    ),
                ),
                unit="s",
                width=6,
                thresholds=((0, "green"), (30, "orange"), (60, "red")),
            ),
            Panel(
                "Root blockers",
                "timeseries",
                (
                    Target(
                        f"sum by (datname) (pg_blocking_root_blockers{{{DB}}})",
                        "{{datname}}",
                    ),
                ),
                width=6,
                description="Sessions at the root of a blocking tree: the ones to look at.",
            ),
            Panel(
                "Locks by mode",
                "timeseries",
                (
                    Target(
                        f"sum by (mode) (pg_locks_count{{{DB}}})",
                        "{{mode}}",
                    ),
                ),
                width=6,
            ),
            Panel(
                "Sessions waiting, by wait event",
                "timeseries",
                (
                    Target(
                        "sum by (wait_event_type, wait_event) (pg_stat_activity_detail_count"
                        f'{{{DB}, state="active", wait_event_type!=""}})',
                        "{{wait_event_type}}: {{wait_event}}",
                    ),
                ),
                width=24,
                description="Active sessions waiting, by what they wait for (Lock, IO, LWLock...).",
            ),
        ),
    ),
    Row(
        "Long operations",
        (
            Panel(
                "Index builds in flight",
                "table",
                (
                    Target(
                        f"pg_stat_progress_create_index_ratio{{{DB}}}",
                        instant=True,
                        table=True,
                    ),
                    Target(
                        f"pg_stat_progress_create_index_elapsed_seconds{{{DB}}}",
                        instant=True,
                        table=True,
                    ),
                ),
                width=12,
                merge=True,
                description="Value #A: fraction done in the current phase; Value #B: seconds.",
            ),
            Panel(
                "Index build progress",
                "timeseries",
                (
                    Target(
                        f"max by (datname, index_relname, phase) "
                        f"(pg_stat_progress_create_index_ratio{{{DB}}})",
                        "{{index_relname}} {{phase}}",
                    ),
                ),
                unit="percentunit",
                width=12,
            ),
            Panel(
                "Vacuum, analyze, cluster and copy in flight",
                "timeseries",
                tuple(
                    Target(
                        f"max by (datname, relname, phase) "
                        f"(pg_stat_progress_{op}_elapsed_seconds{{{DB}}})",
                        f"{op} {{{{relname}}}} {{{{phase}}}}",
                    )
                    for op in ("vacuum", "analyze", "cluster", "copy")
                ),
                unit="s",
                width=24,
            ),
        ),
    ),
    Row(
        "Migration health",
        (
            Panel(
                "Invalid indexes",
                "stat",
                (Target(f"count(pg_index_invalid{{{DB}}} > 0) or vector(0)"),),
                width=4,
                height=6,
                thresholds=((0, "green"), (1, "red")),
            ),
            Panel(
                "NOT VALID constraints",
                "stat",
                (Target(f"count(pg_constraint_not_valid{{{DB}}} > 0) or vector(0)"),),
                width=4,
                height=6,
                thresholds=((0, "green"), (1, "orange")),
            ),
            Panel(
                "Foreign keys without an index",
                "stat",
                (Target(f"count(pg_foreign_key_missing_index{{{DB}}} > 0) or vector(0)"),),
                width=4,
                height=6,
                thresholds=((0, "green"), (1, "orange")),
            ),
            Panel(
                "Migration findings",
                "table",
                (
                    Target(f"pg_index_invalid{{{DB}}} > 0", instant=True, table=True),
                    Target(f"pg_constraint_not_valid{{{DB}}} > 0", instant=True, table=True),
                    Target(f"pg_foreign_key_missing_index{{{DB}}} > 0", instant=True, table=True),
                ),
                width=12,
                height=6,
                description="Invalid indexes (failed CREATE INDEX CONCURRENTLY), constraints "
                "added NOT VALID and never validated, foreign keys with no index.",
            ),
            Panel(
                "Largest unused indexes",
                "table",
                (Target(f"topk(10, pg_index_unused_bytes{{{DB}}})", instant=True, table=True),),
                unit="bytes",
                width=12,
                height=6,
                description="Non-unique indexes with no scans since statistics were reset.",
            ),
            Panel(
                "Sequential-scan-heavy tables",
                "table",
                (Target(f"topk(10, pg_table_seq_scan_heavy{{{DB}}})", instant=True, table=True),),
                width=12,
                height=6,
                description="Large tables read mostly by sequential scans: a missing index?",
            ),
        ),
    ),
    Row(
        "Replication and WAL",
        (
            Panel(
                "Replication lag",
                "timeseries",
                (
                    Target(
                        f"max by (instance) (pg_replication_lag_seconds{{{SIDE}}})",
                        "{{instance}}",
                    ),
                ),
                unit="s",
                width=6,
                height=7,
                description="On a standby, seconds behind the primary (0 once it has replayed "
                "all it received); always 0 on a primary.",
            ),
            Panel(
                "WAL held for standbys and slots",
                "timeseries",
                (
                    Target(
                        "max by (instance, application_name) "
                        f"(pg_stat_replication_pg_wal_lsn_diff{{{SIDE}}})",
                        "standby {{application_name}}",
                    ),
                    Target(
                        "max by (instance, slot_name) "
                        f"(pg_replication_slots_pg_wal_lsn_diff{{{SIDE}}})",
                        "slot {{slot_name}}",
                    ),
                ),
                unit="bytes",
                width=6,
                height=7,
                description="Bytes each standby has not replayed yet, and WAL each replication "
                "slot keeps; an inactive slot growing here fills pg_wal.",
            ),
            Panel(
                "WAL on disk",
                "timeseries",
                (Target(f"max by (instance) (pg_wal_size_bytes{{{SIDE}}})", "{{instance}}"),),
                unit="bytes",
                width=6,
                height=7,
                description="Size of the WAL segment files in pg_wal (needs pg_monitor).",
            ),
            Panel(
                "Checkpoints",
                "timeseries",
                (
                    # pg_stat_bgwriter before PostgreSQL 17, pg_stat_checkpointer from 17.
                    Target(
                        f"sum by (instance) (rate(pg_stat_bgwriter_checkpoints_timed_total"
                        f"{{{SIDE}}}[{RATE}]) or rate(pg_stat_checkpointer_num_timed_total"
                        f"{{{SIDE}}}[{RATE}]))",
                        "timed {{instance}}",
                    ),
                    Target(
                        f"sum by (instance) (rate(pg_stat_bgwriter_checkpoints_req_total"
                        f"{{{SIDE}}}[{RATE}]) or rate(pg_stat_checkpointer_num_requested_total"
                        f"{{{SIDE}}}[{RATE}]))",
                        "requested {{instance}}",
                    ),
                ),
                unit="ops",
                width=6,
                height=7,
                description="Requested checkpoints outpacing timed ones mean max_wal_size is "
                "too small for the write load.",
            ),
        ),
    ),
    Row(
        "Exporter",
        (
            Panel(
                "Collector success",
                "stat",
                (
                    Target(
                        f"min by (collector) (pg_scrape_collector_success{{{SIDE}}})",
                        "{{collector}}",
                    ),
                ),
                width=8,
                height=6,
                thresholds=((0, "red"), (1, "green")),
                mappings=(("0", "FAILING", "red"), ("1", "OK", "green")),
            ),
            Panel(
                "Collector duration",
                "timeseries",
                (
                    Target(
                        f"max by (collector) (pg_scrape_collector_duration_seconds{{{SIDE}}})",
                        "{{collector}}",
                    ),
                ),
                unit="s",
                width=8,
                height=6,
            ),
            Panel(
                "Snapshot age",
                "timeseries",
                (
                    Target(
                        f"max by (instance) (dbpulse_snapshot_age_seconds{{{SIDE}}})",
                        "{{instance}}",
                    ),
                ),
                unit="s",
                width=8,
                height=6,
                description="Seconds since a poll last reached the database; /readyz fails "
                "past stale_after.",
            ),
            Panel(
                "dbpulse versions",
                "table",
                (
                    Target(
                        "count by (instance, version) (dbpulse_build_info)",
                        instant=True,
                        table=True,
                    ),
                ),
                width=12,
                height=6,
            ),
            Panel(
                "In-process instrumentation errors",
                "timeseries",
                (
                    Target(
                        f"sum by (hook) (increase(dbpulse_instrumentation_errors_total[{RATE}]))",
                        "{{hook}}",
                    ),
                ),
                width=12,
                height=6,
                description="Hook failures swallowed so the application never sees them.",
            ),
        ),
    ),
)


def _target(target: Target, ref_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": target.expr,
        "legendFormat": target.legend or "__auto",
        "range": not target.instant,
        "instant": target.instant,
        "refId": ref_id,
    }
    if target.table:
        out["format"] = "table"
    return out


def _thresholds(panel: Panel) -> dict[str, Any]:
    steps = [
        {"color": color, "value": None if i == 0 else value}
        for i, (value, color) in enumerate(panel.thresholds or ((0, "green"),))
    ]
    return {"mode": "absolute", "steps": steps}


def _panel(panel: Panel, panel_id: int, grid: dict[str, int]) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": _thresholds(panel)}
    if panel.max_value is not None:
        defaults["max"] = panel.max_value
        defaults["min"] = 0
    if panel.mappings:
        defaults["mappings"] = [
            {
                "type": "value",
                "options": {
                    value: {"text": text, "color": color, "index": i}
                    for i, (value, text, color) in enumerate(panel.mappings)
                },
            }
        ]
    if panel.kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "fillOpacity": 10, "showPoints": "never"}
        if panel.thresholds:
            defaults["custom"]["thresholdsStyle"] = {"mode": "line"}
    options: dict[str, Any]
    if panel.kind == "timeseries":
        options = {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif panel.kind in ("stat", "gauge"):
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "textMode": "auto",
        }
    else:
        options = {"showHeader": True, "cellHeight": "sm"}
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [_target(t, chr(ord("A") + i)) for i, t in enumerate(panel.targets)],
    }
    if panel.description:
        out["description"] = panel.description
    if panel.kind == "table":
        transformations: list[dict[str, Any]] = []
        if panel.merge:
            transformations.append({"id": "merge", "options": {}})
        transformations.append(
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True, "__name__": True, "job": True}},
            }
        )
        out["transformations"] = transformations
    return out


def _layout(rows: tuple[Row, ...]) -> list[dict[str, Any]]:
    """Rows top to bottom; each row's panels left to right, wrapping at 24 columns."""
    panels: list[dict[str, Any]] = []
    y = 0
    panel_id = 1
    for row in rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                y += line_height
                x = 0
                line_height = 0
            grid = {"h": panel.height, "w": panel.width, "x": x, "y": y}
            panels.append(_panel(panel, panel_id, grid))
            panel_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return panels


def _query_var(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        # A plain string: every Grafana version reads it (newer ones migrate it on load).
        "query": query,
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
        "regex": "",
        "options": [],
    }


def _templating() -> dict[str, Any]:
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {"selected": False, "text": "Prometheus", "value": "${DS_PROMETHEUS}"},
                "hide": 0,
                "includeAll": False,
                "multi": False,
                "options": [],
                "refresh": 1,
                "regex": "",
            },
            _query_var("instance", "Sidecar instance", "label_values(pg_up, instance)"),
            _query_var(
                "datname",
                "Database",
                'label_values(pg_stat_database_numbackends{instance=~"$instance"}, datname)',
            ),
            _query_var(
                "pool_name", "Application pool", "label_values(db_client_connection_max, pool_name)"
            ),
            {
                "name": "topn",
                "label": "Top statements",
                "type": "custom",
                "query": "5,10,20,50",
                "current": {"selected": True, "text": "10", "value": "10"},
                "options": [
                    {"selected": v == "10", "text": v, "value": v} for v in ("5", "10", "20", "50")
                ],
                "hide": 0,
                "includeAll": False,
                "multi": False,
            },
        ]
    }


def build() -> dict[str, Any]:
    """The whole dashboard as a JSON-ready dict."""
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "Prometheus that scrapes dbpulse sidecars and applications",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__elements": {},
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
            {"type": "panel", "id": "gauge", "name": "Gauge", "version": ""},
            {"type": "panel", "id": "table", "name": "Table", "version": ""},
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                {
                    # A version of an instrumented application first seen: a deploy
                    # (target_info, exported by dbpulse in-process or any OpenTelemetry
                    # Prometheus exporter), to read regressions against.
                    "datasource": DATASOURCE,
                    "enable": True,
                    "hide": False,
                    "iconColor": "purple",
                    "name": "Deploys",
                    "expr": DEPLOYS,
                    "step": "1m",
                    "titleFormat": "deploy {{service_name}} {{service_version}}",
                    "tagKeys": "service_name,service_version",
                },
            ]
        },
        "description": "Open this first: is PostgreSQL up, saturated, blocked, or busy with a "
        "migration; is the application's pool starving; is dbpulse itself healthy.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": _layout(ROWS),
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["dbpulse", "postgresql", "sqlalchemy"],
        "templating": _templating(),
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": TITLE,
        "uid": UID,
        "version": 1,
        "weekStart": "",
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python grafana/build_dashboard.py", file=sys.stderr)
            return 1
        return 0
    if argv:
        print("usage: build_dashboard.py [--check]", file=sys.stderr)
        return 2
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
