"""End to end: Prometheus scrapes the sidecar; table alerts see a table autovacuum skips."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.e2e.prometheus import Prometheus
from tests.integration.collector_helpers import wait_for
from tests.sidecar_process import SidecarProcess

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "dbpulse-rules.yml"

# postgres_exporter's mixin, PostgresHasTooManyDeadTuples, its dbNameFilter matching all.
MIXIN_TOO_MANY_DEAD_TUPLES = """
(sum without(relname) (pg_stat_user_tables_n_dead_tup{datname=~".+"}) > 10000)
/ ((sum without(relname) (pg_stat_user_tables_n_live_tup{datname=~".+"})
    + sum without(relname) (pg_stat_user_tables_n_dead_tup{datname=~".+"})) > 0) >= 0.1
unless on(instance) (pg_replication_is_replica{} == 1)
"""


def test_a_table_autovacuum_skips_is_seen_by_the_alerts(fresh_db: str) -> None:
    """A never-vacuumed table with 12,000 dead rows: DbpulseTableNotVacuumed goes pending
    for it, and the mixin's dead-tuples expression returns its database."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE churn (id int) WITH (autovacuum_enabled = off)")
        conn.execute("INSERT INTO churn SELECT generate_series(1, 20000)")
        conn.execute("ANALYZE churn")
        conn.execute("DELETE FROM churn WHERE id <= 12000")
        conn.execute("CREATE TABLE tidy (id int)")
        conn.execute("INSERT INTO tidy SELECT generate_series(1, 100)")
        conn.execute("VACUUM ANALYZE tidy")
        dbname = conn.info.dbname
    sidecar = SidecarProcess(fresh_db, interval=1)
    prom = None
    try:
        sidecar.wait_for_text(lambda t: 'relname="churn"' in t and "n_dead_tup" in t)
        prom = Prometheus({"sidecar": f"127.0.0.1:{sidecar.port}"}, rule_files=[RULES])

        def pending() -> list[dict[str, str]]:
            answer = prom.query('ALERTS{alertname="DbpulseTableNotVacuumed"}')
            return [r["metric"] for r in answer["data"]["result"]]

        alerts = wait_for(pending, timeout=60, interval=0.5)
        assert {a["relname"] for a in alerts} == {"churn"}
        assert alerts[0]["datname"] == dbname

        def mixin() -> list[dict[str, str]]:
            answer = prom.query(MIXIN_TOO_MANY_DEAD_TUPLES)
            assert answer["status"] == "success", answer
            return [r["metric"] for r in answer["data"]["result"]]

        found = wait_for(mixin, timeout=30, interval=0.5)
        assert [m["datname"] for m in found] == [dbname]
    finally:
        if prom is not None:
            prom.stop()
        sidecar.stop()
