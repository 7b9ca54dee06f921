"""Sidecar vs postgres_exporter: /metrics latency, database time per poll, series count.

One throwaway PostgreSQL cluster with 5,000 distinct statements in pg_stat_statements;
``dbpulse sidecar`` and Debian's ``prometheus-postgres-exporter`` (with the classic
pg_stat_statements query from ``postgres_exporter_queries.yaml``) run side by side on it,
each as its own role so that pg_stat_statements itself says how much database time each
one spends. Both are scraped in turn (dbpulse, postgres_exporter, dbpulse, ...).

    python benchmarks/bench_sidecar.py [--statements 5000] [--scrapes 30] [--interval 2]

Writes benchmarks/results/sidecar.md, refreshes the numbers between the markers in
benchmarks/README.md when they are there, and prints the table. Exits 2 when
prometheus-postgres-exporter or the PostgreSQL server binaries are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "exporter")]

from benchmarks.processes import Proc  # noqa: E402
from dbpulse import __version__  # noqa: E402 - after the path tweak, run from anywhere
from dbpulse.localpg import LocalPostgres, PostgresNotFound, free_port  # noqa: E402

# layout-note: one standalone benchmark, run by path and imported by nothing: the cluster,
# layout-note: both exporters' processes, the interleaved scrapes, per-role database time and
# layout-note: the report are one run. The report half (render, readme_block) is the part to
# layout-note: move out if a second benchmark ever needs it.

QUERIES_FILE = HERE / "postgres_exporter_queries.yaml"
RESULTS_FILE = HERE / "results" / "sidecar.md"
README_FILE = HERE / "README.md"
README_START = "<!-- bench_sidecar:start -->"
README_END = "<!-- bench_sidecar:end -->"
PGEXP_NAME = "prometheus-postgres-exporter"
PGEXP_HINT = (
    f"{PGEXP_NAME} not found (looked for /usr/bin/{PGEXP_NAME} and on PATH); "
    f"install it with: apt-get install -y {PGEXP_NAME}"
)
DBPULSE_ROLE = "bench_dbpulse"
PGEXP_ROLE = "bench_pgexp"
APP_ROLE = "bench_app"
WIDE_COLUMNS = 100
# Goals: postgres_exporter / dbpulse must reach at least these (latency: issue 11, was 20x).
GOAL_LATENCY = 200.0
GOAL_DB_TIME = 5.0
GOAL_SERIES = 10.0
DEADLINE_SECONDS = 270.0
SCRAPE_TIMEOUT = 60.0
# Issue 11: dbpulse's /metrics at most this many times a static file of the same size
# served by the same HTTP server (plain and gzip).
GOAL_STATIC = 3.0
STATIC_SERVER = HERE / "static_server.py"
GZIP = {"Accept-Encoding": "gzip"}
PLAIN = {"Accept-Encoding": "identity"}


class Interrupted(Exception):
    """SIGTERM: unwind through every ``finally`` like Ctrl-C does."""


# --------------------------------------------------------------------------- workload


def statement_texts(count: int, text_bytes: int = 0) -> Iterator[str]:
    """``count`` statements that normalise to distinct queryids (columns differ, not aliases).

    pg_stat_statements jumbles column references by position, never aliases or constants,
    so each ordered pair of distinct columns of a 100-column table is its own statement.
    The bare texts are ~150 bytes; ``text_bytes`` pads each one to about that size with
    an ORM-style select list (``max(bench_wide.c7) AS bench_wide_max_c7, ...``), the
    same list in every statement, so only the texts grow.
    """
    pad = ""
    k = 0
    while len(pad) + 150 < text_bytes:
        col = k % WIDE_COLUMNS
        pad += f"max(bench_wide.c{col}) AS bench_wide_max_c{col}_{k // WIDE_COLUMNS}, "
        k += 1
    made = 0
    for i in range(WIDE_COLUMNS):
        for j in range(WIDE_COLUMNS):
            if i == j:
                continue
            if made == count:
                return
            made += 1
            yield (
                f"SELECT {pad}c{i}, c{j}, count(*) AS n, min(c0) AS lo, max(c0) AS hi "
                f"FROM bench_wide WHERE c{i} IS NOT NULL AND c{j} > 0 "
                f"GROUP BY c{i}, c{j} ORDER BY n DESC LIMIT 10"
            )
    if made < count:
        raise ValueError(f"at most {WIDE_COLUMNS * (WIDE_COLUMNS - 1)} statements")


def prepare_cluster(pg: LocalPostgres, statements: int, text_bytes: int = 0) -> dict[str, int]:
    """Roles, the extension and the workload; returns pg_stat_statements counts."""
    columns = ", ".join(f"c{i} int" for i in range(WIDE_COLUMNS))
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for role in (DBPULSE_ROLE, PGEXP_ROLE, APP_ROLE):
            conn.execute(f"CREATE ROLE {role} LOGIN")
        for role in (DBPULSE_ROLE, PGEXP_ROLE):
            conn.execute(f"GRANT pg_monitor TO {role}")
        conn.execute(f"CREATE TABLE bench_wide ({columns})")
        conn.execute(f"GRANT SELECT ON bench_wide TO {APP_ROLE}")
        conn.execute("SELECT pg_stat_statements_reset()")
    with psycopg.connect(pg.dsn_for(user=APP_ROLE), autocommit=True) as app:
        for text in statement_texts(statements, text_bytes):
            app.execute(text)
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE userid = %s::regrole),"
            " count(DISTINCT queryid) FILTER (WHERE userid = %s::regrole), count(*),"
            " avg(octet_length(query)) FILTER (WHERE userid = %s::regrole)"
            " FROM pg_stat_statements",
            (APP_ROLE, APP_ROLE, APP_ROLE),
        ).fetchone()
    assert row is not None
    counts = {
        "app_entries": int(row[0]),
        "app_queryids": int(row[1]),
        "all_entries": int(row[2]),
        "text_bytes": round(row[3] or 0),
    }
    if counts["app_queryids"] < statements:
        raise RuntimeError(
            f"expected {statements} distinct statements in pg_stat_statements, "
            f"found {counts['app_queryids']}"
        )
    return counts


# --------------------------------------------------------------------------- processes


def find_pgexp() -> Path | None:
    default = Path("/usr/bin") / PGEXP_NAME
    if default.is_file():
        return default
    found = shutil.which(PGEXP_NAME)
    return Path(found) if found else None


def pgexp_version(binary: Path) -> str:
    out = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    first = (out.stdout or out.stderr).strip().splitlines()
    match = re.search(r"version (\S+)", first[0]) if first else None
    return match.group(1) if match else "unknown"


def dbpulse_source(src: Path) -> str:
    """Which dbpulse code the sidecar runs: the commit, and whether the sidecar has edits."""

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(src), *args], capture_output=True, text=True, check=False
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"{src} (not a git checkout)"
    paths = ("exporter/dbpulse",)
    dirty = git("status", "--porcelain", "--", *paths)
    return f"{src} at {commit}" + (" + uncommitted sidecar changes" if dirty else "")


def dbpulse_proc(
    pg: LocalPostgres, workdir: Path, interval: float, disabled: list[str], src: Path
) -> Proc:
    config = workdir / "dbpulse.yaml"
    lines = ["log_level: warning", "log_format: json"]
    if disabled:
        lines.append("collectors:")
        lines.extend(f"  {name}:\n    enabled: false" for name in disabled)
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(src / "exporter")}
    env = {k: v for k, v in env.items() if not k.startswith("DBPULSE_")}
    argv = [
        sys.executable,
        "-m",
        "dbpulse",
        "sidecar",
        "--dsn",
        pg.dsn_for(user=DBPULSE_ROLE),
        "--listen",
        f"127.0.0.1:{port}",
        "--interval",
        f"{interval:g}",
        "--config",
        str(config),
    ]
    proc = Proc("dbpulse sidecar", argv, env, workdir / "dbpulse.log", port)
    proc.cwd = src
    return proc


def pgexp_proc(pg: LocalPostgres, binary: Path, workdir: Path) -> Proc:
    port = free_port()
    env = {**os.environ, "DATA_SOURCE_NAME": pg.dsn_for(user=PGEXP_ROLE) + "?sslmode=disable"}
    argv = [
        str(binary),
        f"--web.listen-address=127.0.0.1:{port}",
        f"--extend.query-path={QUERIES_FILE}",
        "--log.level=warn",
    ]
    return Proc("postgres_exporter", argv, env, workdir / "postgres_exporter.log", port)


# --------------------------------------------------------------------------- scraping


@dataclass
class Scrape:
    seconds: float
    body: str

    @property
    def series(self) -> int:
        return sum(1 for line in self.body.splitlines() if line and not line.startswith("#"))

    def count_prefix(self, prefix: str) -> int:
        return sum(1 for line in self.body.splitlines() if line.startswith(prefix))


def scrape(port: int, path: str = "/metrics") -> tuple[int, Scrape]:
    """One GET on a fresh connection; the time covers connect to the last body byte."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SCRAPE_TIMEOUT)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    return resp.status, Scrape(time.perf_counter() - started, body.decode("utf-8", "replace"))


def scrape_raw(port: int, path: str, headers: dict[str, str]) -> tuple[float, bytes]:
    """Like ``scrape`` with request headers; the body stays as sent (gzip stays gzip)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SCRAPE_TIMEOUT)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"GET {path} on port {port} answered HTTP {resp.status}")
    wanted = headers.get("Accept-Encoding", "identity")
    if (resp.getheader("Content-Encoding") or "identity") != wanted:
        raise RuntimeError(
            f"GET {path}: asked for {wanted}, got {resp.getheader('Content-Encoding')}"
        )
    return time.perf_counter() - started, body


def wait_for(proc: Proc, ready: re.Pattern[str], timeout: float) -> Scrape:
    """Scrape until the body matches ``ready`` (the first poll finished)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        proc.check_alive()
        try:
            status, result = scrape(proc.port)
        except OSError as exc:
            last = str(exc)
        else:
            if status == 200 and ready.search(result.body):
                return result
            last = f"HTTP {status}, not ready"
        time.sleep(0.5)
    raise RuntimeError(
        f"{proc.name} not ready after {timeout:.0f}s ({last}); its log:\n{proc.log_tail()}"
    )


def collector_ready(disabled: list[str]) -> re.Pattern[str]:
    """The statements collector has succeeded once (or, without it, the target is up)."""
    if "statements" in disabled:
        return re.compile(r"^pg_up\{[^}]*\} 1\.0$", re.M)
    return re.compile(r'^pg_scrape_collector_success\{collector="statements"\} 1\.0$', re.M)


_SUCCESS = re.compile(r'^pg_scrape_collector_success\{collector="(\w+)"\} (\S+)$', re.M)


def collector_outcomes(body: str) -> dict[str, bool]:
    return {name: float(value) == 1.0 for name, value in _SUCCESS.findall(body)}


# --------------------------------------------------------------------------- measuring


@dataclass
class RoleStats:
    """pg_stat_statements rows of one role: key -> (calls, exec ms, plan ms, query)."""

    rows: dict[tuple[int, int, bool], tuple[int, float, float, str]] = field(default_factory=dict)


def role_stats(conn: psycopg.Connection[Any], role: str) -> RoleStats:
    cur = conn.execute(
        "SELECT dbid, queryid, toplevel, calls, total_exec_time, total_plan_time, query"
        " FROM pg_stat_statements WHERE userid = %s::regrole",
        (role,),
    )
    return RoleStats({(r[0], r[1], r[2]): (int(r[3]), float(r[4]), float(r[5]), r[6]) for r in cur})


@dataclass
class DbDelta:
    exec_ms: float
    plan_ms: float  # pg_stat_statements.track_planning
    pss_exec_ms: float  # statements reading pg_stat_statements
    pss_calls: int  # the most-called statement reading pg_stat_statements
    max_calls: int  # the most-called statement other than SET / utility
    statements: int  # distinct statements that ran in the window
    # (exec ms, calls, normalised text) of every statement that ran, heaviest first
    top: list[tuple[float, int, str]] = field(default_factory=list)


# A statement that reads the view or function (not one that merely names the extension).
_READS_PSS = re.compile(r'\bfrom\s+("?\w+"?\.)?pg_stat_statements\b', re.IGNORECASE)


def db_delta(before: RoleStats, after: RoleStats) -> DbDelta:
    exec_ms = plan_ms = pss_ms = 0.0
    pss_calls = max_calls = ran = 0
    top: list[tuple[float, int, str]] = []
    for key, (calls, total, plan, text) in after.rows.items():
        calls0, total0, plan0, _ = before.rows.get(key, (0, 0.0, 0.0, text))
        d_calls, d_total = calls - calls0, total - total0
        plan_ms += plan - plan0
        if d_calls <= 0:
            continue
        ran += 1
        exec_ms += d_total
        top.append((d_total, d_calls, text))
        if not text.lstrip().upper().startswith(("SET", "RESET", "BEGIN", "COMMIT", "ROLLBACK")):
            max_calls = max(max_calls, d_calls)
        if _READS_PSS.search(text):
            pss_ms += d_total
            pss_calls = max(pss_calls, d_calls)
    top.sort(reverse=True)
    return DbDelta(exec_ms, plan_ms, pss_ms, pss_calls, max_calls, ran, top)


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


_DURATION = re.compile(r'^pg_scrape_collector_duration_seconds\{collector="(\w+)"\} (\S+)$', re.M)


@dataclass
class Side:
    """What was measured for one exporter."""

    name: str
    scrapes: list[Scrape] = field(default_factory=list)
    db: DbDelta | None = None
    polls: int = 0
    poll_ms: list[float] = field(default_factory=list)  # DB exec ms per poll, by round
    cpu_s: float = 0.0
    rss: float = 0.0
    collector_seconds: dict[str, list[float]] = field(default_factory=dict)
    gzip_ms: list[float] = field(default_factory=list)  # /metrics with Accept-Encoding: gzip

    def latencies_ms(self) -> list[float]:
        return [s.seconds * 1000 for s in self.scrapes]

    def record_durations(self, body: str) -> None:
        for name, value in _DURATION.findall(body):
            self.collector_seconds.setdefault(name, []).append(float(value))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p90(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


@dataclass
class Run:
    dbpulse: Side
    pgexp: Side
    window_s: float
    rounds: int
    counts: dict[str, int]
    notes: dict[str, str]
    static: StaticComparison | None = None


def polls_in(delta: DbDelta) -> int:
    """Polls a delta covers: calls of the exporter's pg_stat_statements query (one per poll)."""
    return delta.pss_calls or delta.max_calls


def per_poll_samples(snaps: list[RoleStats]) -> list[float]:
    """DB exec ms per poll in each round that saw a poll finish (a robust median source)."""
    samples = []
    for prev, cur in itertools.pairwise(snaps):
        delta = db_delta(prev, cur)
        if polls_in(delta):
            samples.append(delta.exec_ms / polls_in(delta))
    return samples


def measure(
    pg: LocalPostgres, sidecar: Proc, exporter: Proc, *, rounds: int, pause: float, deadline: float
) -> tuple[Side, Side, float, int]:
    a, b = Side("dbpulse"), Side("postgres_exporter")
    pairs = ((a, sidecar, DBPULSE_ROLE), (b, exporter, PGEXP_ROLE))
    snaps: dict[str, list[RoleStats]] = {a.name: [], b.name: []}
    with psycopg.connect(pg.dsn, autocommit=True) as conn:

        def snapshot() -> None:
            for side, _, role in pairs:
                snaps[side.name].append(role_stats(conn, role))

        snapshot()
        cpu0 = {side.name: cpu_seconds(proc.pid) for side, proc, _ in pairs}
        started = time.perf_counter()
        done = 0
        for _ in range(rounds):
            if time.monotonic() > deadline:
                print(f"  time budget reached after {done} rounds", flush=True)
                break
            # Each exporter plain then gzip (as Prometheus asks), dbpulse first: both its
            # scrapes follow the pause, never postgres_exporter's 2 s burst of CPU.
            for side, proc, _ in pairs:
                status, result = scrape(proc.port)
                if status != 200:
                    raise RuntimeError(f"{proc.name} answered HTTP {status}")
                side.scrapes.append(result)
                seconds, _body = scrape_raw(proc.port, "/metrics", GZIP)
                side.gzip_ms.append(seconds * 1000)
            a.record_durations(a.scrapes[-1].body)
            done += 1
            time.sleep(pause)
            snapshot()
        window = time.perf_counter() - started
        cpu1 = {side.name: cpu_seconds(proc.pid) for side, proc, _ in pairs}
    for side, proc, _ in pairs:
        side.db = db_delta(snaps[side.name][0], snaps[side.name][-1])
        side.polls = polls_in(side.db)
        side.poll_ms = per_poll_samples(snaps[side.name])
        side.cpu_s = cpu1[side.name] - cpu0[side.name]
        side.rss = rss_mib(proc.pid)
    return a, b, window, done


@dataclass
class StaticComparison:
    """/metrics vs the same bytes as a static file from the same server, in ms per scrape."""

    ms: dict[str, list[float]] = field(default_factory=dict)  # "dbpulse plain", "static gzip" ...
    bytes: dict[str, int] = field(default_factory=dict)  # "plain", "gzip": body sizes

    def median(self, key: str) -> float:
        return median(self.ms.get(key, []))


def measure_static(sidecar: Proc, workdir: Path, rounds: int, deadline: float) -> StaticComparison:
    """Serve dbpulse's current bodies as static files and scrape both, interleaved."""
    result = StaticComparison()
    _, plain = scrape_raw(sidecar.port, "/metrics", PLAIN)
    _, packed = scrape_raw(sidecar.port, "/metrics", GZIP)
    result.bytes = {"plain": len(plain), "gzip": len(packed)}
    (workdir / "metrics.txt").write_bytes(plain)
    (workdir / "metrics.txt.gz").write_bytes(packed)
    port = free_port()
    argv = [sys.executable, str(STATIC_SERVER), str(workdir / "metrics.txt")]
    argv += [str(workdir / "metrics.txt.gz"), str(port)]
    static = Proc("static server", argv, dict(os.environ), workdir / "static.log", port)
    static.start()
    try:
        until = time.monotonic() + 30
        while True:
            static.check_alive()
            try:
                scrape_raw(port, "/plain", PLAIN)
                break
            except OSError:
                if time.monotonic() > until:
                    raise
                time.sleep(0.2)
        cases = [
            ("dbpulse plain", sidecar.port, "/metrics", PLAIN),
            ("static plain", port, "/plain", PLAIN),
            ("dbpulse gzip", sidecar.port, "/metrics", GZIP),
            ("static gzip", port, "/gzip", GZIP),
        ]
        for _ in range(2):  # warm-up, not measured
            for _key, p, path, headers in cases:
                scrape_raw(p, path, headers)
        for _ in range(rounds):
            if time.monotonic() > deadline:
                break
            for key, p, path, headers in cases:
                seconds, _body = scrape_raw(p, path, headers)
                result.ms.setdefault(key, []).append(seconds * 1000)
    finally:
        static.stop()
    return result


# --------------------------------------------------------------------------- report


def ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("inf")


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def verdict(value: float, goal: float) -> str:
    return f"{'met' if value >= goal else 'NOT met'} (goal >= {goal:g}x)"


def verdict_at_most(value: float, goal: float) -> str:
    return f"{'met' if value <= goal else 'NOT met'} (goal <= {goal:g}x)"


def static_section(static: StaticComparison | None) -> list[str]:
    if static is None or not static.ms:
        return []
    rows = []
    for enc in ("plain", "gzip"):
        d, f = static.median(f"dbpulse {enc}"), static.median(f"static {enc}")
        dp, fp = p90(static.ms[f"dbpulse {enc}"]), p90(static.ms[f"static {enc}"])
        rows.append(
            f"| {enc} ({fmt(static.bytes[enc] / 1024)} KiB) | {fmt(d, 2)} | {fmt(f, 2)} "
            f"| {fmt(ratio(d, f), 2)}x | {verdict_at_most(ratio(d, f), GOAL_STATIC)} "
            f"| {fmt(dp, 2)} / {fmt(fp, 2)} |"
        )
    count = len(static.ms["dbpulse plain"])
    return [
        "## /metrics vs a static file of the same size, same server",
        "",
        "The body dbpulse served at the start of this phase, saved and served as fixed bytes by",
        "`benchmarks/static_server.py` (dbpulse's cheroot server, same settings, its own process);",
        f"{count} rounds of (dbpulse plain, static plain, dbpulse gzip, static gzip), each a",
        "GET on a fresh connection, connect to last byte. Median ms:",
        "",
        "| body | dbpulse /metrics | static file | dbpulse / static | goal "
        "| p90 dbpulse / static |",
        "|---|---:|---:|---:|---|---:|",
        *rows,
        "",
    ]


def render(run: Run) -> str:
    a, b = run.dbpulse, run.pgexp
    assert a.db is not None
    assert b.db is not None
    la, lb = a.latencies_ms(), b.latencies_ms()
    lat_ratio = ratio(median(lb), median(la))
    gz_ratio = ratio(median(b.gzip_ms), median(a.gzip_ms))
    a_poll, b_poll = median(a.poll_ms), median(b.poll_ms)
    a_mean, b_mean = a.db.exec_ms / max(1, a.polls), b.db.exec_ms / max(1, b.polls)
    a_pss, b_pss = a.db.pss_exec_ms / max(1, a.polls), b.db.pss_exec_ms / max(1, b.polls)
    a_plan, b_plan = a.db.plan_ms / max(1, a.polls), b.db.plan_ms / max(1, b.polls)
    sa, sb = median([s.series for s in a.scrapes]), median([s.series for s in b.scrapes])
    pa = median([s.count_prefix("pg_stat_statements") for s in a.scrapes])
    pb = median([s.count_prefix("pg_stat_statements") for s in b.scrapes])
    ba, bb = median([len(s.body) for s in a.scrapes]), median([len(s.body) for s in b.scrapes])
    rows = [
        ("/metrics latency, median (ms)", fmt(median(la), 2), fmt(median(lb), 1),
         f"{fmt(lat_ratio)}x", verdict(lat_ratio, GOAL_LATENCY)),
        ("/metrics latency, p90 (ms)", fmt(p90(la), 2), fmt(p90(lb), 1),
         f"{fmt(ratio(p90(lb), p90(la)))}x", ""),
        ("/metrics latency with gzip, median (ms)", fmt(median(a.gzip_ms), 2),
         fmt(median(b.gzip_ms), 1), f"{fmt(gz_ratio)}x", verdict(gz_ratio, GOAL_LATENCY)),
        ("DB exec time per poll, median (ms)", fmt(a_poll, 2), fmt(b_poll, 2),
         f"{fmt(ratio(b_poll, a_poll))}x", verdict(ratio(b_poll, a_poll), GOAL_DB_TIME)),
        ("DB exec time per poll, p90 (ms)", fmt(p90(a.poll_ms), 2), fmt(p90(b.poll_ms), 2),
         f"{fmt(ratio(p90(b.poll_ms), p90(a.poll_ms)))}x", ""),
        ("DB exec time per poll, window mean (ms)", fmt(a_mean, 2), fmt(b_mean, 2),
         f"{fmt(ratio(b_mean, a_mean))}x", ""),
        ("  of which pg_stat_statements queries (mean, ms)", fmt(a_pss, 2), fmt(b_pss, 2),
         f"{fmt(ratio(b_pss, a_pss))}x", ""),
        ("DB planning time per poll, window mean (ms)", fmt(a_plan, 2), fmt(b_plan, 2),
         f"{fmt(ratio(b_plan, a_plan))}x", ""),
        ("series (non-comment lines of /metrics)", f"{sa:,.0f}", f"{sb:,.0f}",
         f"{fmt(ratio(sb, sa))}x", verdict(ratio(sb, sa), GOAL_SERIES)),
        ("  of which pg_stat_statements_*", f"{pa:,.0f}", f"{pb:,.0f}",
         f"{fmt(ratio(pb, pa))}x", ""),
        ("/metrics body (KiB)", fmt(ba / 1024), fmt(bb / 1024), f"{fmt(ratio(bb, ba))}x", ""),
        ("polls in the window", str(a.polls), str(b.polls), "", ""),
        ("exporter CPU in the window (s)", fmt(a.cpu_s, 2), fmt(b.cpu_s, 2),
         f"{fmt(ratio(b.cpu_s, a.cpu_s))}x", ""),
        ("exporter RSS at the end (MiB)", fmt(a.rss), fmt(b.rss), "", ""),
    ]  # fmt: skip
    out = [
        "# Sidecar vs postgres_exporter",
        "",
        f"Recorded {run.notes['date']} by `python benchmarks/bench_sidecar.py{run.notes['args']}`.",
        "",
        "| measure | dbpulse sidecar | postgres_exporter | postgres_exporter / dbpulse | goal |",
        "|---|---:|---:|---:|---|",
        *(f"| {' | '.join(r)} |" for r in rows),
        "",
    ]
    if a.collector_seconds:
        out += [
            "dbpulse's own `pg_scrape_collector_duration_seconds` (wall time of fetch + build, "
            "median over the scrapes): "
            + ", ".join(
                f"{name} {median(v) * 1000:.1f} ms" for name, v in a.collector_seconds.items()
            )
            + ".",
            "",
        ]
    out += [
        *static_section(run.static),
        "## Where each exporter's database time goes",
        "",
        "Heaviest statements of each role in the window (normalised text, shortened):",
        "",
        "| exporter | ms per poll | calls per poll | ms per call | statement |",
        "|---|---:|---:|---:|---|",
    ]
    for side in (a, b):
        assert side.db is not None
        polls = max(1, side.polls)
        out.extend(
            f"| {side.name} | {ms / polls:.2f} | {calls / polls:.2f} | {ms / calls:.2f} "
            f"| `{_short(text)}` |"
            for ms, calls, text in side.db.top[:6]
        )
    out += [
        "",
        "## Setup",
        "",
        *(f"- {k}: {v}" for k, v in run.notes.items() if k not in {"date", "args"}),
        f"- pg_stat_statements: {run.counts['app_queryids']:,} distinct workload statements "
        f"(role {APP_ROLE}, query texts {run.counts['text_bytes']:,} bytes on average), "
        f"{run.counts['all_entries']:,} entries in all before the exporters "
        "started; pg_stat_statements.max = 10000, track = all, track_planning = on",
        f"- window: {run.rounds} rounds of (dbpulse scrape, postgres_exporter scrape) in "
        f"{run.window_s:.1f} s; distinct statements each exporter ran in it: "
        f"dbpulse {a.db.statements}, postgres_exporter {b.db.statements}",
        "",
        "## Method",
        "",
        "- Latency: wall clock of one HTTP GET /metrics on a fresh connection from connect "
        "to the last body byte, text format; each round scrapes dbpulse uncompressed, "
        "dbpulse with `Accept-Encoding: gzip` (as Prometheus asks; body not decoded), then "
        "postgres_exporter the same two ways, then pauses. "
        "dbpulse serves a snapshot that its background poller refreshes every interval, "
        "so a scrape never waits for the database; postgres_exporter runs its queries "
        "inside every scrape.",
        f"- DB time: each exporter connects as its own role ({DBPULSE_ROLE}, {PGEXP_ROLE}, both "
        "`GRANT pg_monitor`); the sum of `total_exec_time` of that role's rows in "
        "pg_stat_statements, read after every round: the delta of a round that saw a "
        "poll finish, divided by the polls it saw, is one sample (median and p90 quoted, "
        "the goal judged on the median); the window mean is the delta over the whole "
        "window divided by all its polls. Planning time (track_planning on) is reported "
        "on its own row and not in the goal, which is about execution.",
        "- Polls: for postgres_exporter, one per scrape. For dbpulse, polls run on the "
        "interval whatever the scrapes do; they are counted as the calls delta of its "
        "most-called statement that reads pg_stat_statements (one per statements poll), "
        "so a poll is one run of every collector. A poll that straddles a round's edge "
        "can move part of its other collectors' queries into the next sample; the "
        "median absorbs that, the window mean is off by at most one poll.",
        "- Both exporters run everything they run by default: postgres_exporter its "
        "built-in metrics (pg_stat_database, pg_locks, pg_stat_activity, pg_settings, "
        "bgwriter, replication ...) plus the queries file; dbpulse all its enabled "
        "collectors. The pg_stat_statements rows isolate that query alone.",
        "- Series: non-comment lines of one /metrics body (median over the scrapes), each "
        "exporter's process metrics included.",
        "- The machine is shared with other developers' test suites; read medians and "
        "ratios, not single scrapes.",
        "",
    ]
    return "\n".join(out)


def _short(text: str, width: int = 90) -> str:
    flat = " ".join(text.split()).replace("|", "\\|").replace("`", "'")
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def readme_block(run: Run) -> str:
    a, b = run.dbpulse, run.pgexp
    assert a.db is not None
    assert b.db is not None
    la, lb = median(a.latencies_ms()), median(b.latencies_ms())
    a_poll, b_poll = median(a.poll_ms), median(b.poll_ms)
    sa, sb = median([s.series for s in a.scrapes]), median([s.series for s in b.scrapes])
    return "\n".join(
        [
            README_START,
            f"Latest run ({run.notes['date']}, {run.notes['machine']}; "
            f"{run.counts['app_queryids']:,} statements with texts of "
            f"{run.counts['text_bytes']:,} bytes on average, {run.rounds} scrapes each):",
            "",
            "| | dbpulse sidecar | postgres_exporter | ratio | goal |",
            "|---|---:|---:|---:|---|",
            f"| /metrics median latency | {la:.2f} ms | {lb:.1f} ms | {ratio(lb, la):,.0f}x "
            f"| {verdict(ratio(lb, la), GOAL_LATENCY)} |",
            f"| /metrics median latency, gzip | {median(a.gzip_ms):.2f} ms "
            f"| {median(b.gzip_ms):.1f} ms | {ratio(median(b.gzip_ms), median(a.gzip_ms)):,.0f}x "
            f"| {verdict(ratio(median(b.gzip_ms), median(a.gzip_ms)), GOAL_LATENCY)} |",
            f"| DB exec time per poll, median | {a_poll:.2f} ms | {b_poll:.2f} ms "
            f"| {ratio(b_poll, a_poll):,.1f}x | {verdict(ratio(b_poll, a_poll), GOAL_DB_TIME)} |",
            f"| series | {sa:,.0f} | {sb:,.0f} | {ratio(sb, sa):,.1f}x "
            f"| {verdict(ratio(sb, sa), GOAL_SERIES)} |",
            *readme_static_rows(run.static),
            "",
            "Full table, setup and method: [results/sidecar.md](results/sidecar.md).",
            README_END,
        ]
    )


def readme_static_rows(static: StaticComparison | None) -> list[str]:
    """dbpulse / static-file rows for the README table (the column order differs: say so)."""
    if static is None or not static.ms:
        return []
    rows = []
    for enc in ("plain", "gzip"):
        d, f = static.median(f"dbpulse {enc}"), static.median(f"static {enc}")
        rows.append(
            f"| /metrics {enc} vs static file of the same size (same server), median "
            f"| {d:.2f} ms | static: {f:.2f} ms | {ratio(d, f):.2f}x "
            f"| {verdict_at_most(ratio(d, f), GOAL_STATIC)} |"
        )
    return rows


def update_readme(run: Run) -> None:
    """Refresh the numbers between the markers; never touches the rest of the file."""
    if not README_FILE.is_file():
        return
    text = README_FILE.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        print(f"(no {README_START} markers in {README_FILE}; README left as it is)")
        return
    new = text[:start] + readme_block(run) + text[end + len(README_END) :]
    README_FILE.write_text(new, encoding="utf-8")


# --------------------------------------------------------------------------- main


def machine_notes(pg: LocalPostgres, pgexp: Path) -> dict[str, str]:
    with psycopg.connect(pg.dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    server = str(row[0]) if row else "unknown"
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs (nproc), {platform.machine()}",
        "PostgreSQL": server,
        "dbpulse": f"{__version__} (Python {platform.python_version()})",
        "postgres_exporter": f"{pgexp_version(pgexp)} (Debian {PGEXP_NAME}, {pgexp})",
        "load average at start (1/5/15 min)": load,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--statements", type=int, default=5000, help="distinct statements")
    p.add_argument("--scrapes", type=int, default=40, help="scrapes of each exporter")
    p.add_argument("--interval", type=float, default=2.0, help="dbpulse poll interval, s")
    p.add_argument("--pause", type=float, default=1.0, help="seconds between rounds")
    p.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="COLLECTOR",
        help="disable a dbpulse collector (repeatable)",
    )
    p.add_argument(
        "--dbpulse-src",
        type=Path,
        default=ROOT,
        help="directory whose exporter/dbpulse package the sidecar runs (default: this checkout)",
    )
    p.add_argument(
        "--text-bytes",
        type=int,
        default=0,
        help="pad each statement's text to about this many bytes (default: ~150, bare)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=RESULTS_FILE,
        help="results file (default results/sidecar.md; only that one updates the README)",
    )
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    return p.parse_args(argv)


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise Interrupted


def run(args: argparse.Namespace, pgexp: Path) -> Run:
    deadline = time.monotonic() + DEADLINE_SECONDS
    workdir = Path(tempfile.mkdtemp(prefix="dbpulse-bench-"))
    procs: list[Proc] = []
    pg = LocalPostgres(
        settings={"pg_stat_statements.max": "10000", "pg_stat_statements.track_planning": "on"}
    )
    try:
        print("starting PostgreSQL ...", flush=True)
        pg.start()
        notes = machine_notes(pg, pgexp)
        print(f"creating {args.statements:,} distinct statements ...", flush=True)
        counts = prepare_cluster(pg, args.statements, args.text_bytes)
        print(f"  pg_stat_statements holds {counts['all_entries']:,} entries", flush=True)
        src = args.dbpulse_src.resolve()
        notes["dbpulse code"] = dbpulse_source(src)
        sidecar = dbpulse_proc(pg, workdir, args.interval, args.disable, src)
        exporter = pgexp_proc(pg, pgexp, workdir)
        for proc in (sidecar, exporter):
            procs.append(proc)
            proc.start()
        print("waiting for both exporters' first poll ...", flush=True)
        wait_for(sidecar, collector_ready(args.disable), 90)
        wait_for(exporter, re.compile(r"^pg_stat_statements_calls\{", re.M), 90)
        time.sleep(args.interval)  # every other collector has had its first run too
        for _ in range(2):  # warm-up, not measured
            scrape(sidecar.port)
            scrape(exporter.port)
        print(f"measuring {args.scrapes} interleaved scrapes each ...", flush=True)
        a, b, window, rounds = measure(
            pg, sidecar, exporter, rounds=args.scrapes, pause=args.pause, deadline=deadline
        )
        for proc in procs:
            proc.check_alive()
        print("comparing /metrics with a static file of the same size ...", flush=True)
        static = measure_static(sidecar, workdir, args.scrapes, deadline + 120)
        outcomes = collector_outcomes(a.scrapes[-1].body) if a.scrapes else {}
        notes["dbpulse collectors"] = ", ".join(
            name if ok else f"{name} (FAILING)" for name, ok in outcomes.items()
        )
        notes["load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        notes["args"] = "".join(f" {x}" for x in sys.argv[1:])
        return Run(a, b, window, rounds, counts, notes, static)
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(Exception):
                proc.stop()
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pgexp = find_pgexp()
    if pgexp is None:
        print(f"bench_sidecar: {PGEXP_HINT}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Also when started with SIGINT ignored (a background job of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = run(args, pgexp)
    except PostgresNotFound as exc:
        print(f"bench_sidecar: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print("bench_sidecar: interrupted; exporters and cluster stopped", file=sys.stderr)
        return 130
    report = render(result)
    print()
    print(report)
    if not args.no_write:
        output = args.output.resolve()
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report, encoding="utf-8")
        if output == RESULTS_FILE:
            update_readme(result)
        print(f"written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
