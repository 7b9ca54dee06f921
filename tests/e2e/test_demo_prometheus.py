"""End to end: a real Prometheus scrapes `dbpulse demo` (sidecar + instrumented app)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from exporter.localpg import free_port
from tests.e2e.prometheus import Prometheus

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
    "database counters": "max_over_time(pg_stat_database_xact_commit_total[10m])",
    "collectors healthy": "min_over_time(dbpulse_collector_success[10m]) == 1",
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
                "exporter",
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in self.output):
                return
            assert self.proc is not None
            assert self.proc.poll() is None, "".join(self.output)
            time.sleep(0.5)
        raise AssertionError(f"demo never printed {needle!r}:\n{''.join(self.output)}")

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
            {"sidecar": f"127.0.0.1:{demo.sidecar_port}", "app": f"127.0.0.1:{demo.app_port}"}
        )
        # One full workload cycle plus a few scrapes of the second.
        demo.wait_for_line("cycle 2, step 2/5", timeout=240)
        time.sleep(3)
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


def test_demo_stops_cleanly_and_removes_cluster(demo_run: tuple[Demo, Prometheus]) -> None:
    """Ctrl-C stops the demo with exit code 0 after it says it removed the cluster."""
    demo, _ = demo_run
    assert demo.stop() == 0
    text = "".join(demo.output)
    assert "removed the temporary cluster" in text
    assert "Traceback" not in text
