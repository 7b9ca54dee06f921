"""Repeated warnings, rate-limited per pattern: one log line per key per interval.

A page with an N+1 reports it on every request (each request is its own unit of work),
and a slow statement is slow every time it runs: logged each time, they drown the
application's log (2,693 N+1 warnings for 2,739 requests, issue 14). Metrics and span
events still count every occurrence; only the log line is limited, and the next one
admitted says how many like it were left out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["WarningLimiter"]

# Distinct patterns remembered; past this the oldest is forgotten (and may log again).
_MAX_KEYS = 2048


class WarningLimiter:
    """Admits one warning per key per ``interval`` seconds and counts the rest."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        # key -> [monotonic time of the last admitted warning, suppressed since then]
        self._seen: dict[Hashable, list[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: Hashable) -> int | None:
        """None to suppress this warning; else how many were suppressed since the last."""
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.interval:
                seen[1] += 1
                return None
            suppressed = 0 if seen is None else int(seen[1])
            if seen is None and len(self._seen) >= _MAX_KEYS:
                del self._seen[next(iter(self._seen))]
            self._seen[key] = [now, 0]
            return suppressed
