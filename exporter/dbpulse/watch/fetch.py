"""The catalog queries watch-migration runs each refresh (read-only, under timeouts)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg

from dbpulse.errors import first_line
from dbpulse.settings import ProbeSettings
from dbpulse.sidecar.base import CollectorError, Context, query
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.probes import ProbeCollector, value_columns
from dbpulse.watch.model import Build, LockWait, ProbeReading, Row, lock_waits_from_rows

# Builds in this database only: relid::regclass means nothing in another database.
SQL_BUILDS = """
SELECT p.pid, p.relid::regclass::text AS relname, p.index_relid,
       CASE WHEN p.index_relid <> 0 THEN p.index_relid::regclass::text END AS index_relname,
       p.command, p.phase, p.lockers_total, p.lockers_done, p.current_locker_pid,
       p.blocks_total, p.blocks_done, p.tuples_total, p.tuples_done
FROM pg_stat_progress_create_index p
WHERE p.datname = current_database()
ORDER BY p.pid
"""

# One ungranted lock per waiting backend, and who blocks it. pg_locks.waitstart is 14+.
_WAITS = """
SELECT a.pid, a.application_name, left(a.query, 200) AS query,
       pg_blocking_pids(a.pid) AS blocking_pids,
       w.locktype, w.mode, w.relation::regclass::text AS relation,
       extract(epoch FROM now() - {started})::float8 AS wait_seconds
FROM pg_stat_activity a
JOIN LATERAL (
    SELECT l.* FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted LIMIT 1
) w ON true
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
ORDER BY a.pid
"""
SQL_WAITS_V14 = _WAITS.format(started="coalesce(w.waitstart, a.query_start)")
SQL_WAITS_OLD = _WAITS.format(started="a.query_start")

SQL_SESSIONS = """
SELECT pid, state, left(query, 200) AS query FROM pg_stat_activity WHERE pid = ANY(%(pids)s)
"""

# The migration's own backends: by application_name (the command's PGAPPNAME, or the
# one given) or by pid. Times as epoch floats, so steps are timed by the server's clock.
SQL_ACTIVITY = """
SELECT pid, state, query,
       extract(epoch FROM query_start)::float8 AS query_start,
       extract(epoch FROM state_change)::float8 AS state_change,
       extract(epoch FROM now())::float8 AS now
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND (application_name = %(app)s OR pid = ANY(%(pids)s))
ORDER BY pid
"""

SQL_INDEX_VALID = """
SELECT x.indexrelid, x.indisvalid FROM pg_index x WHERE x.indexrelid = ANY(%(oids)s)
"""

POLL_TIMEOUT = 5.0


@dataclass
class Poll:
    builds: list[Build]
    waits: list[LockWait]
    index_valid: dict[int, bool | None]


def poll(conns: ConnectionManager, index_oids: list[int]) -> Poll:
    """Builds, lock waits and the validity of the given indexes (pg_index.indisvalid)."""
    with conns.transaction(POLL_TIMEOUT) as conn:
        builds = [Build.from_row(row) for row in query(conn, SQL_BUILDS)]
        sql = SQL_WAITS_V14 if conns.server_version_num >= 140000 else SQL_WAITS_OLD
        waits = query(conn, sql)
        pids = sorted({int(p) for w in waits for p in (w.get("blocking_pids") or [])})
        sessions = query(conn, SQL_SESSIONS, {"pids": pids}) if pids else []
        valid: dict[int, bool | None] = dict.fromkeys(index_oids)
        if index_oids:
            for row in query(conn, SQL_INDEX_VALID, {"oids": index_oids}):
                valid[int(row["indexrelid"])] = bool(row["indisvalid"])
    return Poll(builds, lock_waits_from_rows(waits, sessions), valid)


def activity(conns: ConnectionManager, app: str | None, pids: list[int]) -> list[Row]:
    """pg_stat_activity rows of the watched backends (empty when nothing is watched)."""
    with conns.transaction(POLL_TIMEOUT) as conn:
        return query(conn, SQL_ACTIVITY, {"app": app or "", "pids": pids})


@dataclass
class ProbeRunner:
    """Runs the configured probes, each no more often than its own interval."""

    probes: list[ProbeSettings]
    last_run: dict[str, float] = field(default_factory=dict)
    last_reading: dict[str, ProbeReading] = field(default_factory=dict)

    def run(self, conns: ConnectionManager, interval: float) -> list[ProbeReading]:
        """Run the probes that are due; return the latest reading of each."""
        for probe in self.probes:
            every = max(interval, probe.interval or 0.0)
            if time.monotonic() - self.last_run.get(probe.name, -1e18) >= every:
                self.last_run[probe.name] = time.monotonic()
                self.last_reading[probe.name] = run_probe(conns, probe)
        return self.latest()

    def latest(self) -> list[ProbeReading]:
        return [self.last_reading[p.name] for p in self.probes if p.name in self.last_reading]

    def next_due(self, interval: float) -> float:
        """Seconds until the next probe is due (0 when one already is)."""
        now = time.monotonic()
        waits = [
            self.last_run.get(p.name, -1e18) + max(interval, p.interval or 0.0) - now
            for p in self.probes
        ]
        return max(0.0, min(waits, default=interval))


def run_probe(conns: ConnectionManager, probe: ProbeSettings) -> ProbeReading:
    collector = ProbeCollector(probe)
    ctx = Context(target="watch", server_version_num=conns.server_version_num, now=time.time())
    try:
        with conns.transaction(probe.timeout) as conn:
            rows = collector.fetch(conn, ctx, None)
        collector.build(rows, ctx, None)  # the same checks (numeric values) as in the sidecar
    except (CollectorError, psycopg.Error) as exc:
        return ProbeReading(probe.name, {}, None, None, error=first_line(exc))
    columns = [str(c["name"]) for c in rows["columns"]]
    values = value_columns(probe, columns)
    for role, column in (("remaining", probe.remaining_column), ("total", probe.total_column)):
        if column is not None and column not in values:
            error = f"{role}_column {column!r} is not a value column of the result"
            return ProbeReading(probe.name, {}, None, None, error=error)
    totals: dict[str, float] = {}
    for row in rows["rows"][: probe.max_rows]:
        for col in values:
            if row[col] is not None:
                totals[col] = totals.get(col, 0.0) + float(row[col])
    remaining = totals.get(probe.remaining_column) if probe.remaining_column else None
    total = totals.get(probe.total_column) if probe.total_column else None
    return ProbeReading(probe.name, totals, remaining, total, at=time.monotonic())
