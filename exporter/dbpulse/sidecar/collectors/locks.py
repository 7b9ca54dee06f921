"""pg_locks and pg_blocking_pids(): lock counts and who is blocking whom.

``pg_blocking_pids()`` needs the lock manager's shared state for a moment, so it is only
called for sessions that are actually waiting on a heavyweight lock
(``wait_event_type = 'Lock'``). The blocking tree (``sidecar/blocking.py``; roots =
blockers that are not waiting themselves) is built once here: served as JSON at
``/debug/locks`` and handed to tracing in ``BuildResult.facts``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
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

# Locks on shared objects or on transaction IDs have no database; they are attributed
# to the holder's database. Prepared transactions (pid NULL) keep only the lock's own.
SQL_LOCK_COUNTS = """
SELECT COALESCE(d.datname, a.datname, '') AS datname, l.mode, l.granted, count(*) AS count
FROM pg_locks l
LEFT JOIN pg_database d ON d.oid = l.database
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.pid IS DISTINCT FROM pg_backend_pid()
GROUP BY 1, 2, 3
"""


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
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
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
            "blocking": query(conn, blocking),
        }

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        tree = build_tree(rows["blocking"])
        families = build_families(rows["locks"], ctx.databases, tree)
        return BuildResult(
            families=families, debug=tree.as_json(ctx.now), facts=Facts(blocking=tree)
        )


def _text(value: object) -> str:
    return "" if value is None else str(value)


def build_families(locks: list[Row], databases: Iterable[str], tree: BlockingTree) -> list[Metric]:
    families: list[Metric] = []
    fam = GaugeMetricFamily(
        "pg_locks_count",
        "locks held (granted=true) or awaited (granted=false), by database and mode",
        labels=["datname", "mode", "granted"],
    )
    counts: dict[tuple[str, str, str], float] = defaultdict(float)
    # Zeros for the standard modes in every connectable database, so that a quiet
    # database still has series (and "no waiting locks" is a 0, not an absence).
    datnames = set(databases)
    for datname in datnames:
        for mode in LOCK_MODES:
            for granted in ("true", "false"):
                counts[(datname, mode, granted)] += 0.0
    for row in locks:
        granted = "true" if row.get("granted") else "false"
        counts[(_text(row.get("datname")), _text(row.get("mode")), granted)] += float(
            row.get("count") or 0
        )
    for labels, n in sorted(counts.items()):
        fam.add_metric(list(labels), n)
    families.append(fam)

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
