"""ConfigError, and the translation of pydantic's ValidationError into its problems."""

from __future__ import annotations

import os

from pydantic import ValidationError

__all__ = ["ConfigError", "problems_of"]


class ConfigError(Exception):
    """Configuration that cannot be used; ``problems`` are ``(field.path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems))

    def lines(self) -> list[str]:
        prefix = f"{self.source}: " if self.source else ""
        return [
            f"{prefix}{path}: {msg}" if path else f"{prefix}{msg}" for path, msg in self.problems
        ]


def problems_of(exc: ValidationError) -> list[tuple[str, str]]:
    """``(dotted.field.path, message)`` for each error, naming the environment variable
    when the bad value came from one."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in err["loc"])
        msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        msg = msg.removeprefix("Value error, ")
        env_name = "DBPULSE_" + "__".join(str(p) for p in err["loc"]).upper()
        if env_name in os.environ:
            # The file may be fine; say where the bad value really came from.
            msg = f"{msg} (from environment variable {env_name})"
        problems.append((path, msg))
    return problems
