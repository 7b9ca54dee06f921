"""In-process plan capture (``explain_slow_queries``): what it adds to requests.

One process, one PostgreSQL cluster started here (dbpulse.localpg), one run. A "request"
is one statement the instrumentation counts as slow (``slow_query_seconds`` set below its
time): ``SELECT id FROM items WHERE note = %s`` over 20,000 rows, a sequential scan of
about a millisecond. Three engines, each instrumented with its own registry, take turns
in every round (the order rotates):

- ``capture off``: ``explain_slow_queries=False`` (the default);
- ``capture on, every time``: ``explain_interval=0``, so every slow statement is handed to
  the background thread (its queue drops what it cannot take): the request that triggers
  a plan, every time, and a background thread planning all along;
- ``capture on, default interval``: ``explain_interval=300``: one plan per fingerprint,
  then only the rate-limit check on the request path.

Reported: median per-request wall time per variant and the median of per-round
differences against ``capture off``. Also ``submit()`` alone for a fresh fingerprint (what
the triggering request pays: a queue put), timed directly.

    python benchmarks/bench_plan_capture.py [--rounds 21] [--n 200]

Writes benchmarks/results/plan_capture.md and prints it.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "exporter")]

from prometheus_client import CollectorRegistry  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from dbpulse import __version__, instrument  # noqa: E402
from dbpulse.inprocess.fingerprint import fingerprint  # noqa: E402
from dbpulse.localpg import LocalPostgres  # noqa: E402

RESULTS_MD = HERE / "results" / "plan_capture.md"
QUERY = text("SELECT id FROM items WHERE note = :n")
VARIANTS = {
    "capture off": {"explain_slow_queries": False},
    "capture on, every time": {"explain_slow_queries": True, "explain_interval": 0.0},
    "capture on, default interval": {"explain_slow_queries": True, "explain_interval": 300.0},
}


def _setup(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id serial PRIMARY KEY, note text)"))
        conn.execute(
            text("INSERT INTO items (note) SELECT 'n' || i FROM generate_series(1, 20000) i")
        )
        conn.execute(text("ANALYZE items"))
    engine.dispose()


def _submit_cost(inst: Any, n: int = 2000) -> float:
    """Microseconds per submit() of a fresh fingerprint (each a new statement text)."""
    plans = inst.plans
    fps = [fingerprint(f"SELECT id FROM t{i} WHERE x = $1") for i in range(n)]
    t0 = time.perf_counter()
    for fp in fps:
        plans.submit(fp, "SELECT 1", None, None)
    return (time.perf_counter() - t0) / n * 1e6


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--n", type=int, default=200, help="requests per variant per round")
    args = parser.parse_args(argv)
    with LocalPostgres() as pg:
        url = pg.dsn.replace("postgresql://", "postgresql+psycopg://", 1)
        _setup(url)
        engines = {}
        insts = {}
        for name, kw in VARIANTS.items():
            engine = create_engine(url, pool_size=2)
            insts[name] = instrument(
                engine, registry=CollectorRegistry(), slow_query_seconds=1e-6, lint=False, **kw
            )
            engines[name] = engine
        per_round: dict[str, list[float]] = {name: [] for name in VARIANTS}
        names = list(VARIANTS)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                with engines[name].connect() as conn:
                    t0 = time.perf_counter()
                    for i in range(args.n):
                        conn.execute(QUERY, {"n": f"n{i}"}).fetchall()
                    per_round[name].append((time.perf_counter() - t0) / args.n * 1e6)
        submit_us = _submit_cost(insts["capture on, every time"])
        planned = {
            name: len(inst.plans.captured) if inst.plans else 0 for name, inst in insts.items()
        }
        for inst in insts.values():
            inst.uninstrument()
        for engine in engines.values():
            engine.dispose()
    base = per_round["capture off"]
    lines = [
        "# In-process plan capture (`explain_slow_queries`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, dbpulse {__version__}, Python "
        f"{platform.python_version()}, {args.rounds} rounds x {args.n} requests per variant, "
        "PostgreSQL (dbpulse.localpg), a slow statement of ~1 ms (sequential scan).",
        "",
        "| variant | median µs per request | added vs off (median of per-round differences) |",
        "|---|---|---|",
    ]
    for name in VARIANTS:
        med = statistics.median(per_round[name])
        added = statistics.median(a - b for a, b in zip(per_round[name], base, strict=True))
        lines.append(
            f"| {name} | {med:,.1f} | {added:+,.1f} µs ({added / statistics.median(base):+.1%}) |"
        )
    lines += [
        "",
        f"`submit()` of a fresh fingerprint (the triggering request's share, a queue put): "
        f"{submit_us:.2f} µs.",
        f"Plans captured during the run: {planned}.",
        "",
    ]
    report = "\n".join(lines)
    RESULTS_MD.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
