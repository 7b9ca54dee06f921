"""pg_roles: each role's connection limit, as postgres_exporter's ``roles`` collector has it.

``pg_roles_connection_limit{rolname}`` is ``rolconnlimit``: -1 means no limit. With
``pg_stat_activity_count`` by ``usename`` it shows a role about to be refused. One
series per role; the built-in ``pg_*`` roles are included as postgres_exporter does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

SQL = "SELECT rolname, rolconnlimit FROM pg_roles ORDER BY rolname"


@dataclass
class RolesCollector:
    name: str = "roles"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        return {"roles": query(conn, SQL)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult(families=build_families(rows["roles"]))


def build_families(rows: list[Row]) -> list[Metric]:
    fam = GaugeMetricFamily(
        "pg_roles_connection_limit", "Connection limit set for the role", labels=["rolname"]
    )
    for row in rows:
        if row.get("rolname") is None or row.get("rolconnlimit") is None:
            continue
        fam.add_metric([str(row["rolname"])], float(row["rolconnlimit"]))
    return [fam]


def create(_settings: Settings) -> RolesCollector:
    return RolesCollector()
