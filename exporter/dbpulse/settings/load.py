"""``load_settings``: flags, environment and file into Settings, or one ConfigError."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from dbpulse.settings.environ import PREFIX, unknown_variables
from dbpulse.settings.errors import ConfigError, problems_of
from dbpulse.settings.model import Settings
from dbpulse.settings.yamlfile import using_file

__all__ = ["load_settings"]

# pydantic-settings names the field it could not decode, e.g. 'error parsing value for
# field "collectors" from source "EnvSettingsSource"'; the variable is found from it.
_FIELD = re.compile(r'field "([^"]+)"')


def _environment_problem(exc: SettingsError) -> ConfigError:
    """A variable holding something that is not JSON, for a field that needs it."""
    match = _FIELD.search(str(exc))
    field = match.group(1) if match else ""
    names = [n for n in os.environ if n.upper() == f"{PREFIX}{field.upper()}"]
    where = f"environment variable {names[0]}" if names else "an environment variable"
    return ConfigError([(field, f"cannot parse {where}: it must be JSON")])


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build the settings; raise ConfigError (never ValidationError) when they are wrong.

    A file that cannot be read or parsed raises (naming the file) before any value is
    validated: its YAML source is made, and reads the file, first thing in ``Settings()``.
    """
    source = str(config_file) if config_file else None
    unknown = unknown_variables(os.environ, Settings.model_fields)
    if unknown:
        problems = [
            (
                name[len(PREFIX) :].lower(),
                f"unknown setting (from environment variable {name})",
            )
            for name in unknown
        ]
        raise ConfigError(problems)
    overrides = {key: value for key, value in flags.items() if value is not None}
    with using_file(config_file):
        try:
            return Settings(**overrides)
        except ValidationError as exc:
            raise ConfigError(problems_of(exc), source) from exc
        except SettingsError as exc:
            raise _environment_problem(exc) from None
        except RecursionError:
            # The file's depth is checked as it is read: this came from a JSON variable.
            names = [
                n
                for n, v in os.environ.items()
                if n.upper().startswith(PREFIX) and v.lstrip()[:1] in ("[", "{")
            ]
            which = ", ".join(sorted(names)) or f"a {PREFIX}* variable"
            raise ConfigError([("", f"environment {which}: nested too deeply")]) from None
