"""pg_stat_bgwriter and, on PostgreSQL 17+, pg_stat_checkpointer: buffer writes and checkpoints.

PostgreSQL 17 moved the checkpoint columns out of ``pg_stat_bgwriter`` into the new
``pg_stat_checkpointer`` (renamed: ``checkpoints_timed`` -> ``num_timed`` ...) and
dropped ``buffers_backend``/``buffers_backend_fsync`` (now in ``pg_stat_io``); 18 added
``num_done`` and ``slru_written``. Names follow postgres_exporter's ``stat_bgwriter`` and
``stat_checkpointer`` collectors: counters ending in ``_total``, times in milliseconds
as PostgreSQL reports them (not seconds: the names are postgres_exporter's and its
dashboards divide by 1000), and ``stats_reset_total`` as a counter holding the reset's
Unix time (0 when never reset), odd but theirs. A family exists only where its column
does, so a 17+ server has no ``pg_stat_bgwriter_checkpoints_timed_total`` to look
flat; postgres_exporter users asked for the checkpointer on 17 in its issues #1060
and #1219. ``num_done`` and ``slru_written`` (18+) are dbpulse's, named the same way.
``pg_stat_bgwriter_*`` carry the ``server`` label as in postgres_exporter 0.11.1;
``pg_stat_checkpointer_*``, which only its current release has, carry none, as there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

# Whole seconds, as postgres_exporter (Go's Time.Unix()) reports it.
_RESET = "COALESCE(floor(EXTRACT(EPOCH FROM stats_reset)), 0)::float8 AS stats_reset"
SQL_BGWRITER_OLD = f"""
SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time,
    buffers_checkpoint, buffers_clean, maxwritten_clean, buffers_backend,
    buffers_backend_fsync, buffers_alloc, {_RESET}
FROM pg_stat_bgwriter
"""
SQL_BGWRITER_V17 = f"""
SELECT buffers_clean, maxwritten_clean, buffers_alloc, {_RESET}
FROM pg_stat_bgwriter
"""
_CHECKPOINTER = """
SELECT num_timed, num_requested, restartpoints_timed, restartpoints_req, restartpoints_done,
    write_time, sync_time, buffers_written, {v18}{reset}
FROM pg_stat_checkpointer
"""
SQL_CHECKPOINTER_V17 = _CHECKPOINTER.format(v18="", reset=_RESET)
SQL_CHECKPOINTER_V18 = _CHECKPOINTER.format(v18="num_done, slru_written, ", reset=_RESET)

# (column, family name without _total, help)
BGWRITER = (
    (
        "checkpoints_timed",
        "pg_stat_bgwriter_checkpoints_timed",
        "Number of scheduled checkpoints that have been performed",
    ),
    (
        "checkpoints_req",
        "pg_stat_bgwriter_checkpoints_req",
        "Number of requested checkpoints that have been performed",
    ),
    (
        "checkpoint_write_time",
        "pg_stat_bgwriter_checkpoint_write_time",
        "Total amount of time that has been spent in the portion of checkpoint processing "
        "where files are written to disk, in milliseconds",
    ),
    (
        "checkpoint_sync_time",
        "pg_stat_bgwriter_checkpoint_sync_time",
        "Total amount of time that has been spent in the portion of checkpoint processing "
        "where files are synchronized to disk, in milliseconds",
    ),
    (
        "buffers_checkpoint",
        "pg_stat_bgwriter_buffers_checkpoint",
        "Number of buffers written during checkpoints",
    ),
    (
        "buffers_clean",
        "pg_stat_bgwriter_buffers_clean",
        "Number of buffers written by the background writer",
    ),
    (
        "maxwritten_clean",
        "pg_stat_bgwriter_maxwritten_clean",
        "Number of times the background writer stopped a cleaning scan because it had "
        "written too many buffers",
    ),
    (
        "buffers_backend",
        "pg_stat_bgwriter_buffers_backend",
        "Number of buffers written directly by a backend",
    ),
    (
        "buffers_backend_fsync",
        "pg_stat_bgwriter_buffers_backend_fsync",
        "Number of times a backend had to execute its own fsync call (normally the "
        "background writer handles those even when the backend does its own write)",
    ),
    ("buffers_alloc", "pg_stat_bgwriter_buffers_alloc", "Number of buffers allocated"),
    (
        "stats_reset",
        "pg_stat_bgwriter_stats_reset",
        "Time at which these statistics were last reset",
    ),
)
CHECKPOINTER = (
    (
        "num_timed",
        "pg_stat_checkpointer_num_timed",
        "Number of scheduled checkpoints due to timeout",
    ),
    (
        "num_requested",
        "pg_stat_checkpointer_num_requested",
        "Number of requested checkpoints that have been performed",
    ),
    (
        "num_done",
        "pg_stat_checkpointer_num_done",
        "Number of checkpoints that have been performed (PostgreSQL 18+)",
    ),
    (
        "restartpoints_timed",
        "pg_stat_checkpointer_restartpoints_timed",
        "Number of scheduled restartpoints due to timeout or after a failed attempt to perform it",
    ),
    (
        "restartpoints_req",
        "pg_stat_checkpointer_restartpoints_req",
        "Number of requested restartpoints",
    ),
    (
        "restartpoints_done",
        "pg_stat_checkpointer_restartpoints_done",
        "Number of restartpoints that have been performed",
    ),
    (
        "write_time",
        "pg_stat_checkpointer_write_time",
        "Total amount of time that has been spent in the portion of processing checkpoints "
        "and restartpoints where files are written to disk, in milliseconds",
    ),
    (
        "sync_time",
        "pg_stat_checkpointer_sync_time",
        "Total amount of time that has been spent in the portion of processing checkpoints "
        "and restartpoints where files are synchronized to disk, in milliseconds",
    ),
    (
        "buffers_written",
        "pg_stat_checkpointer_buffers_written",
        "Number of buffers written during checkpoints and restartpoints",
    ),
    (
        "slru_written",
        "pg_stat_checkpointer_slru_written",
        "Number of SLRU buffers written during checkpoints and restartpoints (PostgreSQL 18+)",
    ),
    (
        "stats_reset",
        "pg_stat_checkpointer_stats_reset",
        "Time at which these statistics were last reset",
    ),
)


@dataclass
class BgwriterCollector:
    name: str = "bgwriter"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        version = ctx.server_version_num
        if version < 170000:
            return {"bgwriter": query(conn, SQL_BGWRITER_OLD), "checkpointer": []}
        checkpointer = SQL_CHECKPOINTER_V18 if version >= 180000 else SQL_CHECKPOINTER_V17
        return {
            "bgwriter": query(conn, SQL_BGWRITER_V17),
            "checkpointer": query(conn, checkpointer),
        }

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult(
            families=build_families(rows["bgwriter"], rows.get("checkpointer", []), ctx.server)
        )


def _counters(
    rows: list[Row], spec: tuple[tuple[str, str, str], ...], labels: dict[str, str]
) -> list[Metric]:
    if not rows:
        return []
    row = rows[0]
    families: list[Metric] = []
    for column, name, doc in spec:
        # A column the server does not have is absent from the row: no family. A NULL
        # in a column it has is 0, as postgres_exporter reports it.
        if column not in row:
            continue
        fam = CounterMetricFamily(name, doc, labels=list(labels))
        fam.add_metric(list(labels.values()), float(row[column] or 0))
        families.append(fam)
    return families


def build_families(bgwriter: list[Row], checkpointer: list[Row], server: str) -> list[Metric]:
    return [
        *_counters(bgwriter, BGWRITER, {"server": server}),
        *_counters(checkpointer, CHECKPOINTER, {}),
    ]


def create(_settings: Settings) -> BgwriterCollector:
    return BgwriterCollector()
