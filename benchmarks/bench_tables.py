"""What the tables collector costs on a database with many tables, beside postgres_exporter.

One throwaway cluster, one database holding ``--tables`` tables (a primary key and a few
rows each, analyzed). Measured in the same run, median of ``--repeat``:

- dbpulse's ``tables`` collector: ``fetch`` (its two catalog queries, wall time on the
  client, so transfer included) and the pure ``build`` (ranking, selection, families),
  and the series it exports at its defaults;
- the statement postgres_exporter's current ``stat_user_tables`` collector runs (the view
  with ``pg_table_size``/``pg_indexes_size`` per table) plus its ``statio_user_tables``
  one, fetched to the client the same way, and the series they would export (29 per
  table, unbudgeted).

    python benchmarks/bench_tables.py [--tables 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "exporter")]

import psycopg  # noqa: E402 - after the path tweak
from psycopg.rows import dict_row  # noqa: E402

from dbpulse.localpg import LocalPostgres  # noqa: E402
from dbpulse.sidecar.base import Context  # noqa: E402
from dbpulse.sidecar.collectors.tables import TablesCollector  # noqa: E402

# What postgres_exporter's stat_user_tables and statio_user_tables collectors select.
PGEXP_TABLES = """
SELECT current_database() datname, schemaname, relname, seq_scan, seq_tup_read, idx_scan,
       idx_tup_fetch, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_live_tup, n_dead_tup,
       n_mod_since_analyze, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze,
       vacuum_count, autovacuum_count, analyze_count, autoanalyze_count,
       pg_indexes_size(relid) AS indexes_size, pg_table_size(relid) AS table_size
FROM pg_stat_user_tables
"""
PGEXP_STATIO = """
SELECT current_database() datname, schemaname, relname, heap_blks_read, heap_blks_hit,
       idx_blks_read, idx_blks_hit, toast_blks_read, toast_blks_hit, tidx_blks_read,
       tidx_blks_hit
FROM pg_statio_user_tables
"""
PGEXP_SERIES_PER_TABLE = 21 + 8


def _populate(dsn: str, tables: int) -> None:
    # Batches: one transaction holding a lock on 10,000 new tables would overflow the
    # lock table (max_locks_per_transaction x max_connections).
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(0, tables, 500):
            with conn.transaction():
                for i in range(start, min(tables, start + 500)):
                    conn.execute(f"CREATE TABLE t{i} (id int PRIMARY KEY, v text)")
                    conn.execute(f"INSERT INTO t{i} SELECT g, 'x' FROM generate_series(1, 5) g")
        conn.execute("ANALYZE")


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="do not update results/")
    args = parser.parse_args()
    collector = TablesCollector()
    with LocalPostgres() as pg:
        started = time.perf_counter()
        _populate(pg.dsn, args.tables)
        setup = time.perf_counter() - started
        fetch, build, pgexp = [], [], []
        series = 0
        with psycopg.connect(pg.dsn, autocommit=True, row_factory=dict_row) as conn:
            version = conn.info.server_version
            for _ in range(args.repeat):
                ctx = Context("bench", version, time.time())
                t0 = time.perf_counter()
                rows = collector.fetch(conn, ctx, None)
                t1 = time.perf_counter()
                result = collector.build(rows, ctx, None)
                t2 = time.perf_counter()
                fetch.append(t1 - t0)
                build.append(t2 - t1)
                series = sum(len(f.samples) for f in result.families)
                t3 = time.perf_counter()
                conn.execute(PGEXP_TABLES).fetchall()
                conn.execute(PGEXP_STATIO).fetchall()
                pgexp.append(time.perf_counter() - t3)
    result_line = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.system()}",
        "postgresql": version,
        "tables": args.tables,
        "setup_seconds": round(setup, 1),
        "dbpulse_fetch_ms": _median_ms(fetch),
        "dbpulse_build_ms": _median_ms(build),
        "dbpulse_series": series,
        "postgres_exporter_queries_ms": _median_ms(pgexp),
        "postgres_exporter_series": PGEXP_SERIES_PER_TABLE * args.tables,
    }
    lines = [f"| {k} | {v} |" for k, v in result_line.items()]
    report = "| measure | value |\n|---|---|\n" + "\n".join(lines) + "\n"
    print(report)
    if not args.no_write:
        out = HERE / "results" / "tables.md"
        out.write_text(
            "# bench_tables.py\n\n`python benchmarks/bench_tables.py "
            f"--tables {args.tables} --repeat {args.repeat}`\n\n{report}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
