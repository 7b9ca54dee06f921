"""Where the watch draws: a rich Live screen on a terminal, changed lines otherwise."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from dbpulse.watch.model import View
from dbpulse.watch.render import plain_lines, rich_view

if TYPE_CHECKING:
    from rich.live import Live


class Screen:
    """A rich Live screen on a terminal; otherwise the lines that changed, time-stamped.

    ``echo`` prints a line above the live part (the migration command's own output);
    one lock keeps the command's reader thread and the display loop from interleaving.
    """

    def __init__(self, out: TextIO, target: str) -> None:
        self.out = out
        self.target = target
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._previous: list[str] = []
        self._live: Live | None = None

    @contextmanager
    def opened(self) -> Iterator[Screen]:
        if not self.out.isatty():
            yield self
            return
        from rich.console import Console
        from rich.live import Live

        with Live(console=Console(file=self.out), refresh_per_second=4, transient=False) as live:
            self._live = live
            try:
                yield self
            finally:
                self._live = None

    def draw(self, view: View, extra: list[str]) -> None:
        with self._lock:
            if self._live is not None:
                self._live.update(rich_view(view, self.target, extra), refresh=True)
                return
            lines = plain_lines(view) + extra
            if lines != self._previous:
                stamp = f"[{view.elapsed:6.1f}s]"
                for line in lines:
                    print(f"{stamp} {line}", file=self.out, flush=True)
                self._previous = lines

    def echo(self, line: str) -> None:
        with self._lock:
            if self._live is not None:
                self._live.console.print(f"| {line}", markup=False, highlight=False)
                return
            stamp = f"[{time.monotonic() - self.started:6.1f}s]"
            print(f"{stamp} | {line}", file=self.out, flush=True)
