"""How many targets one dbpulse process holds at a 15 s interval before polls fall behind.

Throwaway clusters hold many databases (pg_stat_statements preloaded and seeded with
distinct statements, created in template1 so every database has the extension); each
database is one named target of one ``dbpulse sidecar`` process. For each level (number
of targets) a fresh process starts, a client probes every target once per interval the
way Prometheus would, and after a warm-up the run measures over a window:

- CPU of the dbpulse process (utime + stime from /proc), per target and poll round;
- resident memory before the first probe and at the end, per target;
- connections dbpulse holds (pg_stat_activity, application_name 'dbpulse');
- poll lag: ``dbpulse_targets_poll_lag_max_seconds`` sampled every 2 s (how late the
  worst target's poll round started) and the oldest snapshot among the targets;
- probe latency over HTTP.

A level "falls behind" when the worst lag exceeds 10 % of the interval or a target's
snapshot is older than two intervals.

    python benchmarks/bench_multitarget.py [--levels 25,100,200,400] [--window 60]

Writes benchmarks/results/multitarget.md and refreshes the block between the markers in
benchmarks/README.md's "Many targets" section. Exits 2 without PostgreSQL binaries.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import yaml

# layout-note: one standalone benchmark, run by path and imported by nothing: cluster setup,
# layout-note: one sidecar process per level, the measurement window and the report are one
# layout-note: run, read top to bottom; no other code shares its parts.

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "exporter")]

from dbpulse import __version__  # noqa: E402 - after the path tweak, run from anywhere
from dbpulse.localpg import LocalPostgres, PostgresNotFound, free_port  # noqa: E402

RESULTS_FILE = HERE / "results" / "multitarget.md"
README_FILE = HERE / "README.md"
README_START = "<!-- bench_multitarget:start -->"
README_END = "<!-- bench_multitarget:end -->"
PAGE = 4096
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Level:
    targets: int
    rss_start_mb: float
    rss_end_mb: float
    cpu_seconds: float
    window: float
    rounds: float
    connections: int
    lag_max: float
    snapshot_age_max: float
    probe_p50_ms: float
    probe_max_ms: float
    targets_up: int
    interval: float
    series: int
    databases_per_cluster: int

    @property
    def mb_per_target(self) -> float:
        return (self.rss_end_mb - self.rss_start_mb) / self.targets

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_seconds / self.window

    @property
    def cpu_ms_per_target_round(self) -> float:
        return 1000.0 * self.cpu_seconds / (self.rounds * self.targets)

    @property
    def behind(self) -> bool:
        return self.lag_max > 0.1 * self.interval or self.snapshot_age_max > 2 * self.interval


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _get(url: str) -> tuple[str, float]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - our own local server
        return resp.read().decode(), time.perf_counter() - started


def _value(text: str, prefix: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def prepare(clusters: list[LocalPostgres], databases: int, statements: int) -> list[str]:
    """Create ``databases`` databases spread over the clusters; returns their DSNs."""
    dsns = []
    for index, cluster in enumerate(clusters):
        with psycopg.connect(cluster.dsn_for("template1"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS wide ("
                + ", ".join(f"c{i} int" for i in range(40))
                + ")"
            )
            for n in range(statements):  # distinct queryids: different column lists
                cols = ", ".join(f"c{(n >> b) % 40}" for b in range(1 + n % 6))
                conn.execute(f"SELECT {cols}, {n % 7} FROM wide WHERE c{n % 40} = {n}")
        mine = range(index, databases, len(clusters))
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            for n in mine:
                conn.execute(f"CREATE DATABASE bench_{n:04d}")
        dsns.extend(cluster.dsn_for(f"bench_{n:04d}") for n in mine)
    return sorted(dsns, key=lambda d: d.rsplit("_", 1)[1])


def connections(clusters: list[LocalPostgres]) -> int:
    total = 0
    for cluster in clusters:
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbpulse'"
            ).fetchone()
            total += int(row[0]) if row else 0
    return total


def _write_config(
    port: int, dsns: list[str], args: argparse.Namespace, tmp: Path
) -> tuple[Path, list[str]]:
    config = {
        "listen": f"127.0.0.1:{port}",
        "interval": args.interval,
        "log_level": "warning",
        "log_format": "json",
        "max_connections_total": 10000,
        "workers": args.workers,
        "targets": [{"name": f"t{i:04d}", "dsn": dsn} for i, dsn in enumerate(dsns)],
    }
    path = tmp / f"bench-{len(dsns)}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, [t["name"] for t in config["targets"]]


def run_level(
    clusters: list[LocalPostgres], dsns: list[str], args: argparse.Namespace, tmp: Path
) -> Level:
    port = free_port()
    path, names = _write_config(port, dsns, args, tmp)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbpulse", "sidecar", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=str(ROOT),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _get(f"{base}/healthz")
                break
            time.sleep(0.1)
        time.sleep(0.5)
        rss_start = _rss_mb(proc.pid)
        latencies: list[float] = []
        lags: list[float] = []
        ages: dict[str, float] = {}
        up: dict[str, bool] = {}
        series: list[int] = []
        pool = ThreadPoolExecutor(max_workers=8)
        started = time.monotonic()
        window_start: float | None = None
        cpu_start = 0.0
        next_round = started
        end = started + args.warmup + args.window
        while time.monotonic() < end:
            now = time.monotonic()
            if window_start is None and now - started >= args.warmup:
                window_start, cpu_start = now, _cpu_seconds(proc.pid)
            if now >= next_round:
                next_round += args.interval
                # Prometheus scrapes targets in parallel, spread over the interval.
                for name, (text, took) in zip(
                    names, pool.map(lambda n: _get(f"{base}/probe?target={n}"), names), strict=True
                ):
                    if window_start is not None:
                        latencies.append(took)
                        ages[name] = _value(text, "dbpulse_snapshot_age_seconds") or 0.0
                    up[name] = _value(text, "pg_up ") == 1.0
                    series.append(sum(1 for line in text.splitlines() if line[:1] not in "#"))
            metrics, _ = _get(f"{base}/metrics")
            if window_start is not None:
                lags.append(_value(metrics, "dbpulse_targets_poll_lag_max_seconds ") or 0.0)
            time.sleep(2.0)
        assert window_start is not None
        window = time.monotonic() - window_start
        cpu = _cpu_seconds(proc.pid) - cpu_start
        rss_end = _rss_mb(proc.pid)
        conns = connections(clusters)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        proc.terminate()
        proc.wait(timeout=60)
    latencies.sort()
    return Level(
        targets=len(dsns),
        rss_start_mb=rss_start,
        rss_end_mb=rss_end,
        cpu_seconds=cpu,
        window=window,
        rounds=window / args.interval,
        connections=conns,
        lag_max=max(lags, default=0.0),
        snapshot_age_max=max(ages.values(), default=0.0),
        probe_p50_ms=1000 * statistics.median(latencies),
        probe_max_ms=1000 * latencies[-1],
        targets_up=sum(up.values()),
        interval=args.interval,
        series=int(statistics.median(series)),
        databases_per_cluster=-(-len(dsns) // len(clusters)),
    )


def table(levels: list[Level]) -> str:
    head = (
        "| targets | DBs per cluster | series per probe | up | CPU (% of one core) |"
        " CPU ms per target per poll | RSS before → after |"
        " MB per target | connections | worst poll lag | oldest snapshot | probe p50 / max |"
        " keeps up |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    rows = [
        f"| {lv.targets} | {lv.databases_per_cluster} | {lv.series:,} | {lv.targets_up} | "
        f"{lv.cpu_percent:.1f} % | "
        f"{lv.cpu_ms_per_target_round:.1f} | {lv.rss_start_mb:.0f} → {lv.rss_end_mb:.0f} MB | "
        f"{lv.mb_per_target:.2f} | {lv.connections} | {lv.lag_max:.2f} s | "
        f"{lv.snapshot_age_max:.1f} s | {lv.probe_p50_ms:.1f} / {lv.probe_max_ms:.1f} ms | "
        f"{'no' if lv.behind else 'yes'} |"
        for lv in levels
    ]
    return head + "\n".join(rows) + "\n"


def summary(levels: list[Level], args: argparse.Namespace) -> str:
    held = [lv.targets for lv in levels if not lv.behind]
    most = max(held, default=0)
    at_100 = [lv for lv in levels if lv.targets == 100]
    mem = f"{at_100[0].mb_per_target:.2f} MB" if at_100 else "not measured"
    goal = "met" if at_100 and at_100[0].mb_per_target < 2.0 and not at_100[0].behind else "NOT met"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Latest run ({stamp}, dbpulse {__version__}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}; {args.clusters} clusters, {args.statements} statements each, "
        f"interval {args.interval:g} s, workers {args.workers}, window {args.window:g} s):\n\n"
        + table(levels)
        + f"\nMost targets measured that kept up: **{most}** (largest level tried: "
        f"{max(lv.targets for lv in levels)}). Goal 100 targets under 2 MB each: {goal} "
        f"({mem} per target at 100).\n"
    )


def write(levels: list[Level], args: argparse.Namespace) -> None:
    text = summary(levels, args)
    RESULTS_FILE.write_text(
        "# Many targets: one dbpulse process, many databases\n\n"
        "Produced by `python benchmarks/bench_multitarget.py` (method in its docstring and in "
        "benchmarks/README.md, section *Many targets*).\n\n" + text + "\n"
        "Columns: *CPU* is the dbpulse process over the window (its share of one core); "
        "*CPU ms per target per poll* divides it by targets and 15 s rounds; *RSS before* is "
        "the process after start-up and before the first probe, *MB per target* is the growth "
        "divided by targets; *connections* are dbpulse's backends on the clusters; *worst poll "
        "lag* is the largest `dbpulse_targets_poll_lag_max_seconds` seen; *oldest snapshot* the "
        "largest `dbpulse_snapshot_age_seconds` among probes; *keeps up* is lag ≤ 10 % of the "
        "interval and no snapshot older than two intervals. The benchmark client, dbpulse and "
        "PostgreSQL share the same 2 CPUs, so the CPU column includes contention.\n"
    )
    readme = README_FILE.read_text()
    if README_START in readme and README_END in readme:
        head, rest = readme.split(README_START, 1)
        _, tail = rest.split(README_END, 1)
        README_FILE.write_text(f"{head}{README_START}\n{text}{README_END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--levels", default="25,100,200,400", help="targets per run")
    parser.add_argument("--clusters", type=int, default=10, help="targets are spread over")
    parser.add_argument(
        "--statements", type=int, default=300, help="distinct statements per cluster"
    )
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    levels = sorted(int(x) for x in args.levels.split(","))
    per_cluster = -(-max(levels) // args.clusters)
    try:
        stack = contextlib.ExitStack()
        with stack:
            clusters = [
                stack.enter_context(
                    LocalPostgres(settings={"max_connections": str(per_cluster + 40)})
                )
                for _ in range(args.clusters)
            ]
            dsns = prepare(clusters, max(levels), args.statements)
            tmp = Path(clusters[0].base or "/tmp")  # noqa: S108 - base is always set once started
            results = []
            for count in levels:
                result = run_level(clusters, dsns[:count], args, tmp)
                results.append(result)
                print(table([result]).splitlines()[-1], flush=True)
    except PostgresNotFound as exc:
        print(exc, file=sys.stderr)
        return 2
    print(summary(results, args))
    if not args.no_write:
        write(results, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
