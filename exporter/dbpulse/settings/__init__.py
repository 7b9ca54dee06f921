"""The one settings model: CLI flags, then ``DBPULSE_*`` environment, then a YAML file.

Unknown keys are errors at every level (``extra="forbid"``) so that a typo in a config
file is reported instead of silently falling back to a default.

Modules: ``model`` (``Settings``, source order), ``collectors``, ``probes``, ``targets``,
``telemetry`` (its sections), ``listen`` (``parse_listen``), ``yamlfile`` (the file
source), ``errors`` (``ConfigError``), ``load`` (``load_settings``). Import from here.
"""

from __future__ import annotations

from dbpulse.settings.collectors import (
    COLLECTOR_NAMES,
    CollectorSettings,
    CollectorsSettings,
    MigrationsSettings,
    RegressionsSettings,
    StatementsSettings,
    TablesSettings,
)
from dbpulse.settings.errors import ConfigError
from dbpulse.settings.listen import parse_listen
from dbpulse.settings.load import load_settings
from dbpulse.settings.model import Settings
from dbpulse.settings.probes import ProbeSettings
from dbpulse.settings.targets import DiscoverySettings, TargetSettings
from dbpulse.settings.telemetry import TelemetrySettings
from dbpulse.settings.yamlfile import read_yaml

__all__ = [
    "COLLECTOR_NAMES",
    "CollectorSettings",
    "CollectorsSettings",
    "ConfigError",
    "DiscoverySettings",
    "MigrationsSettings",
    "ProbeSettings",
    "RegressionsSettings",
    "Settings",
    "StatementsSettings",
    "TablesSettings",
    "TargetSettings",
    "TelemetrySettings",
    "load_settings",
    "parse_listen",
    "read_yaml",
]
