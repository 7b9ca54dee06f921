"""How fast ``dbpulse lint-migrations`` is: SQL statements per second, and an Alembic project.

Two measurements, each repeated ``--repeat`` times (median reported):

- **SQL**: the test fixtures (every hazard and its safe version) concatenated
  ``--copies`` times into one file, parsed and linted in-process (no output);
- **Alembic**: a project of ``--revisions`` revisions (each adds a column and an index),
  linted end to end through the child process that runs ``alembic upgrade --sql``.

Prints, and writes to ``results/lint.md`` unless ``--no-write``.

    python benchmarks/bench_lint.py [--copies 100] [--revisions 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "exporter")]

from dbpulse.migrationlint.alembic_source import load  # noqa: E402 - after the path tweak
from dbpulse.migrationlint.engine import lint  # noqa: E402
from dbpulse.migrationlint.sqlsource import parse_text  # noqa: E402
from dbpulse.migrationlint.state import Context  # noqa: E402
from tests.integration.alembic_project import write_project  # noqa: E402

FIXTURES = ROOT / "tests" / "migration_fixtures"
RESULTS = Path(__file__).parent / "results" / "lint.md"

REVISION = """
def upgrade():
    op.add_column("users", sa.Column("c{n}", sa.Text(), nullable=True))
    op.create_index("ix_users_c{n}", "users", ["c{n}"])


def downgrade():
    op.drop_index("ix_users_c{n}", table_name="users")
    op.drop_column("users", "c{n}")
"""
BASE = """
def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("users")
"""


def bench_sql(copies: int, repeat: int) -> tuple[int, float]:
    corpus = "\n".join(p.read_text() for p in sorted(FIXTURES.glob("*/*.sql"))) * copies
    runs: list[float] = []
    count = 0
    for _ in range(repeat):
        start = time.perf_counter()
        statements = parse_text(corpus, "corpus.sql", "corpus.sql")
        lint(statements, [], {"corpus.sql": corpus.splitlines()}, Context())
        runs.append(time.perf_counter() - start)
        count = len(statements)
    return count, statistics.median(runs)


def bench_alembic(revisions: int, repeat: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory(prefix="dbpulse-bench-lint-") as tmp:
        revs = [("r0", BASE)] + [(f"r{n}", REVISION.format(n=n)) for n in range(1, revisions)]
        ini = write_project(Path(tmp), revs)
        runs: list[float] = []
        count = 0
        for _ in range(repeat):
            start = time.perf_counter()
            project = load(ini, "base:heads")
            lint(project.statements, project.units, project.files, Context())
            runs.append(time.perf_counter() - start)
            count = len(project.statements)
    return count, statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--revisions", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sql_count, sql_time = bench_sql(args.copies, args.repeat)
    alembic_count, alembic_time = bench_alembic(args.revisions, args.repeat)
    load_avg = os.getloadavg()[0]
    lines = [
        f"# lint-migrations speed (median of {args.repeat})",
        "",
        "| input | statements | median s | statements/s |",
        "|---|---|---|---|",
        f"| SQL: fixtures x{args.copies}, in-process | {sql_count} | {sql_time:.2f} "
        f"| {sql_count / sql_time:,.0f} |",
        f"| Alembic: {args.revisions} revisions, `upgrade --sql` in a child | {alembic_count} "
        f"| {alembic_time:.2f} | {alembic_count / alembic_time:,.0f} |",
        "",
        f"{os.cpu_count()} CPUs, 1-minute load average {load_avg:.1f} at the end "
        "(a shared machine).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
