"""A clock the test moves by hand, so that measured durations are exact, not wall time."""

from __future__ import annotations

import threading
from collections import Counter


class ManualClock:
    """Stands in for ``perf_counter``: time moves only on ``advance``; it notes who read it.

    Reads are counted per thread so a test can wait until a thread has taken its start
    time before moving the clock (``read_by``), instead of sleeping and hoping.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()
        self._reads: Counter[int | None] = Counter()

    def __call__(self) -> float:
        with self._lock:
            self._reads[threading.get_ident()] += 1
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def read_by(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` has read the clock at least once."""
        with self._lock:
            return self._reads[thread.ident] > 0
