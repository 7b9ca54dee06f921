"""Which dashboard and alert expressions answer from dbpulse vs postgres_exporter.

One throwaway PostgreSQL cluster under a modest pgbench load; Debian's
``prometheus-postgres-exporter`` (default metrics) and ``dbpulse sidecar`` (defaults)
each connect as their own ``pg_monitor`` role; one real Prometheus per exporter scrapes
it every 5 s under the same job name (``postgres``), so every expression runs unchanged
against each. After a warm-up (rates need samples) every expression is evaluated as an
instant query on both, and an expression counts as answered when its result is not empty.

    python benchmarks/compare_expressions.py --expressions alerts.txt \
        --expressions dashboard.txt [--warmup 150] [--no-write]

An expressions file holds one PromQL expression per line (``#`` comments and blank lines
skipped) or a JSON list of strings; its file name (without suffix) names the source. The
expressions come from third-party dashboards and alert rules that the user supplies
(see benchmarks/README.md); nothing of them is kept in this repository.

Writes benchmarks/results/expressions.md unless ``--no-write`` and prints the table.
Exits 2 with the install command when a binary is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
from tests.e2e.prometheus import Prometheus  # noqa: E402

# layout-note: one standalone benchmark, run by path and imported by nothing: the cluster,
# layout-note: the two exporters, one Prometheus each, the queries and the report are one
# layout-note: run, read top to bottom; no other code shares its parts.

RESULTS_FILE = HERE / "results" / "expressions.md"
PGEXP = "prometheus-postgres-exporter"
BINARIES = {
    PGEXP: f"apt-get install -y {PGEXP}",
    "prometheus": "apt-get install -y prometheus",
    "pgbench": "apt-get install -y postgresql-contrib",
}
DBPULSE_ROLE = "expr_dbpulse"
PGEXP_ROLE = "expr_pgexp"
BENCH_DB = "bench"  # pgbench's tables live here and both exporters connect here
SLOT = "repmgr_slot_1"  # an inactive physical slot, named as the mixin's slot alert expects
SCRAPE_INTERVAL = "5s"
JOB = "postgres"  # both exporters' job name: dashboards filter on job=~"postgres.*"


class Interrupted(Exception):
    """SIGTERM: unwind through every cleanup like Ctrl-C does."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    """Turn SIGTERM into an exception so the cluster and children are stopped."""
    raise Interrupted


def git_commit() -> str:
    """The checkout's short commit, '+ edits' when exporter/ has uncommitted changes."""

    def git(*args: str) -> str:
        """One git command's stdout in the repository root ('' on failure)."""
        out = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + edits" if git("status", "--porcelain", "--", "exporter") else "")


@dataclass
class Source:
    """One expressions file: its name and expressions, in file order, duplicates dropped."""

    name: str
    expressions: list[str]


@dataclass
class Outcome:
    """One source's result: how many series each expression returned on each exporter."""

    source: Source
    pgexp: list[int] = field(default_factory=list)
    dbpulse: list[int] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def answered(self, side: list[int]) -> int:
        """How many expressions returned something on one side."""
        return sum(1 for n in side if n > 0)

    def missing(self) -> list[str]:
        """Expressions postgres_exporter answers and dbpulse does not."""
        pairs = zip(self.source.expressions, self.pgexp, self.dbpulse, strict=True)
        return [expr for expr, p, d in pairs if p > 0 >= d]

    def extra(self) -> list[str]:
        """Expressions dbpulse answers and postgres_exporter does not."""
        pairs = zip(self.source.expressions, self.pgexp, self.dbpulse, strict=True)
        return [expr for expr, p, d in pairs if d > 0 >= p]


def load_source(path: Path) -> Source:
    """Read a JSON list or one-expression-per-line file."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        raw = [str(item) for item in json.loads(text)]
    else:
        raw = [line.strip() for line in text.splitlines()]
    exprs = [e for e in raw if e and not e.startswith("#")]
    return Source(path.stem, list(dict.fromkeys(exprs)))


def find_binary(name: str) -> str | None:
    """The binary under /usr/bin or on PATH."""
    default = Path("/usr/bin") / name
    return str(default) if default.is_file() else shutil.which(name)


def version_of(argv: list[str], pattern: str) -> str:
    """First match of ``pattern`` in a ``--version`` output, or 'unknown'."""
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


@contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    """Start ``proc``, and stop it when the block ends."""
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def http_get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    """GET ``url``; HTTP errors come back as their status and body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our http://127.0.0.1 URLs
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


def wait_until(proc: Proc, url: str, ready: str, timeout: float) -> None:
    """Poll ``url`` until its body contains ``ready``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.check_alive()
        try:
            status, body = http_get(url, timeout=30)
        except OSError:
            status, body = 0, b""
        if status == 200 and ready.encode() in body:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{proc.name} not ready after {timeout:.0f}s; log: {proc.log}")


def series(answer: dict[str, Any]) -> tuple[int, str]:
    """An instant query's answer as (series in the result, 1 for a scalar; error or '')."""
    if answer.get("status") != "success":
        return 0, str(answer.get("error", "unknown error"))
    data = answer["data"]
    if data["resultType"] in ("scalar", "string"):
        return 1, ""
    return len(data["result"]), ""


def prepare_cluster(pg: LocalPostgres) -> str:
    """Roles, the extension, a pgbench database and a replication slot; the server version."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for role in (DBPULSE_ROLE, PGEXP_ROLE):
            conn.execute(f"CREATE ROLE {role} LOGIN")
            conn.execute(f"GRANT pg_monitor TO {role}")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (SLOT,))
    with psycopg.connect(pg.dsn_for(dbname=BENCH_DB), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return str(row[0]) if row else "unknown"


def pgbench(pgbench_bin: str, pg: LocalPostgres, *args: str) -> list[str]:
    """The pgbench argv against the bench database as the superuser."""
    return [
        pgbench_bin,
        "-h",
        "127.0.0.1",
        "-p",
        str(pg.port),
        "-U",
        "postgres",
        *args,
        BENCH_DB,
    ]


def dbpulse_argv(pg: LocalPostgres, port: int, config: Path) -> list[str]:
    """``dbpulse sidecar`` with its defaults and a 5 s interval."""
    return [
        sys.executable,
        "-m",
        "dbpulse",
        "sidecar",
        "--dsn",
        pg.dsn_for(dbname=BENCH_DB, user=DBPULSE_ROLE),
        "--listen",
        f"127.0.0.1:{port}",
        "--interval",
        "5",
        "--config",
        str(config),
    ]


def run(
    args: argparse.Namespace, bins: dict[str, str], sources: list[Source]
) -> tuple[list[Outcome], str]:
    """Start everything, load, wait, evaluate every expression; also the server version."""
    workdir = Path(tempfile.mkdtemp(prefix="dbpulse-expr-"))
    outcomes = [Outcome(s) for s in sources]
    try:
        with ExitStack() as stack:
            pg = LocalPostgres()
            stack.callback(pg.stop)
            print("starting PostgreSQL ...", flush=True)
            pg.start()
            server_version = prepare_cluster(pg)
            subprocess.run(
                pgbench(bins["pgbench"], pg, "-i", "-q", "-s", str(args.scale)),
                check=True,
                capture_output=True,
                timeout=600,
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("DBPULSE_")}
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "exporter"), str(ROOT)])
            config = workdir / "dbpulse.yaml"
            config.write_text("log_level: warning\n", encoding="utf-8")
            d_port, p_port = free_port(), free_port()
            dbpulse = stack.enter_context(
                running(
                    Proc(
                        "dbpulse sidecar",
                        dbpulse_argv(pg, d_port, config),
                        env,
                        workdir / "dbpulse.log",
                    )
                )
            )
            pgexp_env = dict(os.environ)
            pgexp_env["DATA_SOURCE_NAME"] = pg.dsn_for(BENCH_DB, PGEXP_ROLE) + "?sslmode=disable"
            pgexp = stack.enter_context(
                running(
                    Proc(
                        "postgres_exporter",
                        [
                            bins[PGEXP],
                            f"--web.listen-address=127.0.0.1:{p_port}",
                            "--log.level=warn",
                        ],
                        pgexp_env,
                        workdir / "pgexp.log",
                    )
                )
            )
            wait_until(dbpulse, f"http://127.0.0.1:{d_port}/metrics", "pg_up", 120)
            wait_until(pgexp, f"http://127.0.0.1:{p_port}/metrics", "pg_up", 120)
            load_seconds = args.warmup + 60
            load = stack.enter_context(
                running(
                    Proc(
                        "pgbench",
                        pgbench(
                            bins["pgbench"],
                            pg,
                            "-c",
                            "4",
                            "-j",
                            "2",
                            "-R",
                            str(args.rate),
                            "-T",
                            str(load_seconds),
                        ),
                        dict(os.environ),
                        workdir / "pgbench.log",
                    )
                )
            )
            proms: dict[str, Prometheus] = {}
            for side, port in (("pgexp", p_port), ("dbpulse", d_port)):
                # The e2e tests' Prometheus, one per exporter under the same job name, so
                # every expression runs unchanged against each.
                prom = Prometheus({JOB: f"127.0.0.1:{port}"}, scrape_interval=SCRAPE_INTERVAL)
                stack.callback(prom.stop)
                proms[side] = prom
            print(f"load and scrapes running; waiting {args.warmup} s ...", flush=True)
            deadline = time.monotonic() + args.warmup
            while time.monotonic() < deadline:
                for proc in (dbpulse, pgexp, load):
                    proc.check_alive()
                time.sleep(5)
            for outcome in outcomes:
                for expr in outcome.source.expressions:
                    for side, flags in (("pgexp", outcome.pgexp), ("dbpulse", outcome.dbpulse)):
                        count, error = series(proms[side].query(expr))
                        flags.append(count)
                        if error:
                            outcome.errors[f"{side}: {expr}"] = error
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return outcomes, server_version


def render(outcomes: list[Outcome], notes: dict[str, str], *, details: bool) -> str:
    """The results as Markdown; ``details`` adds every expression's series counts."""
    lines = ["# Dashboard and alert expressions: postgres_exporter vs dbpulse", ""]
    lines += [f"- {key}: {value}" for key, value in notes.items()]
    lines += [
        "",
        "An expression counts when its instant query returns a non-empty result.",
        "",
        "| source | expressions | postgres_exporter | dbpulse |",
        "|---|---:|---:|---:|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.source.name} | {len(o.source.expressions)} "
            f"| {o.answered(o.pgexp)} | {o.answered(o.dbpulse)} |"
        )
    for title, pick in (
        ("Answered by postgres_exporter, not by dbpulse", Outcome.missing),
        ("Answered by dbpulse, not by postgres_exporter", Outcome.extra),
    ):
        lines += ["", f"## {title}", ""]
        rows = [(o.source.name, e) for o in outcomes for e in pick(o)]
        lines += [f"- {name}: `{expr}`" for name, expr in rows] or ["(none)"]
    for o in outcomes if details else []:
        lines += ["", f"## {o.source.name}: series per expression", ""]
        lines += ["| postgres_exporter | dbpulse | expression |", "|---:|---:|---|"]
        for expr, p, d in zip(o.source.expressions, o.pgexp, o.dbpulse, strict=True):
            shown = expr.replace("|", "\\|")
            lines.append(f"| {p} | {d} | `{shown}` |")
    errors = [(k, v) for o in outcomes for k, v in o.errors.items()]
    if errors:
        lines += ["", "## Query errors", ""]
        lines += [f"- `{k}`: {v}" for k, v in errors]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--expressions", type=Path, action="append", required=True)
    parser.add_argument("--warmup", type=int, default=150, help="seconds of load before queries")
    parser.add_argument("--scale", type=int, default=5, help="pgbench -i scale factor")
    parser.add_argument("--rate", type=int, default=100, help="pgbench transactions per second")
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Check binaries, run, print and record the table."""
    args = parse_args(argv)
    bins: dict[str, str] = {}
    for name, hint in BINARIES.items():
        found = find_binary(name)
        if found is None:
            print(f"{name} not found; install it with: {hint}", file=sys.stderr)
            return 2
        bins[name] = found
    sources = [load_source(path) for path in args.expressions]
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        outcomes, server_version = run(args, bins, sources)
    except PostgresNotFound as exc:
        print(exc, file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    notes = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "postgres_exporter": version_of([bins[PGEXP], "--version"], r"version (\S+)"),
        "prometheus": version_of([bins["prometheus"], "--version"], r"version (\S+)"),
        "dbpulse": f"{__version__} at {git_commit()}",
        "PostgreSQL": server_version,
        "load": f"pgbench -s {args.scale}, 4 clients at {args.rate} tps, {args.warmup} s warm-up",
        "setup": f"both exporters connect to database {BENCH_DB} (pgbench's) as pg_monitor roles; "
        f"one inactive physical replication slot ({SLOT}); a primary, no standby",
        "scrape interval": SCRAPE_INTERVAL,
    }
    print(render(outcomes, notes, details=True))
    if not args.no_write:
        # Counts and the one-sided expressions only: the sources' full expression lists
        # are third-party artifacts and stay out of the repository.
        RESULTS_FILE.write_text(render(outcomes, notes, details=False), encoding="utf-8")
        print(f"wrote {RESULTS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
