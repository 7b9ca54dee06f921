"""Custom SQL probes: a named read-only query whose numeric columns become gauges."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from dbpulse.settings.base import MIN_INTERVAL, MIN_TIMEOUT, Strict, floor

__all__ = ["ProbeSettings"]

_PROBE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class ProbeSettings(Strict):
    """A named read-only SQL query whose numeric columns become gauges."""

    name: str = Field(description="probe name: lower case, digits and _; job probe:<name>")
    sql: str = Field(min_length=1, description="one SELECT; runs in a read-only transaction")
    interval: float | None = Field(
        default=None, gt=0, le=86400, description="seconds between runs; default: interval"
    )
    timeout: float = Field(default=5.0, gt=0, le=600, description="statement_timeout, seconds")
    stale_after: float | None = Field(
        default=None, gt=0, description="drop its series when older; default 3 x interval"
    )
    labels: list[str] = Field(
        default_factory=list, description="result columns used as labels, not values"
    )
    metric: str | None = Field(
        default=None, description="metric name prefix; default dbpulse_probe_<name>"
    )
    help: str = Field(default="", description="HELP text of the gauges")
    max_rows: int = Field(default=100, ge=1, le=10000, description="rows read (series bound)")
    remaining_column: str | None = Field(
        default=None, description="column counting work left (watch-migration ends at 0)"
    )
    total_column: str | None = Field(
        default=None, description="column with the total amount of work, for a progress bar"
    )

    _check_min_interval = floor(MIN_INTERVAL, "interval")

    _check_min_timeout = floor(MIN_TIMEOUT, "timeout")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _PROBE_NAME.match(value):
            raise ValueError("must start with a-z and hold only a-z, 0-9 and _ (max 63)")
        return value

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, value: str | None) -> str | None:
        if value is not None and not _METRIC_NAME.match(value):
            raise ValueError("must be a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
        return value

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _LABEL_NAME.match(name) or name.startswith("__")]
        if bad:
            raise ValueError(f"not usable as Prometheus label names: {', '.join(bad)}")
        if len(set(value)) != len(value):
            raise ValueError("label columns must be distinct")
        return value

    def metric_prefix(self) -> str:
        return self.metric or f"dbpulse_probe_{self.name}"
