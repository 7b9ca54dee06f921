"""The registry of collectors: one module per catalog view, looked up by name."""

from __future__ import annotations

from collections.abc import Callable

from dbpulse.settings import COLLECTOR_NAMES, Settings
from dbpulse.sidecar.base import Collector


def _factories() -> dict[str, Callable[[Settings], Collector]]:
    from dbpulse.sidecar.collectors import (
        activity,
        database,
        locks,
        migrations,
        progress,
        statements,
    )

    return {
        "activity": activity.create,
        "statements": statements.create,
        "locks": locks.create,
        "progress": progress.create,
        "database": database.create,
        "migrations": migrations.create,
    }


def create_enabled(settings: Settings) -> dict[str, Collector]:
    """Instantiate every collector the settings enable, in a stable order."""
    factories = _factories()
    missing = set(COLLECTOR_NAMES) - set(factories)
    if missing:  # the settings and the registry must agree; a gap is a packaging bug
        raise RuntimeError(f"collectors without a module: {sorted(missing)}")
    return {
        name: factories[name](settings)
        for name, config in settings.collectors.items()
        if config.enabled
    }


def create(name: str, settings: Settings) -> Collector:
    """One collector by name (discovery makes one per database for per-database views)."""
    return _factories()[name](settings)
