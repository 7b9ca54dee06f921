"""Series stay budgeted: 2,000 tables across 5 databases and 5,000 statements, defaults on.

A real cluster and a real ``dbpulse sidecar`` process. The target is configured with
discovery (the only way its per-table statistics cover every database); every other
setting is the default. The page Prometheus scrapes for that target (``/probe``) and the
process's own ``/metrics`` (a static ``dsn`` on one of the databases) are counted.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dbpulse.localpg import LocalPostgres
from tests.sidecar_process import SidecarProcess, fetch

DATABASES = [f"app_{i}" for i in range(5)]
TABLES_PER_DATABASE = 400
SERIES_LIMIT = 5000
TABLES_MAX_SERIES = 1200  # collectors.tables.max_series's default
# Each table gets two statement shapes, every other table a third: 5,000 in all.
STATEMENTS = len(DATABASES) * TABLES_PER_DATABASE * 5 // 2


@pytest.fixture(scope="module")
def crowded() -> Iterator[LocalPostgres]:
    """A cluster with 5 databases of 400 tables (one index each) and 5,000 statements."""
    with LocalPostgres() as cluster:
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            for name in DATABASES:
                conn.execute(f"CREATE DATABASE {name}")
        for name in DATABASES:
            with psycopg.connect(cluster.dsn_for(name)) as conn:  # one transaction
                for i in range(TABLES_PER_DATABASE):
                    conn.execute(f"CREATE TABLE t{i} (id int PRIMARY KEY, v int)")
                    conn.execute(f"INSERT INTO t{i} SELECT g, g FROM generate_series(1, 20) g")
            with psycopg.connect(cluster.dsn_for(name), autocommit=True) as conn:
                for i in range(TABLES_PER_DATABASE):
                    conn.execute(f"SELECT v FROM t{i} WHERE id = 1")
                    conn.execute(f"UPDATE t{i} SET v = v + 1 WHERE id = 2")
                    if i % 2 == 0:
                        conn.execute(f"SELECT count(*) FROM t{i}")
        yield cluster


def _count_statements(cluster: LocalPostgres) -> int:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
    assert row is not None
    return int(row[0])


def _series(text: str) -> collections.Counter[str]:
    """Series per family of an exposition body."""
    counts: collections.Counter[str] = collections.Counter()
    for family in text_string_to_metric_families(text):
        counts[family.name] += len(family.samples)
    return counts


def _groups(counts: collections.Counter[str]) -> dict[str, int]:
    """Series per family prefix (pg_stat_user_tables, pg_stat_statements, ...), for the log."""
    grouped: collections.Counter[str] = collections.Counter()
    for name, n in counts.items():
        grouped["_".join(name.split("_")[:3])] += n
    return dict(grouped.most_common())


def test_defaults_keep_a_crowded_server_under_5000_series(
    crowded: LocalPostgres, tmp_path: Path
) -> None:
    """With 2,000 tables in 5 databases and ~5,000 statements, /probe and /metrics stay < 5,000."""
    assert _count_statements(crowded) >= 0.9 * STATEMENTS  # pg_stat_statements.max is 5,000
    config = {
        "dsn": crowded.dsn_for(DATABASES[0]),
        "targets": [
            {"name": "crowded", "dsn": crowded.dsn_for("postgres"), "discovery": True},
        ],
    }
    config_path = tmp_path / "dbpulse.yaml"
    config_path.write_text(yaml.safe_dump(config))
    wanted = [f'collector="tables@{name}"}} 1.0' for name in DATABASES]
    wanted.append('collector="statements"} 1.0')
    sidecar = SidecarProcess(None, interval=None, extra_args=["--config", str(config_path)])
    try:
        probe = sidecar.wait_for_text(
            lambda text: all(w in text for w in wanted), timeout=90, path="/probe?target=crowded"
        )
        status, metrics = fetch(sidecar.url + "/metrics")
        assert status == 200
    finally:
        sidecar.stop()
    probed = _series(probe)
    served = _series(metrics)
    print("probe series:", sum(probed.values()), _groups(probed))
    print("metrics series:", sum(served.values()), _groups(served))
    assert sum(probed.values()) < SERIES_LIMIT
    assert sum(served.values()) < SERIES_LIMIT
    # The budget bit: tables of every database are exported, and most tables are not.
    tables = {
        s.labels["datname"]
        for family in text_string_to_metric_families(probe)
        if family.name == "pg_stat_user_tables_n_live_tup"
        for s in family.samples
    }
    assert set(DATABASES) <= tables
    # The tables collector's families, all databases together, within its max_series.
    per_table = sum(
        n for name, n in probed.items() if name.startswith(("pg_stat_user_", "pg_statio_"))
    )
    assert per_table + probed["pg_table_bloat_bytes"] <= TABLES_MAX_SERIES
    assert probed["pg_stat_user_tables_n_live_tup"] < len(DATABASES) * TABLES_PER_DATABASE / 10
    assert probed["pg_stat_statements_calls"] > 0
