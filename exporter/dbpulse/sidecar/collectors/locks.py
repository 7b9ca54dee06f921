"""pg_locks and pg_blocking_pids(): lock counts and who is blocking whom.

``pg_blocking_pids()`` needs the lock manager's shared state for a moment, so it is only
called for sessions that are actually waiting on a heavyweight lock
(``wait_event_type = 'Lock'``). The blocking tree (``sidecar/blocking.py``; roots =
blockers that are not waiting themselves) is built once here: served as JSON at
``/debug/locks`` and handed to tracing in ``BuildResult.facts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query
from dbpulse.sidecar.blocking import MAX_DEPTH, BlockingTree, build_tree
from dbpulse.sidecar.facts import Facts
from dbpulse.tracecontext import SQL_PATTERN

# postgres_exporter's pg_locks_count: locks on a database's objects (shared-object,
# transaction-ID and virtual-xid locks have no database and are not counted), by
# lowercased mode, every backend's included (the exporter's own too, as postgres_exporter
# counts its own), zero-filled for every database of pg_database and every table-lock
# mode. Who waits on whom is the blocking tree's job, not this count's.
SQL_LOCK_COUNTS = """
SELECT d.datname, lower(l.mode) AS mode, count(*) AS count
FROM pg_locks l
JOIN pg_database d ON d.oid = l.database
GROUP BY 1, 2
"""
SQL_ALL_DATABASES = "SELECT datname FROM pg_database"


def _blocking_sql(*, materialized: str, waitstart: bool, query_id: bool) -> str:
    lock_wait = (
        """, lockwait AS (
    SELECT pid, min(waitstart) AS waitstart FROM pg_locks WHERE NOT granted GROUP BY pid
)"""
        if waitstart
        else ""
    )
    wait_age = (
        "EXTRACT(EPOCH FROM now() - COALESCE(lw.waitstart, a.query_start))::float8"
        if waitstart
        else "EXTRACT(EPOCH FROM now() - a.query_start)::float8"
    )
    join_wait = "LEFT JOIN lockwait lw ON lw.pid = i.pid" if waitstart else ""
    qid = "a.query_id" if query_id else "NULL::int8"
    return f"""
WITH waiting AS {materialized} (
    SELECT pid, pg_blocking_pids(pid) AS blocked_by
    FROM pg_stat_activity
    WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()
), involved AS (
    SELECT pid FROM waiting WHERE cardinality(blocked_by) > 0
    UNION
    SELECT unnest(blocked_by) FROM waiting
){lock_wait}
SELECT i.pid, a.datname, a.usename, a.application_name, a.state, a.backend_type,
    a.wait_event_type, a.wait_event, {qid} AS query_id,
    COALESCE(w.blocked_by, '{{}}'::int4[]) AS blocked_by,
    EXTRACT(EPOCH FROM now() - a.xact_start)::float8 AS xact_age_seconds,
    EXTRACT(EPOCH FROM now() - a.state_change)::float8 AS state_age_seconds,
    CASE WHEN cardinality(w.blocked_by) > 0 THEN {wait_age} END AS wait_seconds,
    substring(a.query from {SQL_PATTERN}) AS traceparent
FROM involved i
LEFT JOIN pg_stat_activity a ON a.pid = i.pid
LEFT JOIN waiting w ON w.pid = i.pid
{join_wait}
ORDER BY i.pid
"""


# PostgreSQL 14 added pg_locks.waitstart and pg_stat_activity.query_id; 12 made CTEs
# inlinable (MATERIALIZED keeps pg_blocking_pids() to the filtered rows).
SQL_BLOCKING_V14 = _blocking_sql(materialized="MATERIALIZED", waitstart=True, query_id=True)
SQL_BLOCKING_V12 = _blocking_sql(materialized="MATERIALIZED", waitstart=False, query_id=False)
SQL_BLOCKING_OLD = _blocking_sql(materialized="", waitstart=False, query_id=False)

LOCK_MODES = (
    "accesssharelock",
    "rowsharelock",
    "rowexclusivelock",
    "shareupdateexclusivelock",
    "sharelock",
    "sharerowexclusivelock",
    "exclusivelock",
    "accessexclusivelock",
    "sireadlock",
)
__all__ = ["MAX_DEPTH", "LocksCollector", "build_families", "build_tree", "create"]


@dataclass
class LocksCollector:
    name: str = "locks"
    # Every connectable database gets zero series (ctx.databases).
    needs_databases: ClassVar[bool] = True

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        if ctx.server_version_num >= 140000:
            blocking = SQL_BLOCKING_V14
        elif ctx.server_version_num >= 120000:
            blocking = SQL_BLOCKING_V12
        else:
            blocking = SQL_BLOCKING_OLD
        return {
            "locks": query(conn, SQL_LOCK_COUNTS),
            "all_databases": query(conn, SQL_ALL_DATABASES),
            "blocking": query(conn, blocking),
        }

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        tree = build_tree(rows["blocking"])
        families = build_families(
            rows["locks"],
            ctx.databases,
            tree,
            all_databases=rows.get("all_databases", []),
            server=ctx.server,
        )
        return BuildResult(
            families=families, debug=tree.as_json(ctx.now), facts=Facts(blocking=tree)
        )


def _text(value: object) -> str:
    return "" if value is None else str(value)


def build_families(
    locks: list[Row],
    databases: Iterable[str],
    tree: BlockingTree,
    *,
    all_databases: Sequence[Row] = (),
    server: str = "",
) -> list[Metric]:
    families: list[Metric] = []
    fam = GaugeMetricFamily(
        "pg_locks_count",
        "locks held or awaited on the database's objects, by lowercased lock mode",
        labels=["datname", "mode", "server"],
    )
    counts: dict[tuple[str, str], float] = {}
    for datname in {_text(row.get("datname")) for row in all_databases}:
        for mode in LOCK_MODES:
            counts[(datname, mode)] = 0.0
    for row in locks:
        key = (_text(row.get("datname")), _text(row.get("mode")).lower())
        counts[key] = counts.get(key, 0.0) + float(row.get("count") or 0)
    for (datname, mode), n in sorted(counts.items()):
        fam.add_metric([datname, mode, server], n)
    families.append(fam)

    datnames = set(databases)
    datnames.update(_text(tree.session(pid).datname) for pid in tree.blockers)
    sessions: dict[str, int] = dict.fromkeys(datnames, 0)
    max_wait: dict[str, float] = dict.fromkeys(datnames, 0.0)
    roots: dict[str, int] = dict.fromkeys(datnames, 0)
    for pid in tree.waiting_pids():
        session = tree.session(pid)
        datname = _text(session.datname)
        sessions[datname] = sessions.get(datname, 0) + 1
        wait = session.wait_seconds or 0.0
        max_wait[datname] = max(max_wait.get(datname, 0.0), wait)
    for pid in tree.roots:
        datname = _text(tree.session(pid).datname)
        roots[datname] = roots.get(datname, 0) + 1
    for name, doc, values in (
        ("pg_blocking_sessions", "sessions waiting for a lock held by another session", sessions),
        ("pg_blocking_max_wait_seconds", "longest current wait for a lock", max_wait),
        (
            "pg_blocking_root_blockers",
            "sessions blocking others without waiting themselves (roots of blocking trees)",
            roots,
        ),
    ):
        gauge = GaugeMetricFamily(name, doc, labels=["datname"])
        for datname in sorted(values):
            gauge.add_metric([datname], float(values[datname]))
        families.append(gauge)
    return families


def create(_settings: Settings) -> LocksCollector:
    return LocksCollector()
