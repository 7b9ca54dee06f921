"""The committed Grafana dashboard: generated, importable, laid out, and its PromQL valid."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "dashboards" / "dbpulse.json"


builder = load_script("dbpulse_build_dashboard", "grafana/build_dashboard.py")
exprs = load_script("dbpulse_grafana_exprs", "grafana/exprs.py")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_committed_json_is_generator_output() -> None:
    """The committed JSON is byte-for-byte what build_dashboard.py produces now."""
    assert DASHBOARD.read_text() == builder.render()


@pytest.mark.parametrize("hash_seed", ["0", "1", "4242"])
def test_generator_is_deterministic(hash_seed: str) -> None:
    """Fresh processes with different hash seeds, and a repeat render here, all give the committed text (no set-order or id drift)."""
    # --check exits 1 when its render differs from the committed file; PYTHONHASHSEED
    # changes the iteration order of any set the generator might lean on.
    done = subprocess.run(
        [sys.executable, str(ROOT / "grafana" / "build_dashboard.py"), "--check"],
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    builder.render()  # a counter kept between renders would show on the next one
    assert builder.render() == DASHBOARD.read_text()


def test_importable_shape(dashboard: dict[str, Any]) -> None:
    """It carries what Grafana's import needs: __inputs, __requires, uid, schemaVersion."""
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    required = {r["id"] for r in dashboard["__requires"]}
    used = {p["type"] for p in _data_panels(dashboard)} | {"grafana", "prometheus"}
    assert used <= required
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["id"] is None
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_template_variables(dashboard: dict[str, Any]) -> None:
    """datasource, instance, datname and pool_name variables exist and drive the queries."""
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"datasource", "instance", "datname", "pool_name"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    text = json.dumps(dashboard["panels"])
    for name in ("instance", "datname", "pool_name", "topn"):
        assert f"${name}" in text, f"variable {name} is never used by a panel"


def test_every_panel_has_datasource_and_grid(dashboard: dict[str, Any]) -> None:
    """Each data panel and each of its targets names the ${datasource} variable."""
    for panel in _data_panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}
        assert grid["w"] > 0
        assert grid["h"] > 0
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24


def test_no_grid_overlap(dashboard: dict[str, Any]) -> None:
    """No two panels (rows included) share a grid cell."""
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_required_rows_present(dashboard: dict[str, Any]) -> None:
    """The on-call rows exist in order, each with at least one panel under it."""
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == [
        "Overview",
        "Application pool (in-process)",
        "Queries",
        "Locks",
        "Long operations",
        "Migration health",
        "Replication and WAL",
        "Exporter",
    ]
    kinds = [p["type"] for p in dashboard["panels"]]
    for i, kind in enumerate(kinds):
        if kind == "row":
            assert i + 1 < len(kinds)
            assert kinds[i + 1] != "row"


def test_metrics_cover_the_contract(dashboard: dict[str, Any]) -> None:
    """The dashboard reads the contract's key series (sidecar, in-process, exporter)."""
    names = set().union(*(ref.metrics for ref in exprs.dashboard_exprs(dashboard)))
    for must in (
        "pg_up",
        "pg_connections_saturation_ratio",
        "pg_stat_activity_count",
        "pg_stat_activity_detail_count",
        "pg_stat_database_xact_commit",
        "pg_stat_database_xact_rollback",
        "pg_stat_database_deadlocks",
        "db_client_connection_count",
        "db_client_connection_max",
        "db_client_connection_pending_requests",
        "db_client_connection_wait_time_seconds_bucket",
        "db_client_connection_use_time_seconds_bucket",
        "db_client_connection_timeouts_total",
        "db_client_operation_duration_seconds_bucket",
        "db_client_slow_queries_total",
        "db_client_operation_errors_total",
        "db_client_n_plus_one_total",
        "pg_stat_statements_seconds_total",
        "pg_stat_statements_calls_total",
        "pg_blocking_sessions",
        "pg_blocking_max_wait_seconds",
        "pg_blocking_root_blockers",
        "pg_stat_progress_create_index_ratio",
        "pg_index_invalid",
        "pg_constraint_not_valid",
        "pg_foreign_key_missing_index",
        "pg_scrape_collector_success",
        "pg_scrape_collector_duration_seconds",
        "dbpulse_snapshot_age_seconds",
    ):
        assert must in names, must
    # Every name is a valid Prometheus metric name and none is a function or label.
    for name in names:
        assert re.fullmatch(r"[a-z_:][a-z0-9_:]*", name), name
        assert name.startswith(("pg_", "db_client_", "dbpulse_")), name


def test_topk_and_histogram_quantile_used(dashboard: dict[str, Any]) -> None:
    """Top statements use topk and pool latencies use histogram_quantile over _bucket."""
    all_exprs = [ref.expr for ref in exprs.dashboard_exprs(dashboard)]
    assert any(e.startswith("topk($topn,") and "pg_stat_statements_calls" in e for e in all_exprs)
    assert any(e.startswith("topk($topn,") and "pg_stat_statements_seconds" in e for e in all_exprs)
    quantiles = [e for e in all_exprs if e.startswith("histogram_quantile(")]
    assert quantiles
    assert all("_bucket" in e and " le)" in e for e in quantiles)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (datname) (rate(a_total{x="y"}[5m]))', {"a_total"}),
        ("histogram_quantile(0.95, sum by (le) (rate(h_bucket[$__rate_interval])))", {"h_bucket"}),
        ("topk($topn, b) / on (job) group_left (v) c offset 5m", {"b", "c"}),
        ('count(d > 0) or vector(0) unless e{le="+Inf"}', {"d", "e"}),
        ('{__name__="f", a="b"}', {"f"}),
        ("changes(g[15m]) == 0 and g and (g offset 15m)", {"g"}),
        ('absent(up{job=~".*dbpulse.*"} == 1)', {"up"}),
    ],
)
def test_metric_name_extractor(expr: str, names: set[str]) -> None:
    """exprs.metric_names finds metric names and skips functions, labels, numbers, keywords."""
    assert exprs.metric_names(expr) == names


def _grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "5m").replace("$topn", "10")


def test_every_expression_parses_with_promtool(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """promtool accepts every panel and variable expression (variables substituted)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus); CI installs it")
    refs = exprs.dashboard_exprs(dashboard)
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:expr_{i}", "expr": _grafana_to_promql(r.expr)}
                    for i, r in enumerate(refs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
