"""The registry of collectors: one module per catalog view, looked up by name.

Adding a collector is one module (``fetch`` + pure ``build``, see ``sidecar/base.py``),
one line in ``FACTORIES`` (and its name in ``settings.COLLECTOR_NAMES``, which gives it
interval/timeout/stale_after settings), and its tests. ``TRACING`` collectors feed
sidecar spans only: the runtime adds them when tracing is enabled, on the schedule of
the collector named beside them.
"""

from __future__ import annotations

from collections.abc import Callable

from dbpulse.settings import COLLECTOR_NAMES, Settings
from dbpulse.sidecar.base import Collector
from dbpulse.sidecar.collectors import (
    activity,
    archiver,
    bgwriter,
    database,
    locks,
    migrations,
    pg_settings,
    progress,
    regressions,
    replication,
    replication_slots,
    roles,
    server,
    slow_queries,
    stat_io,
    statements,
    tables,
    wal,
)

Factory = Callable[[Settings], Collector]

FACTORIES: dict[str, Factory] = {
    "activity": activity.create,
    "statements": statements.create,
    "locks": locks.create,
    "progress": progress.create,
    "database": database.create,
    "migrations": migrations.create,
    "replication": replication.create,
    "replication_slots": replication_slots.create,
    "bgwriter": bgwriter.create,
    "archiver": archiver.create,
    "wal": wal.create,
    "settings": pg_settings.create,
    "server": server.create,
    "roles": roles.create,
    "regressions": regressions.create,
    "tables": tables.create,
    "stat_io": stat_io.create,
}
# name -> (factory, the collector whose settings schedule it)
TRACING: dict[str, tuple[Factory, str]] = {
    "slow_queries": (slow_queries.create, "activity"),
}

# The settings and the registry must agree; a gap either way is a packaging bug.
if set(FACTORIES) != set(COLLECTOR_NAMES):  # pragma: no cover - checked at import
    raise RuntimeError(
        f"collector registry {sorted(FACTORIES)} != settings {sorted(COLLECTOR_NAMES)}"
    )


def create_enabled(settings: Settings, *, traced: bool | None = None) -> dict[str, Collector]:
    """Every collector the settings enable, in a stable order; with ``traced`` (default:
    telemetry enabled) the tracing collectors too, which only a traced target reads."""
    enabled = {
        name: FACTORIES[name](settings)
        for name, config in settings.collectors.items()
        if config.enabled
    }
    if settings.telemetry.enabled if traced is None else traced:
        enabled.update({name: factory(settings) for name, (factory, _) in TRACING.items()})
    return enabled


def settings_name(name: str) -> str:
    """The collector whose settings (interval, timeout, stale_after) ``name`` runs under."""
    return TRACING[name][1] if name in TRACING else name


def create(name: str, settings: Settings) -> Collector:
    """One collector by name (discovery makes one per database for per-database views)."""
    return FACTORIES[name](settings)
