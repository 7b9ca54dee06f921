"""The sidecar under 200 pgbench clients and 5,000 distinct statements for 30 s (the soak, short)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak_sidecar import run_soak


@pytest.mark.slow
def test_interval_and_connection_budget_hold_under_pgbench_load(tmp_path: Path) -> None:
    """Under 200 pgbench clients the 5 s polls keep coming, one dbpulse backend at most, pg_up 1."""
    # 5 s is the interval. At 2 s a full cycle of six collectors (one connection,
    # taking turns) sometimes took 5 s on this 2-core machine under 200 clients: late,
    # but not missed, which the poll count below is the measure of.
    interval = 5.0
    fig, info = run_soak(
        duration=40,
        interval=interval,
        clients=200,
        statements=5000,
        workdir=tmp_path,
        warmup=8,
    )
    assert info["sidecar_alive_at_end"] == "True"
    assert info["sidecar_exit_code"] == "0"
    assert fig.min_pgbench_backends == 200, "the load was not there the whole time"
    assert int(info["pg_stat_statements_entries"]) >= 5000
    assert fig.polls >= fig.expected_polls - 1, (fig.polls, fig.expected_polls)
    assert fig.max_backends == 1, fig.max_backends
    assert fig.up_fraction == 1.0
    # Lateness, CPU share and scrape latency depend on the machine's load: they are
    # benchmarks/soak_sidecar.py's goals (GOAL_*), reported there, never asserted here.
