"""pg_stat_activity: sessions by state (postgres_exporter's families), detail, headroom.

``pg_stat_activity_count`` and ``pg_stat_activity_max_tx_duration`` are postgres_exporter's
(0.11.1): labels ``datname``, ``state``, ``server``; every backend attached to a database
counts (client backends, autovacuum and parallel workers, the exporter's own session),
in the six states postgres_exporter zero-fills for every database of ``pg_database``.

``pg_stat_activity_detail_count`` says who and what is waiting: the same sessions by
user, application, backend type and wait event (the labels postgres_exporter's later
releases put on ``pg_stat_activity_count``). It has no zero series (a combination exists
only while a session has it) and at most ``detail_max_series`` series: the largest
groups, the rest folded into one ``(other)`` series per database and state, so that a
client setting a new application_name per connection cannot grow it without bound.

The dbpulse-only gauges (longest query, longest idle-in-transaction) describe client
backends other than dbpulse's own. Durations are computed by the server
(``now() - xact_start``), so the exporter's clock never matters; ``now()`` is the start
of the poll's transaction, so a session that began after it would show a tiny negative
age, which is clamped to zero.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

SQL_ACTIVITY = """
SELECT a.datname, a.usename, a.application_name, a.state, a.backend_type,
    a.wait_event_type, a.wait_event, a.pid = pg_backend_pid() AS is_self,
    EXTRACT(EPOCH FROM now() - a.xact_start)::float8 AS xact_age_seconds,
    EXTRACT(EPOCH FROM now() - a.query_start)::float8 AS query_age_seconds,
    EXTRACT(EPOCH FROM now() - a.state_change)::float8 AS state_age_seconds
FROM pg_stat_activity a
"""
SQL_ALL_DATABASES = "SELECT datname FROM pg_database"
# reserved_connections (PostgreSQL 16+) is simply absent on older servers.
SQL_SETTINGS = """
SELECT name, setting::int8 AS value
FROM pg_settings
WHERE name IN ('max_connections', 'superuser_reserved_connections', 'reserved_connections')
"""
CLIENT_BACKEND = "client backend"
_IDLE_IN_TX = ("idle in transaction", "idle in transaction (aborted)")
# postgres_exporter's states, zero-filled for every database.
STATES = ("active", "idle", *_IDLE_IN_TX, "fastpath function call", "disabled")
DETAIL_LABELS = (
    "datname",
    "state",
    "usename",
    "application_name",
    "backend_type",
    "wait_event_type",
    "wait_event",
)
DETAIL_MAX_SERIES = 100
OTHER = "(other)"


@dataclass
class ActivityCollector:
    name: str = "activity"
    detail_max_series: int = DETAIL_MAX_SERIES

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        return {
            "activity": query(conn, SQL_ACTIVITY),
            "all_databases": query(conn, SQL_ALL_DATABASES),
            "settings": query(conn, SQL_SETTINGS),
        }

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult(
            families=build_families(
                rows["activity"],
                rows.get("settings", []),
                [_text(r.get("datname")) for r in rows.get("all_databases", [])],
                server=ctx.server,
                detail_max=self.detail_max_series,
            )
        )


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _age(value: Any) -> float:
    """Seconds from an interval computed by the server; NULL (nothing open) is 0."""
    return max(0.0, float(value)) if value is not None else 0.0


def is_client(row: Row) -> bool:
    return row.get("backend_type") in (None, CLIENT_BACKEND) and not row.get("is_self")


def build_families(
    activity: list[Row],
    settings: list[Row],
    databases: list[str],
    *,
    server: str = "",
    detail_max: int = DETAIL_MAX_SERIES,
) -> list[Metric]:
    datnames = set(databases)
    # postgres_exporter's view: sessions attached to a database of pg_database.
    attached = [r for r in activity if _text(r.get("datname")) in datnames]
    count: dict[tuple[str, str], int] = {}
    max_tx: dict[tuple[str, str], float] = {}
    for datname in datnames:
        for state in STATES:
            count[(datname, state)] = 0
            max_tx[(datname, state)] = 0.0
    detail: dict[tuple[str, ...], int] = defaultdict(int)
    for row in attached:
        key = (_text(row.get("datname")), _text(row.get("state")))
        if key in count:
            count[key] += 1
            max_tx[key] = max(max_tx[key], _age(row.get("xact_age_seconds")))
        detail[tuple(_text(row.get(label)) for label in DETAIL_LABELS)] += 1

    families: list[Metric] = []
    for name, doc, values in (
        (
            "pg_stat_activity_count",
            "sessions attached to the database, by state",
            {k: float(v) for k, v in count.items()},
        ),
        (
            "pg_stat_activity_max_tx_duration",
            "seconds since the oldest open transaction in this state started (0: none)",
            max_tx,
        ),
    ):
        fam = GaugeMetricFamily(name, doc, labels=["datname", "state", "server"])
        for (datname, state), value in sorted(values.items()):
            fam.add_metric([datname, state, server], value)
        families.append(fam)
    families.append(_detail_family(detail, detail_max))

    clients = [row for row in activity if is_client(row)]
    client_dbs = datnames | {_text(row.get("datname")) for row in clients}
    max_query = dict.fromkeys(client_dbs, 0.0)
    idle_max = dict.fromkeys(client_dbs, 0.0)
    for row in clients:
        datname, state = _text(row.get("datname")), _text(row.get("state"))
        if state == "active":
            max_query[datname] = max(max_query[datname], _age(row.get("query_age_seconds")))
        if state in _IDLE_IN_TX:
            idle_max[datname] = max(idle_max[datname], _age(row.get("state_age_seconds")))
    for name, doc, per_db in (
        (
            "pg_stat_activity_max_query_duration_seconds",
            "seconds the longest running active query has been running",
            max_query,
        ),
        (
            "pg_stat_activity_idle_in_transaction_max_seconds",
            "longest time a session has been idle inside an open transaction",
            idle_max,
        ),
    ):
        fam = GaugeMetricFamily(name, doc, labels=["datname"])
        for datname in sorted(per_db):
            fam.add_metric([datname], per_db[datname])
        families.append(fam)

    families.extend(_settings_families(settings, len(clients)))
    return families


def _detail_family(detail: dict[tuple[str, ...], int], limit: int) -> Metric:
    """At most ``limit`` series: all groups, or the largest half (ties broken by labels,
    so the choice is stable) and the rest folded per database and state (or into one
    series when even that is too many). Sums over any label stay exact."""
    ranked = sorted(detail.items(), key=lambda item: (-item[1], item[0]))
    series = dict(ranked)
    if len(ranked) > limit:
        keep = limit // 2
        rest = ranked[keep:]
        pad = [OTHER] * (len(DETAIL_LABELS) - 2)
        folded: dict[tuple[str, ...], int] = defaultdict(int)
        for key, n in rest:
            folded[(key[0], key[1], *pad)] += n
        if keep + len(folded) > limit:
            folded = {(OTHER, OTHER, *pad): sum(n for _, n in rest)}
        series = dict(ranked[:keep]) | folded
    fam = GaugeMetricFamily(
        "pg_stat_activity_detail_count",
        "sessions attached to a database by state, user, application, backend type and "
        f"wait event (at most collectors.activity.detail_max_series series, smaller groups "
        f"folded into {OTHER})",
        labels=list(DETAIL_LABELS),
    )
    for key, n in sorted(series.items()):
        fam.add_metric(list(key), float(n))
    return fam


def _settings_families(settings: list[Row], clients: int) -> list[Metric]:
    """Connection headroom; the settings themselves are the pg_settings collector's."""
    values = {
        str(row["name"]): int(row["value"]) for row in settings if row.get("value") is not None
    }
    families: list[Metric] = []
    if "max_connections" in values:
        usable = (
            values["max_connections"]
            - values.get("superuser_reserved_connections", 0)
            - values.get("reserved_connections", 0)
        )
        if usable > 0:
            fam = GaugeMetricFamily(
                "pg_connections_saturation_ratio",
                "client backends / (max_connections - reserved slots); 1 means new "
                "ordinary connections are refused",
            )
            fam.add_metric([], clients / usable)
            families.append(fam)
    return families


def create(settings: Settings) -> ActivityCollector:
    return ActivityCollector(detail_max_series=settings.collectors.activity.detail_max_series)
