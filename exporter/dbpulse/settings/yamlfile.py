"""The YAML config file as a settings source: pydantic-settings' own, read once.

``YamlConfigSettingsSource`` skips a missing file and lets a YAML error or a top level
that is not a mapping escape as a bare exception; dbpulse instead names the file and the
line in a ConfigError, so ``_read_file`` (the source's one reading hook) is
:func:`read_yaml`. The path comes from ``load_settings`` through a context variable: a
``BaseSettings`` has no per-instance way to pass a source its file.
"""

from __future__ import annotations

import contextvars
import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings, YamlConfigSettingsSource

from dbpulse.settings.errors import ConfigError

__all__ = ["MAX_DEPTH", "YamlFileSource", "config_file", "read_yaml", "too_deep", "using_file"]

_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "dbpulse_config_file", default=None
)


def config_file() -> Path | None:
    """The file the settings being built are read from (None: no file)."""
    return _config_file.get()


@contextmanager
def using_file(path: Path | None) -> Iterator[None]:
    """Make ``path`` the config file of the settings built inside the block."""
    token = _config_file.set(path)
    try:
        yield
    finally:
        _config_file.reset(token)


def _unreadable(path: Path, reason: str) -> ConfigError:
    return ConfigError([("", f"cannot read config file: {reason}")], str(path))


# Deeper than any dbpulse setting nests (collectors.statements.x is 3): deeper input is a
# mistake or an attack, and would exhaust Python's recursion limit in PyYAML or pydantic.
MAX_DEPTH = 32


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping: PyYAML keeps the last one
    silently, so the first (perhaps the one being edited) would be ignored."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *base" merges; its keys may be overridden on purpose
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class raises its own error for it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


def _depth(value: object) -> int:
    """How deeply lists and mappings nest in ``value`` (iterative: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


def too_deep(source: str) -> ConfigError:
    return ConfigError([("", f"nested too deeply (more than {MAX_DEPTH} levels)")], source)


def read_yaml(path: Path | Traversable) -> dict[str, Any]:
    """Load a YAML mapping, turning every failure into a ConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _unreadable(Path(str(path)), exc.strerror or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise _unreadable(Path(str(path)), f"not UTF-8 ({exc.reason})") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise too_deep(str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([("", f"{problem}{where}")], str(path)) from exc
    if data is None:
        return {}
    if _depth(data) > MAX_DEPTH:
        raise too_deep(str(path))
    if not isinstance(data, dict):
        raise ConfigError([("", "top level must be a mapping of settings")], str(path))
    bad_keys = [repr(key) for key in data if not isinstance(key, str)]
    if bad_keys:
        raise ConfigError(
            [("", f"setting names must be strings, got {', '.join(bad_keys)}")], str(path)
        )
    return data


def _check_regular_file(path: Path) -> None:
    """Raise what the library would pass over in silence: a missing file, a directory,
    or a pipe (which a second reader would find empty)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _unreadable(path, exc.strerror or str(exc)) from exc
    if stat.S_ISDIR(mode):
        raise _unreadable(path, os.strerror(errno.EISDIR))
    if not stat.S_ISREG(mode):
        raise _unreadable(path, "not a regular file")


class YamlFileSource(YamlConfigSettingsSource):
    """The ``--config`` file: read once, when the source is made (per load)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        _check_regular_file(path)
        super().__init__(settings_cls, yaml_file=path)

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        return read_yaml(file_path)

    def __call__(self) -> dict[str, Any]:
        # The keys exactly as written. The base class matches them case-insensitively,
        # as the environment is matched, so "Interval:" would load and one of "interval:"
        # and "INTERVAL:" would vanish in silence; in every nested section a mis-cased
        # key is an unknown setting, and so it is at the top level too.
        return dict(self.yaml_data)
