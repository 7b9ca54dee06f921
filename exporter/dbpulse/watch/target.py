"""What the watch follows: the migration command it runs, or backends by name or pid."""

from __future__ import annotations

import argparse
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO


@dataclass
class Target:
    """What the watch follows (see the module docstring)."""

    command: list[str] = field(default_factory=list)
    app: str | None = None
    pids: list[int] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Target:
        command = list(getattr(args, "migration_command", None) or [])
        if command and command[0] == "--":
            command = command[1:]
        app = getattr(args, "application_name", None)
        if command and not app:
            # Unique per watch: other deploys' migrations must not count as this one.
            app = f"dbpulse-migration-{uuid.uuid4().hex[:8]}"
        return cls(command, app, list(getattr(args, "pid", None) or []))

    @property
    def follows(self) -> bool:
        return bool(self.command or self.app or self.pids)


def exit_status(code: int) -> int:
    """A command killed by signal N exits 128+N, as a shell reports it."""
    return 128 - code if code < 0 else code


def forward(stream: IO[bytes], echo: Callable[[str], None]) -> threading.Thread:
    """Copy the command's output, line by line, onto the screen."""

    def copy() -> None:
        for raw in iter(stream.readline, b""):
            echo(raw.decode(errors="replace").rstrip())
        stream.close()

    thread = threading.Thread(target=copy, name="dbpulse-watch-output", daemon=True)
    thread.start()
    return thread
