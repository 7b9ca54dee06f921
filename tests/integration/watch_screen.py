"""The watch's output as the tests see it: kept, and waited on instead of slept on."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable


class Screen(io.StringIO):
    """Stands in for stdout: keeps what the watch printed, lets tests act on what it shows.

    ``when`` runs an action (on the writing thread, so before the watch's next poll) once
    a needle has been printed; ``wait_until`` blocks another thread until the text
    satisfies a predicate. Both follow the screen, not the clock.
    """

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def when(self, needle: str, action: Callable[[], None]) -> None:
        self._actions.append((needle, action))

    def write(self, s: str) -> int:
        with self._changed:
            written = super().write(s)
            text = self.getvalue()
            self._changed.notify_all()
        for item in [a for a in self._actions if a[0] in text]:
            self._actions.remove(item)
            item[1]()
        return written

    def isatty(self) -> bool:
        return False  # the plain, line-by-line output

    def wait_until(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> bool:
        """Whether the text satisfied ``predicate`` within ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.getvalue()), timeout)
