"""Custom probes: a named read-only query whose numeric columns are exported as gauges.

Each probe is its own poller job (``probe:<name>``) with its own interval and
statement_timeout, so one failing or slow probe never holds up another, and
``pg_scrape_collector_success{collector="probe:<name>"}`` tells its state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import ProbeSettings, Settings
from dbpulse.sidecar.base import BuildResult, CollectorError, Context, Row, Rows

_NUMERIC = (int, float, Decimal)


@dataclass(frozen=True)
class ProbeJob:
    """A probe and its schedule, as the daemon hands them to the poller."""

    name: str
    collector: ProbeCollector
    interval: float
    timeout: float
    stale_after: float


@dataclass
class ProbeCollector:
    config: ProbeSettings
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"probe:{self.config.name}"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        with conn.cursor() as cur:
            # binary=True forces the extended query protocol, which accepts exactly one
            # statement: "COMMIT; DELETE ..." cannot step out of the read-only transaction.
            cur.execute(self.config.sql, binary=True)
            if cur.description is None:
                raise CollectorError(f"probe {self.config.name}: the statement returns no rows")
            columns = [col.name for col in cur.description]
            rows = cur.fetchmany(self.config.max_rows + 1)
        return {"columns": [{"name": name} for name in columns], "rows": list(rows)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        columns = [str(col["name"]) for col in rows["columns"]]
        return build_probe(self.config, columns, rows["rows"])


def value_columns(config: ProbeSettings, columns: list[str]) -> list[str]:
    """The result columns exported as values: every column that is not a label."""
    missing = [label for label in config.labels if label not in columns]
    if missing:
        raise CollectorError(
            f"probe {config.name}: label columns not in the result: {', '.join(missing)}"
        )
    values = [col for col in columns if col not in config.labels]
    if not values:
        raise CollectorError(f"probe {config.name}: no value column besides the labels")
    if len(set(columns)) != len(columns):
        raise CollectorError(f"probe {config.name}: result column names must be distinct")
    return values


def numeric(config: ProbeSettings, column: str, value: Any) -> float | None:
    """A cell as a float; None for SQL NULL; CollectorError for anything not a number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, _NUMERIC):
        # Say the type, never the value: a probe may select data the logs must not hold.
        raise CollectorError(
            f"probe {config.name}: column {column!r} is {type(value).__name__}, not a number"
            " (list it under labels: or cast it to a number in the SQL)"
        )
    result = float(value)
    return None if math.isnan(result) else result


def build_probe(config: ProbeSettings, columns: list[str], rows: list[Row]) -> BuildResult:
    """One gauge per value column, one sample per row (pure)."""
    values = value_columns(config, columns)
    notices = []
    if len(rows) > config.max_rows:
        notices.append(
            f"probe {config.name}: more than {config.max_rows} rows, exporting the first"
            f" {config.max_rows} (raise max_rows or aggregate in the SQL)"
        )
        rows = rows[: config.max_rows]
    doc = config.help or f"column {{column}} of probe {config.name}"
    families: dict[str, GaugeMetricFamily] = {
        col: GaugeMetricFamily(
            f"{config.metric_prefix()}_{_metric_suffix(col)}",
            doc.replace("{column}", col),
            labels=list(config.labels),
        )
        for col in values
    }
    seen: set[tuple[str, ...]] = set()
    for row in rows:
        label_values = tuple("" if row[lb] is None else str(row[lb]) for lb in config.labels)
        if label_values in seen:
            raise CollectorError(
                f"probe {config.name}: two rows have the same label values; "
                "add a label column or aggregate"
            )
        seen.add(label_values)
        for col in values:
            value = numeric(config, col, row[col])
            if value is not None:
                families[col].add_metric(list(label_values), value)
    result: list[Metric] = list(families.values())
    debug = {"columns": columns, "rows": len(rows)}
    return BuildResult(families=result, debug=debug, notices=notices)


def _metric_suffix(column: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in column.lower())
    return cleaned or "value"


def create_probes(settings: Settings) -> list[ProbeJob]:
    """The configured probes with their effective schedules."""
    jobs = []
    for probe in settings.probes:
        interval = probe.interval if probe.interval is not None else settings.interval
        stale = probe.stale_after if probe.stale_after is not None else 3 * interval
        collector = ProbeCollector(probe)
        jobs.append(
            ProbeJob(
                name=collector.name,
                collector=collector,
                interval=float(interval),
                timeout=probe.timeout,
                stale_after=float(stale),
            )
        )
    return jobs
