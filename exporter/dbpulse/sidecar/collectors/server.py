"""The server itself: when the postmaster started and which version it runs.

``pg_postmaster_start_time_seconds`` (Unix time; a restart shows as a jump, and
``time() - pg_postmaster_start_time_seconds`` is the uptime; no labels, as in
postgres_exporter's current release) and ``pg_static`` (always 1, the version in its
``short_version`` and ``version`` labels and ``server``, untyped, as in 0.11.1) are
postgres_exporter's. ``short_version`` is spelled as postgres_exporter's semver parse
prints it, always three parts: "15.18.0", "17.0.0" (and "10.23.0" for 10.23), derived
from ``server_version_num`` so a distribution suffix ("15.18 (Debian ...)") never
reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily, UnknownMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

SQL = """
SELECT EXTRACT(EPOCH FROM pg_postmaster_start_time())::float8 AS start_time,
    version() AS version,
    current_setting('server_version_num')::int AS version_num
"""


@dataclass
class ServerCollector:
    name: str = "server"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        return {"server": query(conn, SQL)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult(families=build_families(rows["server"], ctx.server))


def short_version(version_num: int) -> str:
    """server_version_num as major.minor.patch (10+: 150018 -> 15.18.0; 9.6.24 kept)."""
    major, rest = divmod(version_num, 10000)
    if major >= 10:
        return f"{major}.{rest}.0"
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


def build_families(rows: list[Row], server: str) -> list[Metric]:
    if not rows:
        return []
    row = rows[0]
    families: list[Metric] = []
    if row.get("start_time") is not None:
        start = GaugeMetricFamily(
            "pg_postmaster_start_time_seconds", "Time at which postmaster started"
        )
        start.add_metric([], float(row["start_time"]))
        families.append(start)
    if row.get("version_num") is not None:
        static = UnknownMetricFamily(
            "pg_static",
            "Version string as reported by postgres",
            labels=["server", "short_version", "version"],
        )
        version = str(row.get("version") or "")
        static.add_metric([server, short_version(int(row["version_num"])), version], 1.0)
        families.append(static)
    return families


def create(_settings: Settings) -> ServerCollector:
    return ServerCollector()
