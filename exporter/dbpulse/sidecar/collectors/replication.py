"""Streaming replication: this server's role and replay lag, and its standbys' byte lags.

The role part follows postgres_exporter's ``replication`` collector exactly, so its
mixin alerts work unchanged: ``pg_replication_is_replica`` (1 on a standby),
``pg_replication_lag_seconds`` (0 on a primary, and 0 on a standby that has replayed
everything it received: an idle primary sends nothing, and "seconds since the last
replayed transaction" would otherwise grow forever) and
``pg_replication_last_replay_seconds`` (that raw age; 0 when nothing was replayed yet,
as ``GREATEST(0, NULL)`` is 0 in postgres_exporter's query).

The standby part is ``pg_stat_replication`` on a primary (or a cascading standby), under
postgres_exporter's names and labels (``application_name``, ``client_addr``, ``state``,
``slot_name`` and 0.11.1's ``server``): the server's WAL position and each standby's
replay lag in bytes. dbpulse adds the server-measured ``write_lag``, ``flush_lag`` and
``replay_lag`` intervals (what postgres_exporter users asked for in its issues #385 and
#1007) and ``reply_time`` (PostgreSQL 12+), which postgres_exporter 0.11.1 exported
untyped. Two walsenders with identical labels (same host and application, no slot)
would make duplicate series; the one lagging most is kept.

``client_addr`` is spelled as postgres_exporter 0.11.1 printed the inet ("10.0.0.2"),
not as its 0.20 ``client_addr::text`` does ("10.0.0.2/32"). ``slot_name`` is the slot the
walsender uses (0.20's join on ``active_pid``); 0.11.1 put the walsender's pid there.

On a standby ``pg_current_wal_lsn()`` raises, so every LSN expression branches on
``pg_is_in_recovery()`` and uses the last received LSN there, as postgres_exporter does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily, UnknownMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

SQL_ROLE = """
SELECT pg_is_in_recovery() AS is_replica,
    CASE
        WHEN NOT pg_is_in_recovery() THEN 0
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
        ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()))
    END::float8 AS lag_seconds,
    GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()))::float8
        AS last_replay_seconds
"""

_HERE = """CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
    ELSE pg_current_wal_lsn() END"""
_STANDBYS = f"""
SELECT r.pid, r.application_name, host(r.client_addr) AS client_addr, r.state,
    s.slot_name,
    pg_wal_lsn_diff({_HERE}, '0/0')::float8 AS current_wal_lsn_bytes,
    pg_wal_lsn_diff({_HERE}, r.replay_lsn)::float8 AS wal_lsn_diff,
    EXTRACT(EPOCH FROM r.write_lag)::float8 AS write_lag_seconds,
    EXTRACT(EPOCH FROM r.flush_lag)::float8 AS flush_lag_seconds,
    EXTRACT(EPOCH FROM r.replay_lag)::float8 AS replay_lag_seconds,
    {{reply_time}} AS reply_time
FROM pg_stat_replication r
LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid
ORDER BY r.pid
"""
# PostgreSQL 12 added reply_time (the standby's last status message).
# Whole seconds, as postgres_exporter 0.11.1 printed it (Go's Time.Unix()).
SQL_STANDBYS_V12 = _STANDBYS.format(reply_time="floor(EXTRACT(EPOCH FROM r.reply_time))::float8")
SQL_STANDBYS_OLD = _STANDBYS.format(reply_time="NULL::float8")

STANDBY_LABELS = ["application_name", "client_addr", "state", "slot_name"]
LABELS = [*STANDBY_LABELS, "server"]
# (column, family, help, scale); the byte lags are postgres_exporter's.
_STANDBY_GAUGES: tuple[tuple[str, str, str], ...] = (
    (
        "current_wal_lsn_bytes",
        "pg_stat_replication_pg_current_wal_lsn_bytes",
        "WAL position in bytes",
    ),
    (
        "wal_lsn_diff",
        "pg_stat_replication_pg_wal_lsn_diff",
        "Lag in bytes between master and slave",
    ),
    (
        "write_lag_seconds",
        "pg_stat_replication_write_lag_seconds",
        "seconds between flushing WAL locally and the standby reporting it written "
        "(NULL, so absent, once the standby has caught up and is idle)",
    ),
    (
        "flush_lag_seconds",
        "pg_stat_replication_flush_lag_seconds",
        "seconds between flushing WAL locally and the standby reporting it flushed",
    ),
    (
        "replay_lag_seconds",
        "pg_stat_replication_replay_lag_seconds",
        "seconds between flushing WAL locally and the standby reporting it replayed",
    ),
)


@dataclass
class ReplicationCollector:
    name: str = "replication"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        sql = SQL_STANDBYS_V12 if ctx.server_version_num >= 120000 else SQL_STANDBYS_OLD
        return {"role": query(conn, SQL_ROLE), "standbys": query(conn, sql)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult(families=build_families(rows["role"], rows["standbys"], ctx.server))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def build_families(role: list[Row], standbys: list[Row], server: str) -> list[Metric]:
    families: list[Metric] = []
    if role:
        row = role[0]
        for name, doc, column in (
            (
                "pg_replication_lag_seconds",
                "Replication lag behind master in seconds",
                "lag_seconds",
            ),
            ("pg_replication_is_replica", "Indicates if the server is a replica", "is_replica"),
            (
                "pg_replication_last_replay_seconds",
                "Age of last replay in seconds",
                "last_replay_seconds",
            ),
        ):
            fam = GaugeMetricFamily(name, doc)
            fam.add_metric([], _float(row.get(column)) or 0.0)
            families.append(fam)
    families.extend(_standby_families(standbys, server))
    return families


def _label_values(row: Row) -> tuple[str, ...]:
    return tuple("" if row.get(k) is None else str(row[k]) for k in STANDBY_LABELS)


def _worst_per_labels(standbys: list[Row]) -> dict[tuple[str, ...], Row]:
    """One row per label set: the one with the largest byte lag (NULL counts as least)."""
    chosen: dict[tuple[str, ...], Row] = {}

    def lag(row: Row) -> float:
        return _float(row.get("wal_lsn_diff")) or float("-inf")

    for row in standbys:
        key = _label_values(row)
        if key not in chosen or lag(row) > lag(chosen[key]):
            chosen[key] = row
    return chosen


def _standby_families(standbys: list[Row], server: str) -> list[Metric]:
    chosen = sorted(_worst_per_labels(standbys).items())
    families: list[Metric] = []
    for column, name, doc in _STANDBY_GAUGES:
        gauge = GaugeMetricFamily(name, doc, labels=LABELS)
        for labels, row in chosen:
            value = _float(row.get(column))
            if value is not None:
                gauge.add_metric([*labels, server], value)
        families.append(gauge)
    # postgres_exporter 0.11.1 exported reply_time from its catch-all, untyped.
    reply = UnknownMetricFamily(
        "pg_stat_replication_reply_time",
        "Unix time of the standby's last status message (PostgreSQL 12+)",
        labels=LABELS,
    )
    for labels, row in chosen:
        value = _float(row.get("reply_time"))
        if value is not None:
            reply.add_metric([*labels, server], value)
    families.append(reply)
    return families


def create(_settings: Settings) -> ReplicationCollector:
    return ReplicationCollector()
