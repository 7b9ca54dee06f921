"""pg_stat_activity: client sessions by state, the oldest transaction, connection headroom.

Only client backends are described (``backend_type = 'client backend'``): autovacuum,
walsenders and parallel workers have their own views (see the progress collector), and
mixing them in would make "active sessions" mean something else on every server.
dbpulse's own backend is excluded. Durations are computed by the server
(``now() - xact_start``), so the exporter's clock never matters; ``now()`` is the start
of the poll's transaction, so a session that began after it would show a tiny negative
age, which is clamped to zero.
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

_AGES = """
    EXTRACT(EPOCH FROM now() - a.xact_start)::float8 AS xact_age_seconds,
    EXTRACT(EPOCH FROM now() - a.query_start)::float8 AS query_age_seconds,
    EXTRACT(EPOCH FROM now() - a.state_change)::float8 AS state_age_seconds
"""
# PostgreSQL 10 added backend_type (and started listing background processes here).
SQL_V10 = f"""
SELECT a.datname, a.usename, a.application_name, a.state, a.wait_event_type,
    a.backend_type, {_AGES}
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid()
"""
# 9.6 lists client backends only.
SQL_OLD = f"""
SELECT a.datname, a.usename, a.application_name, a.state, a.wait_event_type,
    'client backend'::text AS backend_type, {_AGES}
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid()
"""
# reserved_connections (PostgreSQL 16+) is simply absent on older servers.
SQL_SETTINGS = """
SELECT name, setting::int8 AS value
FROM pg_settings
WHERE name IN ('max_connections', 'superuser_reserved_connections', 'reserved_connections')
"""
CLIENT_BACKEND = "client backend"
_IDLE_IN_TX = ("idle in transaction", "idle in transaction (aborted)")
ZERO_FILL_STATES = ("active", "idle", *_IDLE_IN_TX)


@dataclass
class ActivityCollector:
    name: str = "activity"
    # Every connectable database gets zero series (ctx.databases).
    needs_databases: ClassVar[bool] = True

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        sql = SQL_V10 if ctx.server_version_num >= 100000 else SQL_OLD
        return {"activity": query(conn, sql), "settings": query(conn, SQL_SETTINGS)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult(
            families=build_families(rows["activity"], rows.get("settings", []), ctx.databases)
        )


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _age(value: Any) -> float:
    """Seconds from an interval computed by the server; NULL (nothing open) is 0."""
    return max(0.0, float(value)) if value is not None else 0.0


def is_client(row: Row) -> bool:
    # A NULL backend_type only comes from rows shaped like a pre-10 server's.
    return row.get("backend_type") in (None, CLIENT_BACKEND)


def build_families(
    activity: list[Row], settings: list[Row], databases: Iterable[str]
) -> list[Metric]:
    clients = [row for row in activity if is_client(row)]
    # Every connectable database gets its per-database gauges, 0 when nothing happens,
    # so alerts and graphs see a zero rather than an absent series.
    datnames = set(databases)
    datnames.update(_text(row.get("datname")) for row in clients)

    count: dict[tuple[str, str, str, str, str], int] = defaultdict(int)
    max_tx: dict[tuple[str, str], float] = {}
    # Zeros for the usual states (with empty user/application/wait labels, which sums
    # ignore), so a quiet database has series to graph and alert on.
    for datname in datnames:
        for state in ZERO_FILL_STATES:
            count[(datname, state, "", "", "")] += 0
            max_tx[(datname, state)] = 0.0
    max_query = dict.fromkeys(datnames, 0.0)
    idle_count = dict.fromkeys(datnames, 0)
    idle_max = dict.fromkeys(datnames, 0.0)
    for row in clients:
        datname, state = _text(row.get("datname")), _text(row.get("state"))
        key = (
            datname,
            state,
            _text(row.get("usename")),
            _text(row.get("application_name")),
            _text(row.get("wait_event_type")),
        )
        count[key] += 1
        tx_age = _age(row.get("xact_age_seconds"))
        max_tx[(datname, state)] = max(max_tx.get((datname, state), 0.0), tx_age)
        if state == "active":
            max_query[datname] = max(max_query[datname], _age(row.get("query_age_seconds")))
        if state in _IDLE_IN_TX:
            idle_count[datname] += 1
            idle_max[datname] = max(idle_max[datname], _age(row.get("state_age_seconds")))

    families: list[Metric] = []
    fam = GaugeMetricFamily(
        "pg_stat_activity_count",
        "client backends by database, state, user, application and wait event type",
        labels=["datname", "state", "usename", "application_name", "wait_event_type"],
    )
    for labels, n in sorted(count.items()):
        fam.add_metric(list(labels), float(n))
    families.append(fam)

    fam = GaugeMetricFamily(
        "pg_stat_activity_max_tx_duration",
        "seconds since the oldest open transaction started (0 when none is open)",
        labels=["datname", "state"],
    )
    for (datname, state), seconds in sorted(max_tx.items()):
        fam.add_metric([datname, state], seconds)
    families.append(fam)

    per_db = (
        (
            "pg_stat_activity_max_query_duration_seconds",
            "seconds the longest running active query has been running",
            max_query,
        ),
        (
            "pg_stat_activity_idle_in_transaction_count",
            "sessions idle inside an open transaction (including aborted ones)",
            idle_count,
        ),
        (
            "pg_stat_activity_idle_in_transaction_max_seconds",
            "longest time a session has been idle inside an open transaction",
            idle_max,
        ),
    )
    for name, doc, values in per_db:
        fam = GaugeMetricFamily(name, doc, labels=["datname"])
        for datname in sorted(values):
            fam.add_metric([datname], float(values[datname]))
        families.append(fam)

    families.extend(_settings_families(settings, len(clients)))
    return families


def _settings_families(settings: list[Row], clients: int) -> list[Metric]:
    # The settings themselves are exported by the settings collector (pg_settings_*,
    # every numeric one); here they only size the connection headroom.
    values = {
        str(row["name"]): int(row["value"]) for row in settings if row.get("value") is not None
    }
    if "max_connections" not in values:
        return []
    usable = (
        values["max_connections"]
        - values.get("superuser_reserved_connections", 0)
        - values.get("reserved_connections", 0)
    )
    if usable <= 0:
        return []
    fam = GaugeMetricFamily(
        "pg_connections_saturation_ratio",
        "client backends / (max_connections - reserved slots); 1 means new "
        "ordinary connections are refused",
    )
    fam.add_metric([], clients / usable)
    return [fam]


def create(_settings: Settings) -> ActivityCollector:
    return ActivityCollector()
