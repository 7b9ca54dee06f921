"""dbpulse.multiprocess: the gunicorn hooks, dead-pid pruning and the merge, on real files.

The files are written with prometheus_client's own ``MmapedDict`` under the names its
multiprocess mode gives them (``<type>[_<mode>]_<pid>.db``); the pytest process itself is
not in multiprocess mode (prometheus_client decides that at import).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from dbpulse import multiprocess


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write(path: Path, metric: str, labels: dict[str, str], value: float) -> None:
    """One sample into a prometheus_client multiprocess file."""
    db = cast(Any, MmapedDict)(str(path))  # prometheus_client's file format, untyped
    try:
        key = mmap_key(metric, metric, list(labels), list(labels.values()), "help")
        db.write_value(key, value, 0.0)
    finally:
        db.close()


def test_on_starting_removes_only_prometheus_client_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gunicorn on_starting empties a previous run's metric files and nothing else."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("counter_11.db", "gauge_livesum_11.db", "histogram_12.db", "gauge_all_3.db"):
        write(tmp_path / name, "x", {}, 1)
    (tmp_path / "notes.db").write_text("mine")
    (tmp_path / "README").write_text("mine")
    multiprocess.on_starting(None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README", "notes.db"]


def test_child_exit_drops_the_workers_live_gauges_and_keeps_its_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gunicorn child_exit: the worker's livesum/livemax files go, its counters stay."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("counter_7.db", "gauge_livesum_7.db", "gauge_livemax_7.db", "gauge_livesum_8.db"):
        write(tmp_path / name, "x", {}, 1)
    multiprocess.child_exit(None, SimpleNamespace(pid=7))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_7.db", "gauge_livesum_8.db"]


def test_merge_sums_live_pool_gauges_without_pid_and_forgets_dead_processes(
    tmp_path: Path,
) -> None:
    """The merged registry sums livesum gauges of running pids only, counters of all."""
    alive, dead = os.getpid(), dead_pid()
    labels = {"pool_name": "app", "state": "idle"}
    write(tmp_path / f"gauge_livesum_{alive}.db", "db_client_connection_count", labels, 3)
    write(tmp_path / f"gauge_livesum_{dead}.db", "db_client_connection_count", labels, 4)
    for pid, n in ((alive, 10), (dead, 5)):
        write(tmp_path / f"counter_{pid}.db", "db_client_slow_queries_total", {}, n)
    collector = multiprocess._LiveMultiProcessCollector(str(tmp_path))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in collector.collect()
        for s in m.samples
    }
    assert samples == {
        ("db_client_connection_count", (("pool_name", "app"), ("state", "idle"))): 3.0,
        ("db_client_slow_queries_total", ()): 15.0,
    }
    assert not (tmp_path / f"gauge_livesum_{dead}.db").exists()


def test_prune_keeps_running_processes(tmp_path: Path) -> None:
    """prune_dead_processes names the dead pids it pruned and leaves running ones alone."""
    dead = dead_pid()
    write(tmp_path / f"gauge_livesum_{os.getpid()}.db", "g", {}, 1)
    write(tmp_path / f"gauge_livemax_{dead}.db", "g", {}, 1)
    assert multiprocess.prune_dead_processes(str(tmp_path)) == [dead]
    assert [p.name for p in tmp_path.iterdir()] == [f"gauge_livesum_{os.getpid()}.db"]


def test_single_process_serves_the_default_registry_and_warns_of_a_late_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without multiprocess mode: REGISTRY is served; a variable set too late is named."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    assert not multiprocess.enabled()
    assert multiprocess.metrics_registry() is REGISTRY
    assert multiprocess.misconfigured() is None
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    problem = multiprocess.misconfigured()
    assert problem is not None
    assert "imported before" in problem


def test_on_starting_makes_a_missing_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gunicorn on_starting creates the multiprocess directory the workers will write to."""
    where = tmp_path / "run" / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(where))
    multiprocess.on_starting(None)
    assert where.is_dir()
