"""A hook that fails inside dbpulse must never fail the application's statement."""

from __future__ import annotations

import threading

from dbpulse.inprocess.metrics import MetricSet
from dbpulse.logging import get_logger

__all__ = ["HookGuard"]


class HookGuard:
    """Counts internal hook failures and logs the first one of each hook."""

    def __init__(self, metrics: MetricSet, pool_name: str) -> None:
        self._metrics = metrics
        self._pool_name = pool_name
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def failed(self, hook: str, exc: BaseException) -> None:
        """Record that ``hook`` raised ``exc``; never raises itself."""
        try:
            self._metrics.hook_errors.labels(hook).inc()
            with self._lock:
                first = hook not in self._logged
                self._logged.add(hook)
            if first:
                # Type and a short message only: no traceback locals, which could hold
                # the statement's parameter values.
                get_logger("dbpulse.inprocess", pool_name=self._pool_name).warning(
                    "dbpulse hook failed; the application's statement is unaffected "
                    "(logged once per hook)",
                    hook=hook,
                    error_type=type(exc).__name__,
                    error=str(exc)[:200],
                )
        except Exception:  # noqa: BLE001, S110 - the guard itself must never raise
            pass
