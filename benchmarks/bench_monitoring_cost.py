"""Database time per hour of monitoring: dbpulse and postgres_exporter, default cadence.

One throwaway PostgreSQL cluster (5 databases, 2,000 distinct statements in
pg_stat_statements). ``dbpulse sidecar`` runs with its defaults (every collector on its
default interval) and Debian's ``prometheus-postgres-exporter`` 0.11.1 with its defaults
(no extra queries file), each connected as its own role; a second ``dbpulse sidecar``
with the regressions collector off runs beside them, so its cost reads off the difference.
postgres_exporter queries only when scraped, so this benchmark scrapes it every
``--scrape-interval`` seconds (15 s, a common setting; the table also gives Prometheus'
default of 1 m); dbpulse polls on its own and is scraped at the same pace (a scrape never
reaches PostgreSQL). pg_stat_statements sums each role's execution and planning time over
the window; per hour is that sum scaled to 3,600 s.

    python benchmarks/bench_monitoring_cost.py [--window 180] [--scrape-interval 15]

Writes benchmarks/results/monitoring-cost.md and prints it. Exits 2 when
prometheus-postgres-exporter or the PostgreSQL server binaries are missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "exporter")]

from dbpulse import __version__  # noqa: E402 - after the path tweak, run from anywhere
from dbpulse.localpg import LocalPostgres, PostgresNotFound, free_port  # noqa: E402

RESULTS_FILE = HERE / "results" / "monitoring-cost.md"
PGEXP = Path("/usr/bin/prometheus-postgres-exporter")
# "dbpulse, regressions off" runs beside the defaults so that the difference of the two
# rows is what the regressions collector (counters each minute, EXPLAINs) costs.
ROLES = {
    "dbpulse": "cost_dbpulse",
    "dbpulse, regressions off": "cost_dbpulse_noreg",
    "postgres_exporter": "cost_pgexp",
}
NO_REGRESSIONS = "collectors:\n  regressions:\n    enabled: false\n"
APP_ROLE = "cost_app"
DATABASES = 5
STATEMENTS = 2000


@dataclass
class RoleTime:
    exec_ms: float
    plan_ms: float
    statements_ms: float  # reading pg_stat_statements itself
    calls: int


def role_time(conn: psycopg.Connection[Any], role: str) -> RoleTime:
    """The role's accumulated database time, from pg_stat_statements (all databases)."""
    row = conn.execute(
        """
        SELECT COALESCE(sum(total_exec_time), 0), COALESCE(sum(total_plan_time), 0),
            COALESCE(sum(total_exec_time) FILTER (WHERE query ILIKE '%%pg_stat_statements%%'), 0),
            COALESCE(sum(calls), 0)
        FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
        WHERE r.rolname = %s
        """,
        (role,),
    ).fetchone()
    assert row is not None
    return RoleTime(float(row[0]), float(row[1]), float(row[2]), int(row[3]))


def prepare(pg: LocalPostgres) -> None:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for role in (*ROLES.values(), APP_ROLE):
            conn.execute(f"CREATE ROLE {role} LOGIN")
        for role in ROLES.values():
            conn.execute(f"GRANT pg_monitor TO {role}")
        # As the README advises, so that the regressions collector's EXPLAINs are real work
        # (postgres_exporter never reads a table).
        conn.execute(f"GRANT pg_read_all_data TO {ROLES['dbpulse']}")
        for i in range(DATABASES - 1):
            conn.execute(f"CREATE DATABASE app{i} OWNER {APP_ROLE}")
        conn.execute(f"CREATE TABLE t (id int, v text); GRANT SELECT ON t TO {APP_ROLE}")
    with psycopg.connect(pg.dsn_for(user=APP_ROLE), autocommit=True) as app:
        for i in range(STATEMENTS):  # distinct texts: distinct queryids
            app.execute(f"SELECT id, v AS c{i} FROM t WHERE id = %s", (i,))


def scrape(port: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as resp:
        resp.read()


def dbpulse_proc(pg: LocalPostgres, name: str, port: int, config: Path | None) -> Any:
    """``dbpulse sidecar`` with its defaults (plus ``config``) as role ``ROLES[name]``."""
    argv = [sys.executable, "-m", "dbpulse", "sidecar", "--dsn", pg.dsn_for(user=ROLES[name])]
    argv += ["--listen", f"127.0.0.1:{port}"]
    if config is not None:
        argv += ["--config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBPULSE_")}
    return subprocess.Popen(
        argv,
        env={**env, "PYTHONPATH": f"{ROOT / 'exporter'}:{ROOT}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run(window: float, scrape_interval: float) -> dict[str, Any]:
    with LocalPostgres() as pg:
        prepare(pg)
        ports = {name: free_port() for name in ROLES}
        assert pg.base is not None
        no_regressions = pg.base / "no-regressions.yaml"
        no_regressions.write_text(NO_REGRESSIONS)
        procs = {
            "dbpulse": dbpulse_proc(pg, "dbpulse", ports["dbpulse"], None),
            "dbpulse, regressions off": dbpulse_proc(
                pg, "dbpulse, regressions off", ports["dbpulse, regressions off"], no_regressions
            ),
            "postgres_exporter": subprocess.Popen(
                [str(PGEXP), f"--web.listen-address=127.0.0.1:{ports['postgres_exporter']}"],
                env={
                    **os.environ,
                    "DATA_SOURCE_NAME": pg.dsn_for(user=ROLES["postgres_exporter"])
                    + "?sslmode=disable",
                },
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        }
        try:
            time.sleep(20)  # both connected, dbpulse's first round done, caches warm
            for port in ports.values():
                scrape(port)
            with psycopg.connect(pg.dsn, autocommit=True) as conn:
                before = {name: role_time(conn, role) for name, role in ROLES.items()}
                started = time.monotonic()
                scrapes = 0
                while time.monotonic() - started < window:
                    for port in ports.values():
                        scrape(port)
                    scrapes += 1
                    time.sleep(max(0.0, started + scrapes * scrape_interval - time.monotonic()))
                elapsed = time.monotonic() - started
                after = {name: role_time(conn, role) for name, role in ROLES.items()}
                version = conn.execute("SHOW server_version").fetchone()
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(timeout=30)
    return {
        "before": before,
        "after": after,
        "elapsed": elapsed,
        "scrapes": scrapes,
        "scrape_interval": scrape_interval,
        "server_version": version[0] if version else "?",
    }


def render(result: dict[str, Any]) -> str:
    elapsed = result["elapsed"]
    scrapes = result["scrapes"]
    lines = [
        "# Database time per hour of monitoring",
        "",
        f"Recorded {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by "
        "`python benchmarks/bench_monitoring_cost.py`: a "
        f"{elapsed:.0f} s window, both exporters scraped every "
        f"{result['scrape_interval']:g} s ({scrapes} scrapes each); {DATABASES} databases, "
        f"{STATEMENTS:,} statements in pg_stat_statements.",
        "",
        "| exporter | DB time in window (ms) | of which reading pg_stat_statements (ms) "
        "| statements run | DB s per hour, scraped every "
        f"{result['scrape_interval']:g} s | DB s per hour, scraped every 60 s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ROLES:
        b, a = result["before"][name], result["after"][name]
        total = (a.exec_ms - b.exec_ms) + (a.plan_ms - b.plan_ms)
        stmts = a.statements_ms - b.statements_ms
        per_hour = total / 1000 * 3600 / elapsed
        if name == "postgres_exporter":  # it queries per scrape: scale by scrapes per hour
            per_scrape = total / 1000 / scrapes
            at_60 = per_scrape * 60
        else:  # dbpulse's polls do not depend on the scrape interval
            at_60 = per_hour
        lines.append(
            f"| {name} | {total:,.1f} | {stmts:,.1f} | {a.calls - b.calls:,} "
            f"| {per_hour:,.2f} | {at_60:,.2f} |"
        )
    lines += [
        "",
        "- DB time: the sum of `total_exec_time + total_plan_time` of the exporter's own "
        "role's pg_stat_statements rows (every database), after minus before the window.",
        "- dbpulse runs every collector at its default interval, pg_stat_statements "
        "included (postgres_exporter 0.11.1 reads pg_stat_statements only with an extra "
        "queries file, not used here): the columns compare defaults, not equal work.",
        "- postgres_exporter queries on every scrape, so its cost follows the scrape "
        "interval; dbpulse's follows its own intervals, whatever the scrape interval.",
        '- "dbpulse, regressions off" is the same sidecar with `collectors.regressions.'
        "enabled: false`, in the same run: the difference of the two dbpulse rows is the "
        "regressions collector (its counter read each minute and its EXPLAINs).",
        "",
        "## Setup",
        "",
        f"- machine: {os.cpu_count()} CPUs (os.cpu_count), {platform.machine()}",
        f"- PostgreSQL: {result['server_version']}",
        f"- dbpulse: {__version__} (Python {platform.python_version()})",
        f"- postgres_exporter: Debian prometheus-postgres-exporter, {PGEXP}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=180.0, help="seconds measured")
    parser.add_argument("--scrape-interval", type=float, default=15.0)
    args = parser.parse_args(argv)
    if not PGEXP.exists() and shutil.which("prometheus-postgres-exporter") is None:
        print(f"{PGEXP} not found: apt-get install prometheus-postgres-exporter", file=sys.stderr)
        return 2
    try:
        result = run(args.window, args.scrape_interval)
    except PostgresNotFound as exc:
        print(str(exc), file=sys.stderr)
        return 2
    text = render(result)
    RESULTS_FILE.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
