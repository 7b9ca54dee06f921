"""What prometheus_client's multiprocess mode costs dbpulse per statement and per checkout.

prometheus_client picks its value store once, at import, from ``PROMETHEUS_MULTIPROC_DIR``,
so each mode runs in a child process of its own: ``single`` (no variable: values in
memory, pool gauges read at scrape time) and ``multiprocess`` (values in mmap files in a
temporary directory, and dbpulse writing the pool gauges after each checkout and
checkin). In each child an uninstrumented engine and an instrumented one take turns
round by round (order alternating); "added" is the median of per-round differences, as
in ``bench_inprocess.py``. On a SQLite file (QueuePool, as a server's pool is), so the
database's own time stays small next to the differences measured.

    python benchmarks/bench_multiprocess.py [--rounds 31] [--n 2000]

Writes benchmarks/results/multiprocess.md and .json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "exporter")]


def _per_op(fn: Callable[[], None], n: int) -> tuple[float, float]:
    """Seconds per call of ``fn`` over ``n`` calls: wall clock, and this process's CPU
    time (which a machine busy with other work inflates less)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def child(rounds: int, n: int, db: str) -> dict[str, Any]:
    """Measure in this process (its mode was fixed by the environment at start)."""
    from prometheus_client import CollectorRegistry
    from sqlalchemy import create_engine, text

    import dbpulse.multiprocess
    from dbpulse.inprocess.instrumentation import instrument

    engines = {
        "uninstrumented": create_engine(f"sqlite:///{db}"),
        "dbpulse": create_engine(f"sqlite:///{db}"),
    }
    # The metric set follows the mode: multiprocess gauges only when it is on.
    instrument(engines["dbpulse"], registry=CollectorRegistry(), lint=False)
    held = {name: engine.connect() for name, engine in engines.items()}
    select = text("SELECT 1")

    def statement(name: str) -> Callable[[], None]:
        conn = held[name]
        return lambda: conn.execute(select).close()

    def checkout(name: str) -> Callable[[], None]:
        engine = engines[name]

        def run() -> None:
            with engine.connect():
                pass

        return run

    out: dict[str, Any] = {"multiprocess": dbpulse.multiprocess.enabled()}
    for scenario, make in (("statement", statement), ("checkout", checkout)):
        wall: dict[str, list[float]] = {"uninstrumented": [], "dbpulse": []}
        cpu: dict[str, list[float]] = {"uninstrumented": [], "dbpulse": []}
        for r in range(rounds):
            order = ["uninstrumented", "dbpulse"][:: 1 if r % 2 else -1]
            for name in order:
                w, c = _per_op(make(name), n)
                wall[name].append(w)
                cpu[name].append(c)
        out[scenario] = {
            "uninstrumented_us": statistics.median(wall["uninstrumented"]) * 1e6,
            "dbpulse_us": statistics.median(wall["dbpulse"]) * 1e6,
            "added_us": _added(wall) * 1e6,
            "added_cpu_us": _added(cpu) * 1e6,
        }
    return out


def _added(means: dict[str, list[float]]) -> float:
    pairs = zip(means["dbpulse"], means["uninstrumented"], strict=True)
    return statistics.median(d - u for d, u in pairs)


def run_mode(mode: str, rounds: int, n: int, tmp: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    if mode == "multiprocess":
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "prom")
        (tmp / "prom").mkdir()
    argv = [sys.executable, __file__, "--child", "--rounds", str(rounds), "--n", str(n)]
    argv += ["--db", str(tmp / f"{mode}.sqlite")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["multiprocess"] == (mode == "multiprocess"), result
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.rounds, args.n, args.db)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            m: run_mode(m, args.rounds, args.n, Path(tmp)) for m in ("single", "multiprocess")
        }
    lines = [
        "# In-process overhead: one process vs prometheus_client's multiprocess mode",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()},"
        f" {os.cpu_count()} CPUs, {args.rounds} rounds x {args.n} operations,"
        " SQLite file, QueuePool. Medians; added = median of per-round differences.",
        "",
        "| mode | scenario | uninstrumented µs | dbpulse µs | added µs | added CPU µs |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for mode, result in results.items():
        for scenario in ("statement", "checkout"):
            r = result[scenario]
            lines.append(
                f"| {mode} | {scenario} | {r['uninstrumented_us']:.2f} | {r['dbpulse_us']:.2f}"
                f" | {r['added_us']:+.2f} | {r['added_cpu_us']:+.2f} |"
            )
    table = "\n".join(lines) + "\n"
    print(table)
    if not args.no_write:
        (HERE / "results" / "multiprocess.md").write_text(table)
        (HERE / "results" / "multiprocess.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
