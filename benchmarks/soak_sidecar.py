"""Soak: ``dbpulse sidecar`` beside 200 pgbench clients and 5,000 distinct statements.

One throwaway cluster (max_connections 260, pg_stat_statements.max 10000). pgbench runs
200 clients mixing the built-in TPC-B-like script with a script that executes one of
5,000 distinct statements at random (so pg_stat_statements keeps churning). The sidecar
runs as its own process at a 5 s interval. Every second the harness samples:

- the sidecar's CPU (utime + stime from /proc/<pid>/stat) and RSS (/proc/<pid>/status),
- ``dbpulse_snapshot_age_seconds`` from /metrics (a poll that reached the database resets
  it, so its maximum says how late the latest poll ever was) and the scrape latency,
- backends with ``application_name = 'dbpulse'`` in pg_stat_activity.

    python benchmarks/soak_sidecar.py [--duration 600] [--interval 5] [--clients 200]

Writes benchmarks/results/soak.md and prints it. Exit 1 when a goal is missed (CPU over
10 % of one core, a poll later than interval + 2 s, a /metrics answer slower than 1 s,
more dbpulse connections than configured, RSS growing more than 10 MiB from the first to
the last fifth), 2 when PostgreSQL binaries are missing.
``tests/integration/test_load_sidecar.py`` runs the same harness for 30 s in CI.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

# layout-note: one soak harness, run by path and (run_soak) by test_load_sidecar.py:
# layout-note: cluster, pgbench, the sidecar process, the once-a-second sampler, the goals
# layout-note: and the report are one run; no other code shares its parts.

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (ROOT, ROOT / "exporter"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from dbpulse import __version__  # noqa: E402 - after the path tweak, run from anywhere
from dbpulse.localpg import LocalPostgres, PostgresNotFound, free_port  # noqa: E402

RESULTS_FILE = HERE / "results" / "soak.md"
WIDE_COLUMNS = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
GOAL_CPU_PERCENT = 10.0
GOAL_LATE_SECONDS = 2.0
GOAL_RSS_GROWTH_MIB = 10.0
# The slowest /metrics answer under load: a wall-clock figure, so a goal here and not an
# assertion in tests/integration/test_load_sidecar.py (it flaked on a busy 2-core machine).
GOAL_SCRAPE_MAX_MS = 1000.0
_AGE = re.compile(r"^dbpulse_snapshot_age_seconds (\S+)$", re.M)
_UP = re.compile(r"^pg_up(?:\{[^}]*\})? (\S+)$", re.M)


def cluster_settings(clients: int) -> dict[str, str]:
    """postgresql.conf lines the load needs (room for pgbench, the sidecar and a watcher)."""
    return {
        "max_connections": str(max(120, clients + 60)),
        "pg_stat_statements.max": "10000",
        "shared_buffers": "128MB",
    }


def statement_pairs(count: int) -> list[tuple[int, int]]:
    """(i, j) column pairs: ``SELECT c<i>, c<j> FROM soak_wide`` is a distinct queryid each."""
    pairs = [(i, j) for i in range(WIDE_COLUMNS) for j in range(WIDE_COLUMNS) if i != j]
    if count > len(pairs):
        raise ValueError(f"at most {len(pairs)} statements")
    return pairs[:count]


def prepare(pg: LocalPostgres, statements: int, scale: int = 5) -> None:
    """pgbench tables, a wide table, a function running statement n, every statement once."""
    columns = ", ".join(f"c{i} int" for i in range(WIDE_COLUMNS))
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute(f"CREATE TABLE soak_wide ({columns})")
        conn.execute(
            "INSERT INTO soak_wide SELECT "
            + ", ".join(["g"] * WIDE_COLUMNS)
            + " FROM generate_series(1, 200) g"
        )
        pairs = statement_pairs(statements)
        # The function picks statement n by arithmetic on n, so one pgbench script line
        # drives all of them; track = all records each EXECUTE'd text as its own entry.
        conn.execute(
            f"""
            CREATE FUNCTION soak_q(n int) RETURNS void LANGUAGE plpgsql AS $$
            DECLARE i int; j int; k int := n % {len(pairs)};
            BEGIN
              i := k / {WIDE_COLUMNS - 1};
              j := k % {WIDE_COLUMNS - 1};
              IF j >= i THEN j := j + 1; END IF;
              EXECUTE format('SELECT c%s, c%s FROM soak_wide WHERE c0 = $1', i, j) USING n % 200;
            END $$
            """
        )
        conn.execute(f"SELECT soak_q(n) FROM generate_series(0, {len(pairs) - 1}) n")
    _run(
        [str(pg.bindir / "pgbench"), "-i", "-q", "-s", str(scale), *_conn_args(pg)],
        timeout=300,
    )


def _conn_args(pg: LocalPostgres) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "postgres"]


def _run(argv: list[str], timeout: float) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {result.stderr[-2000:]}")


def start_pgbench(
    pg: LocalPostgres, clients: int, seconds: float, statements: int, workdir: Path
) -> subprocess.Popen[bytes]:
    """pgbench in the background: TPC-B-like plus the distinct-statement script, 1:1."""
    script = workdir / "distinct.sql"
    script.write_text(f"\\set n random(0, {statements - 1})\nSELECT soak_q(:n);\n")
    log = (workdir / "pgbench.log").open("wb")
    return subprocess.Popen(
        [
            str(pg.bindir / "pgbench"),
            "-n",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(max(1, round(seconds))),
            "-b",
            "tpcb-like@1",
            "-f",
            f"{script}@1",
            *_conn_args(pg),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def pgbench_tps(workdir: Path) -> str:
    text = (workdir / "pgbench.log").read_text(errors="replace")
    found = re.search(r"tps = ([\d.]+)", text)
    return found.group(1) if found else "n/a"


def start_sidecar(dsn: str, port: int, interval: float, log: Path) -> subprocess.Popen[bytes]:
    """``python -m dbpulse sidecar`` as its own process (the one whose /proc we read)."""
    env = {**os.environ, "DBPULSE_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT / "exporter")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dbpulse",
            "sidecar",
            "--dsn",
            dsn,
            "--listen",
            f"127.0.0.1:{port}",
            "--interval",
            str(interval),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(ROOT),
    )


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * PAGE / 2**20


@dataclass
class Sample:
    t: float
    cpu: float
    rss: float
    age: float | None
    up: float | None
    scrape_ms: float
    dbpulse_backends: int
    pgbench_backends: int


@dataclass
class Soak:
    """Samples the sidecar once a second until ``stop`` is set."""

    pid: int
    url: str
    watcher_dsn: str
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, period: float = 1.0) -> None:
        with psycopg.connect(self.watcher_dsn, autocommit=True) as watcher:
            while not self.stop.is_set():
                self.samples.append(self.sample(watcher))
                self.stop.wait(period)

    def sample(self, watcher: psycopg.Connection[tuple[int, int]]) -> Sample:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(self.url, timeout=10) as resp:  # noqa: S310 - local URL
                text = resp.read().decode()
        except OSError:
            text = ""
        scrape_ms = (time.perf_counter() - started) * 1000
        age = _AGE.search(text)
        up = _UP.search(text)
        row = watcher.execute(
            "SELECT count(*) FILTER (WHERE application_name = 'dbpulse'),"
            " count(*) FILTER (WHERE application_name = 'pgbench')"
            " FROM pg_stat_activity"
        ).fetchone()
        return Sample(
            t=time.monotonic(),
            cpu=cpu_seconds(self.pid),
            rss=rss_mib(self.pid),
            age=float(age.group(1)) if age else None,
            up=float(up.group(1)) if up else None,
            scrape_ms=scrape_ms,
            dbpulse_backends=int(row[0]) if row else 0,
            pgbench_backends=int(row[1]) if row else 0,
        )


@dataclass
class Figures:
    seconds: float
    cpu_percent: float
    cpu_percent_max_window: float
    rss_first_mib: float
    rss_last_mib: float
    rss_max_mib: float
    max_age: float
    polls: int
    expected_polls: int
    scrape_p50_ms: float
    scrape_max_ms: float
    max_backends: int
    min_pgbench_backends: int
    up_fraction: float
    rss_series: list[tuple[int, float]]

    def failures(self, interval: float, max_connections: int) -> list[str]:
        out = []
        if self.cpu_percent > GOAL_CPU_PERCENT:
            out.append(f"CPU {self.cpu_percent:.1f}% > {GOAL_CPU_PERCENT}% of one core")
        if self.max_age > interval + GOAL_LATE_SECONDS:
            out.append(f"a poll came {self.max_age:.1f}s after the previous (interval {interval})")
        if self.scrape_max_ms > GOAL_SCRAPE_MAX_MS:
            out.append(f"slowest /metrics {self.scrape_max_ms:.0f} ms > {GOAL_SCRAPE_MAX_MS:g} ms")
        if self.max_backends > max_connections:
            out.append(f"{self.max_backends} dbpulse backends > {max_connections}")
        if self.rss_last_mib - self.rss_first_mib > GOAL_RSS_GROWTH_MIB:
            out.append(f"RSS grew {self.rss_last_mib - self.rss_first_mib:.1f} MiB")
        if self.up_fraction < 1.0:
            out.append(f"pg_up was 0 in {100 * (1 - self.up_fraction):.1f}% of samples")
        return out


def figures(samples: list[Sample], interval: float, warmup: float = 0.0) -> Figures:
    """Reduce the samples; the first ``warmup`` seconds (start-up, first polls) are skipped."""
    t0 = samples[0].t
    kept = [s for s in samples if s.t - t0 >= warmup] or samples
    span = kept[-1].t - kept[0].t
    cpu = 100 * (kept[-1].cpu - kept[0].cpu) / span if span > 0 else 0.0
    windows = []
    step = max(1, round(30 / max(1e-9, span / max(1, len(kept) - 1))))
    for a, b in zip(kept[::step], kept[step::step], strict=False):
        if b.t > a.t:
            windows.append(100 * (b.cpu - a.cpu) / (b.t - a.t))
    fifth = max(1, len(kept) // 5)
    ages = [s.age for s in kept if s.age is not None]
    # A poll round resets the age; count resets at least half an interval apart.
    polls, last_reset = 0, -1e9
    for prev, cur in itertools.pairwise(kept):
        reset = prev.age is not None and cur.age is not None and cur.age < prev.age
        if reset and cur.t - last_reset > interval / 2:
            polls += 1
            last_reset = cur.t
    scrapes = sorted(s.scrape_ms for s in kept)
    ups = [s.up for s in kept if s.up is not None]
    minute = max(1, round(60 / max(1e-9, span / max(1, len(kept) - 1))))
    return Figures(
        seconds=span,
        cpu_percent=cpu,
        cpu_percent_max_window=max(windows, default=cpu),
        rss_first_mib=statistics.mean(s.rss for s in kept[:fifth]),
        rss_last_mib=statistics.mean(s.rss for s in kept[-fifth:]),
        rss_max_mib=max(s.rss for s in kept),
        # The age as sampled once a second lags the real one by at most the period.
        max_age=max(ages, default=float("inf")),
        polls=polls,
        expected_polls=int(span // interval),
        scrape_p50_ms=statistics.median(scrapes),
        scrape_max_ms=scrapes[-1],
        max_backends=max(s.dbpulse_backends for s in samples),
        min_pgbench_backends=min(s.pgbench_backends for s in kept),
        up_fraction=sum(1 for u in ups if u == 1.0) / len(ups) if ups else 0.0,
        rss_series=[(round(s.t - t0), round(s.rss, 1)) for s in kept[::minute]],
    )


def run_soak(
    *,
    duration: float,
    interval: float,
    clients: int,
    statements: int,
    workdir: Path,
    warmup: float = 15.0,
) -> tuple[Figures, dict[str, str]]:
    """Start everything, sample for ``duration`` seconds under load, stop everything."""
    with LocalPostgres(settings=cluster_settings(clients)) as pg:
        prepare(pg, statements)
        port = free_port()
        sidecar = start_sidecar(pg.dsn, port, interval, workdir / "sidecar.log")
        bench = start_pgbench(pg, clients, duration + warmup + 2, statements, workdir)
        soak = Soak(sidecar.pid, f"http://127.0.0.1:{port}/metrics", pg.dsn)
        sampler = threading.Thread(target=soak.run, daemon=True)
        try:
            sampler.start()
            deadline = time.monotonic() + duration + warmup
            while time.monotonic() < deadline:
                if sidecar.poll() is not None:
                    raise RuntimeError(f"sidecar exited with {sidecar.returncode}")
                time.sleep(1)
        finally:
            soak.stop.set()
            sampler.join(timeout=15)
            alive = sidecar.poll() is None
            sidecar.send_signal(signal.SIGTERM)
            sidecar.wait(timeout=30)
            try:  # pgbench prints its summary when -T runs out
                bench.wait(timeout=60)
            except subprocess.TimeoutExpired:
                bench.kill()
                bench.wait()
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
        info = {
            "sidecar_alive_at_end": str(alive),
            "pg_stat_statements_entries": str(row[0] if row else "?"),
            "pgbench_tps": pgbench_tps(workdir),
            "sidecar_exit_code": str(sidecar.returncode),
        }
    return figures(soak.samples, interval, warmup), info


def render(
    fig: Figures,
    info: dict[str, str],
    args: argparse.Namespace,
    failures: list[str],
) -> str:
    rss = ", ".join(f"{t}s: {v}" for t, v in fig.rss_series)
    return f"""# Sidecar soak under load

Finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, dbpulse {__version__}, Python \
{platform.python_version()}, {os.cpu_count()} CPUs, `python benchmarks/soak_sidecar.py \
--duration {args.duration:g} --interval {args.interval:g} --clients {args.clients} \
--statements {args.statements}`.

Load: pgbench, {args.clients} clients (`-j 2`, unthrottled), TPC-B-like and a script running
one of {args.statements} distinct statements, 1:1; {info["pgbench_tps"]} tps.
pg_stat_statements held {info["pg_stat_statements_entries"]} entries at the end.
Sidecar: defaults (max_connections 1) and `--interval {args.interval:g}`. Figures skip the
first {args.warmup:g} s (start-up); samples once a second.

| figure | value | goal |
|---|---|---|
| measured | {fig.seconds:.0f} s | |
| sidecar CPU, whole run | {fig.cpu_percent:.2f} % of one core | < {GOAL_CPU_PERCENT:g} % |
| sidecar CPU, worst 30 s window | {fig.cpu_percent_max_window:.2f} % | |
| RSS first fifth / last fifth / max | {fig.rss_first_mib:.1f} / {fig.rss_last_mib:.1f} / \
{fig.rss_max_mib:.1f} MiB | growth < {GOAL_RSS_GROWTH_MIB:g} MiB |
| longest time since a poll reached the database (max `dbpulse_snapshot_age_seconds`) | \
{fig.max_age:.2f} s | < interval + {GOAL_LATE_SECONDS:g} s |
| poll rounds seen / expected | {fig.polls} / {fig.expected_polls} | |
| /metrics latency p50 / max | {fig.scrape_p50_ms:.1f} / {fig.scrape_max_ms:.1f} ms | \
max < {GOAL_SCRAPE_MAX_MS:g} ms |
| most dbpulse backends at once | {fig.max_backends} | <= 1 |
| fewest pgbench backends in a sample | {fig.min_pgbench_backends} | {args.clients} |
| samples with pg_up 1 | {100 * fig.up_fraction:.1f} % | 100 % |
| sidecar alive at the end | {info["sidecar_alive_at_end"]} (exit {info["sidecar_exit_code"]}) | |

RSS over time (seconds since start: MiB): {rss}

Result: {"all goals met" if not failures else "MISSED: " + "; ".join(failures)}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds measured")
    parser.add_argument("--interval", type=float, default=5.0, help="sidecar poll interval")
    parser.add_argument("--clients", type=int, default=200, help="pgbench clients")
    parser.add_argument("--statements", type=int, default=5000, help="distinct statements")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds not measured")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="dbpulse-soak-") as tmp:
            fig, info = run_soak(
                duration=args.duration,
                interval=args.interval,
                clients=args.clients,
                statements=args.statements,
                workdir=Path(tmp),
                warmup=args.warmup,
            )
    except PostgresNotFound as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    failures = fig.failures(args.interval, max_connections=1)
    report = render(fig, info, args, failures)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
