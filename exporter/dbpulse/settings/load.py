"""``load_settings``: flags, environment and file into Settings, or one ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dbpulse.settings.errors import ConfigError, problems_of
from dbpulse.settings.model import Settings
from dbpulse.settings.yamlfile import using_file

__all__ = ["load_settings"]


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build the settings; raise ConfigError (never ValidationError) when they are wrong.

    A file that cannot be read or parsed raises (naming the file) before any value is
    validated: its YAML source is made, and reads the file, first thing in ``Settings()``.
    """
    overrides = {key: value for key, value in flags.items() if value is not None}
    with using_file(config_file):
        try:
            return Settings(**overrides)
        except ValidationError as exc:
            raise ConfigError(problems_of(exc), str(config_file) if config_file else None) from exc
