"""End to end: a real Prometheus scrapes `dbpulse demo` (sidecar + instrumented app)."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbpulse.localpg import free_port
from tests.e2e.prometheus import Prometheus
from tests.integration.collector_helpers import wait_for
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "dbpulse-rules.yml"
DASHBOARD = ROOT / "grafana" / "dashboards" / "dbpulse.json"


exprs = load_script("dbpulse_grafana_exprs", "grafana/exprs.py")
DASHBOARD_REFS = exprs.dashboard_exprs(json.loads(DASHBOARD.read_text()))
RULE_REFS = exprs.rule_exprs(yaml.safe_load(RULES.read_text()))

# Panels whose situation the demo does not stage, each with the reason. Their
# expressions must still parse and their metrics must still be emitted (metadata).
NO_DATA_EXPECTED = {
    "WAL held for standbys and slots": "the demo runs no standby and creates no replication slot (tests/integration/test_collectors_replication.py)",
    "In-process instrumentation errors": "only a failing dbpulse hook increments it (tests/integration/inprocess)",
    "What got slower": "the demo stages no regression (tests/integration/test_regressions.py does)",
}
# Alerts the demo provokes (pending or firing), and alerts that must stay quiet.
ALERTS_ACTIVE = {"DbpulsePoolTimeouts", "DbpulseInvalidIndex"}
ALERTS_QUIET = {
    "DbpulseDatabaseDown",
    "DbpulseCollectorFailing",
    "DbpulseSnapshotStale",
    "DbpulseExporterDown",
    "DbpulseExporterAbsent",
    "DbpulseReplicationLag",
    "DbpulseReplicationSlotRetainingWal",
    "DbpulseWalArchivingFailing",
}


def _promql(expr: str) -> str:
    """Grafana's variables as the dashboard's 'All' selection would fill them."""
    expr = expr.replace("$__rate_interval", "1m").replace("$topn", "10")
    return re.sub(r"\$\{?(instance|datname|pool_name)\}?", ".*", expr)


# Families each situation of the demo must put into Prometheus, as range queries so that
# short-lived series (an index build, a lock wait) are found after they are gone.
SITUATIONS = {
    "database reachable": 'max_over_time(pg_up{job="sidecar"}[10m]) == 1',
    "backends counted": "max_over_time(pg_stat_activity_count[10m])",
    "open transaction age": "max_over_time(pg_stat_activity_max_tx_duration[10m]) > 1",
    "saturation": "max_over_time(pg_connections_saturation_ratio[10m]) > 0",
    "top statements": "max_over_time(pg_stat_statements_calls_total[10m])",
    "statement totals": "max_over_time(pg_stat_statements_all_seconds_total[10m])",
    "locks": "max_over_time(pg_locks_count[10m])",
    "lock wait seen": "max_over_time(pg_blocking_sessions[10m]) >= 1",
    "root blocker seen": "max_over_time(pg_blocking_root_blockers[10m]) >= 1",
    "lock wait length": "max_over_time(pg_blocking_max_wait_seconds[10m]) > 1",
    "index build seen": "max_over_time(pg_stat_progress_create_index_blocks_total[10m])",
    "database counters": "max_over_time(pg_stat_database_xact_commit[10m])",
    "collectors healthy": "min_over_time(pg_scrape_collector_success[10m]) == 1",
    "snapshot age": "max_over_time(dbpulse_snapshot_age_seconds[10m])",
    "pool size": "max_over_time(db_client_connection_max[10m]) == 3",
    "pool used": 'max_over_time(db_client_connection_count{state="used"}[10m]) >= 3',
    "pool waiters": "max_over_time(db_client_connection_pending_requests[10m]) >= 1",
    "pool timeouts": "max_over_time(db_client_connection_timeouts_total[10m]) >= 1",
    "wait time": "max_over_time(db_client_connection_wait_time_seconds_count[10m])",
    "use time": "max_over_time(db_client_connection_use_time_seconds_count[10m])",
    "query duration": "max_over_time(db_client_operation_duration_seconds_count[10m])",
    "slow queries": "max_over_time(db_client_slow_queries_total[10m]) >= 1",
    "n plus one": 'max_over_time(db_client_n_plus_one_total{db_collection_name="posts"}[10m]) >= 1',
    "transactions": "max_over_time(db_client_transaction_duration_seconds_count[10m])",
}


@dataclass
class Demo:
    sidecar_port: int = field(default_factory=free_port)
    app_port: int = field(default_factory=free_port)
    output: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dbpulse",
                "demo",
                "--listen",
                f"127.0.0.1:{self.sidecar_port}",
                "--app-listen",
                f"127.0.0.1:{self.app_port}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def wait_for_line(self, needle: str, timeout: float) -> None:
        def printed() -> bool:
            if any(needle in line for line in self.output):
                return True
            assert self.proc is not None
            assert self.proc.poll() is None, "".join(self.output)
            return False

        try:
            wait_for(printed, timeout=timeout, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"demo never printed {needle!r}:\n{''.join(self.output)}") from exc

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=120)


@pytest.fixture(scope="module")
def demo_run() -> Iterator[tuple[Demo, Prometheus]]:
    demo = Demo()
    demo.start()
    prom = None
    try:
        demo.wait_for_line("sidecar metrics:", timeout=120)
        prom = Prometheus(
            {"sidecar": f"127.0.0.1:{demo.sidecar_port}", "app": f"127.0.0.1:{demo.app_port}"},
            rule_files=[RULES],
        )
        # One full workload cycle plus a few scrapes of the second.
        demo.wait_for_line("cycle 2, step 2/", timeout=300)
        second_cycle = time.time()
        wait_for(lambda: prom.scraped_since(second_cycle, scrapes=3), timeout=60, interval=0.5)
        yield demo, prom
    finally:
        if prom is not None:
            prom.stop()
        if demo.proc is not None and demo.proc.poll() is None:
            demo.stop()


def test_prometheus_scrapes_both_targets(demo_run: tuple[Demo, Prometheus]) -> None:
    """Prometheus reports both the sidecar and the demo app as healthy scrape targets."""
    _, prom = demo_run
    assert prom.targets_up() == {"sidecar": "up", "app": "up"}


@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_situation_visible_in_prometheus(demo_run: tuple[Demo, Prometheus], situation: str) -> None:
    """Each failure mode the demo provokes is visible through a PromQL query."""
    _, prom = demo_run
    answer = prom.query(SITUATIONS[situation])
    assert answer["status"] == "success", answer
    assert answer["data"]["result"], f"no data for {situation}: {SITUATIONS[situation]}"


def _has_data_in_run(prom: Prometheus, expr: str) -> bool:
    answer = prom.query_range(expr, seconds=240, step="2s")
    assert answer["status"] == "success", answer
    return bool(answer["data"]["result"])


@pytest.mark.parametrize("ref", DASHBOARD_REFS + RULE_REFS, ids=lambda r: r.where)
def test_every_dashboard_and_rule_expression_parses(
    demo_run: tuple[Demo, Prometheus], ref: Any
) -> None:
    """Prometheus itself accepts every dashboard query and every alert expression."""
    _, prom = demo_run
    answer = prom.query(_promql(ref.expr))
    assert answer["status"] == "success", answer


def _panels() -> dict[str, list[str]]:
    panels: dict[str, list[str]] = {}
    for ref in DASHBOARD_REFS:
        if ref.where.startswith("panel "):
            title = ref.where.removeprefix("panel ").rsplit(" ", 1)[0].strip("'\"")
            panels.setdefault(title, []).append(ref.expr)
    return panels


@pytest.mark.parametrize("title", sorted(_panels()))
def test_every_dashboard_panel_shows_data(demo_run: tuple[Demo, Prometheus], title: str) -> None:
    """Every panel has data during the demo (at least one of its queries returns series)."""
    _, prom = demo_run
    found = any(_has_data_in_run(prom, _promql(expr)) for expr in _panels()[title])
    if not found and title in NO_DATA_EXPECTED:
        pytest.skip(f"not staged by the demo: {NO_DATA_EXPECTED[title]}")
    assert found, f"panel {title!r} shows nothing: {_panels()[title]}"


def test_no_artefact_references_a_metric_the_code_does_not_emit(
    demo_run: tuple[Demo, Prometheus],
) -> None:
    """Every metric named by the dashboard or the alert rules was exposed by a dbpulse target."""
    _, prom = demo_run
    metadata = prom.api("targets/metadata", limit="100000")["data"]
    families = {m["metric"] for m in metadata}
    seen = set(prom.api("label/__name__/values")["data"])
    exposed = families | seen
    # Prometheus's own series, not dbpulse's.
    wanted = {name for ref in DASHBOARD_REFS + RULE_REFS for name in ref.metrics} - {"up"}
    wanted -= {f"pg_stat_checkpointer_num_{c}_total" for c in ("timed", "requested")}  # 17+
    missing = sorted(
        name
        for name in wanted
        if name not in exposed and re.sub(r"_(bucket|count|sum|total)$", "", name) not in exposed
    )
    assert not missing, f"referenced but never emitted: {missing}"


def test_alerts_fire_for_the_demo_situations(demo_run: tuple[Demo, Prometheus]) -> None:
    """The alerts for what the demo provokes become active; the health alerts stay quiet."""
    _, prom = demo_run
    active: set[str] = set()

    def all_seen() -> bool:
        alerts = prom.api("alerts")["data"]["alerts"]
        active.update(
            a["labels"]["alertname"] for a in alerts if a["state"] in {"pending", "firing"}
        )
        return active >= ALERTS_ACTIVE

    with contextlib.suppress(AssertionError):  # the assertion below names what is missing
        wait_for(all_seen, timeout=30, interval=1)
    assert active >= ALERTS_ACTIVE, f"active alerts: {sorted(active)}"
    assert not (ALERTS_QUIET & active), f"health alerts active: {sorted(ALERTS_QUIET & active)}"


def test_demo_stops_cleanly_and_removes_cluster(demo_run: tuple[Demo, Prometheus]) -> None:
    """Ctrl-C stops the demo with exit code 0 after it says it removed the cluster."""
    demo, _ = demo_run
    assert demo.stop() == 0
    text = "".join(demo.output)
    assert "removed the temporary cluster" in text
    assert "Traceback" not in text


OUT = Path(__file__).resolve().parent / "out"


def test_render_every_panel_to_png(demo_run: tuple[Demo, Prometheus]) -> None:
    """Each panel's data from this run is drawn to tests/e2e/out/<panel>.png for a person to look at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["text.parse_math"] = False  # PromQL and labels contain "$"
    _, prom = demo_run
    OUT.mkdir(exist_ok=True)
    written = []
    for title, expressions in sorted(_panels().items()):
        fig, ax = plt.subplots(figsize=(8, 3))
        for expr in expressions:
            result = prom.query_range(_promql(expr), seconds=240, step="2s")["data"]["result"]
            for series in result[:12]:
                xs = [float(t) for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                label = ",".join(
                    f"{k}={v}"
                    for k, v in sorted(series["metric"].items())
                    if k not in {"instance", "job"}
                )
                ax.plot([x - xs[0] for x in xs], ys, label=label[:60] or expr[:60])
        ax.set_title(title)
        ax.set_xlabel("seconds")
        if ax.lines:
            ax.legend(fontsize=6, loc="upper left")
        path = OUT / (re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_") + ".png")
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    assert len(written) == len(_panels())
    assert all(p.stat().st_size > 1000 for p in written)
