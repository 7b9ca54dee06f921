"""What dbpulse.sql costs per statement: first sight (lexer) and repeat (cache hit).

The in-process hooks fingerprint a statement once (their own dict, then the module's LRU
caches); this measures that first-sight cost on statements shaped like SQLAlchemy's,
and a cache hit, for the PostgreSQL lexer (pglast) and the simple tokenizer (SQLite).

    python benchmarks/bench_sql.py [--n 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "exporter")]

from dbpulse.sql import fingerprint, normalize, scrub  # noqa: E402 - after the path tweak

STATEMENTS = {
    "short select": "SELECT users.id, users.name FROM users WHERE users.id = %(id_1)s",
    "join + IN list": (
        "SELECT orders.id, orders.total, items.sku FROM orders JOIN items ON items.order_id ="
        " orders.id WHERE orders.user_id IN (%(u_1)s, %(u_2)s, %(u_3)s) AND orders.state ="
        " 'open' ORDER BY orders.created_at DESC LIMIT 50"
    ),
    "utility with literals": "ALTER ROLE app PASSWORD 'secret' /* deploy 42 */",
}


def _per_call(fn: Callable[[int], object], n: int, repeat: int = 5) -> float:
    """Median over ``repeat`` runs of the mean µs per call."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


def _cold(sql: str, dialect: str) -> Callable[[int], object]:
    """A distinct text each call (a trailing comment) so that no cache answers."""

    def call(i: int) -> object:
        return normalize.__wrapped__(f"{sql} -- {i}", dialect)

    return call


def _hit(sql: str, dialect: str) -> Callable[[int], object]:
    def call(_i: int) -> object:
        return fingerprint(sql, dialect)

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    print("| statement | dialect | first sight µs (normalize, uncached) | fingerprint hit µs |")
    print("|---|---|---:|---:|")
    for label, sql in STATEMENTS.items():
        for dialect in ("postgresql", "sqlite"):
            cold = _per_call(_cold(sql, dialect), args.n)
            fingerprint(sql, dialect)
            hit = _per_call(_hit(sql, dialect), args.n * 50)
            print(f"| {label} | {dialect} | {cold:.1f} | {hit:.3f} |")
    cold = _per_call(
        lambda i: scrub.__wrapped__(f"{STATEMENTS['utility with literals']} {i}"), args.n
    )
    print(f"\nscrub() first sight, utility statement: {cold:.1f} µs")


if __name__ == "__main__":
    main()
