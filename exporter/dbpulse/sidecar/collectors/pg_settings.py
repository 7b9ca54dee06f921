"""pg_settings: every numeric server setting as ``pg_settings_<name>``, postgres_exporter's way.

postgres_exporter's rules, kept exactly so dashboards and alerts carry over:

- only ``bool``, ``integer`` and ``real`` settings (enums and strings are not numbers);
- a bool is 1 when ``on``, else 0;
- dots and dashes in the name become underscores (``pg_stat_statements.max`` ->
  ``pg_settings_pg_stat_statements_max``);
- a time unit (``ms``, ``s``, ``min``, ``h``, ``d``) is converted to seconds and the name
  gets ``_seconds``; a size unit (``B``, ``kB``, ``8kB``, ``MB``, ``16MB`` ...) to bytes
  with ``_bytes``; the help then ends in ``[Units converted to seconds.]`` / ``bytes``;
- ``-1`` ("disabled"/"use the default") is kept as -1, never scaled;
- every family carries postgres_exporter's ``server`` label (host:port).

A setting whose unit is not one of those is skipped with a notice rather than exported
under a wrong name (postgres_exporter panics there). Settings change rarely, so the
collector polls every 60 s by default.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context, Row, Rows, query

# The poll's own transaction sets statement_timeout, lock_timeout and
# transaction_read_only (SET LOCAL, source 'session'): for those, reset_val is what
# every other session gets. Elsewhere ``setting`` is read as postgres_exporter reads it
# (it parses the text, so the octal "0700" of data_directory_mode is 700 there too,
# where reset_val would say 448).
SQL = """
SELECT name, CASE WHEN source = 'session' THEN reset_val ELSE setting END AS setting,
    COALESCE(unit, '') AS unit, short_desc, vartype
FROM pg_settings
WHERE vartype IN ('bool', 'integer', 'real')
ORDER BY name
"""

# How the README's metric table lists these families (one row, not ~250).
DOC_ROW = (
    "pg_settings_<setting>",
    "every numeric server setting (bool, integer, real), one gauge each: bools 0/1, "
    "time units converted to seconds (name ends in _seconds), sizes to bytes (_bytes), "
    "dots and dashes in the name as underscores; postgres_exporter's names",
)

_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_BYTES = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
# Size units may carry a block multiplier: 8kB (pages), 16MB (old WAL segments).
_SIZE_UNIT = re.compile(r"^(\d*)(B|kB|MB|GB|TB)$")
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def convert_unit(unit: str) -> tuple[str, float] | None:
    """(name suffix, multiplier) for a pg_settings unit; ``None`` when unknown."""
    if unit == "":
        return "", 1.0
    if unit in _SECONDS:
        return "_seconds", _SECONDS[unit]
    match = _SIZE_UNIT.match(unit)
    if match:
        count = int(match.group(1) or 1)
        return "_bytes", float(count * _BYTES[match.group(2)])
    return None


def metric_name(setting: str, suffix: str) -> str:
    # postgres_exporter replaces dots (and, since 0.17, dashes) with underscores; any
    # other character a metric name cannot hold goes the same way.
    return f"pg_settings_{_NAME_CHARS.sub('_', setting)}{suffix}"


@dataclass(frozen=True)
class Setting:
    name: str
    value: float
    help: str


def convert(row: Row) -> Setting | str:
    """One pg_settings row as a Setting, or the reason it cannot be exported."""
    name = str(row.get("name") or "")
    raw = row.get("setting")
    vartype = row.get("vartype")
    help_text = str(row.get("short_desc") or f"Server setting {name}.")
    if not name or raw is None:
        return f"setting {name!r} has no value"
    if vartype == "bool":
        return Setting(metric_name(name, ""), 1.0 if raw == "on" else 0.0, help_text)
    try:
        value = float(raw)
    except ValueError:
        return f"setting {name} value {raw!r} is not a number"
    if not math.isfinite(value):
        return f"setting {name} value {raw!r} is not a finite number"
    unit = str(row.get("unit") or "")
    converted = convert_unit(unit)
    if converted is None:
        return f"setting {name} has unit {unit!r} that dbpulse does not convert; not exported"
    suffix, scale = converted
    if suffix:
        help_text = f"{help_text} [Units converted to {suffix[1:]}.]"
        if value != -1:
            value *= scale
    return Setting(metric_name(name, suffix), value, help_text)


@dataclass
class SettingsCollector:
    name: str = "settings"

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        return {"settings": query(conn, SQL)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        families, notices = build_families(rows["settings"], ctx.server)
        return BuildResult(families=families, notices=notices)


def build_families(rows: list[Row], server: str) -> tuple[list[Metric], list[str]]:
    families: dict[str, Metric] = {}
    notices: list[str] = []
    for row in rows:
        setting = convert(row)
        if isinstance(setting, str):
            notices.append(setting)
            continue
        # Two settings that differ only in '.' vs '_' would collide: first one wins.
        if setting.name in families:
            notices.append(f"settings {setting.name} collide after renaming; one is exported")
            continue
        fam = GaugeMetricFamily(setting.name, setting.help, labels=["server"])
        fam.add_metric([server], setting.value)
        families[setting.name] = fam
    return list(families.values()), notices


def create(_settings: Settings) -> SettingsCollector:
    return SettingsCollector()
