"""Transaction duration: BEGIN to the outermost COMMIT or ROLLBACK.

Only the engine's ``begin``/``commit``/``rollback`` events are used; SAVEPOINT, RELEASE
and ROLLBACK TO SAVEPOINT have events of their own, so a nested transaction can never end
the measurement of the transaction around it.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from exporter.inprocess.guard import HookGuard
from exporter.inprocess.metrics import MetricSet

__all__ = ["TransactionHooks"]

_T0 = "_dbpulse_tx_t0"


class TransactionHooks:
    """``begin``, ``commit`` and ``rollback`` listeners for one engine."""

    def __init__(self, pool_name: str, metrics: MetricSet, guard: HookGuard) -> None:
        self._guard = guard
        self._commit = metrics.transaction_duration.labels(pool_name, "commit")
        self._rollback = metrics.transaction_duration.labels(pool_name, "rollback")

    def on_begin(self, conn: Any) -> None:
        try:
            conn.__dict__[_T0] = perf_counter()
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._guard.failed("begin", exc)

    def _end(self, conn: Any, child: Any, hook: str) -> None:
        try:
            t0 = conn.__dict__.pop(_T0, None)
            if t0 is not None:  # None: began before instrument(), or already ended
                child.observe(perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._guard.failed(hook, exc)

    def on_commit(self, conn: Any) -> None:
        self._end(conn, self._commit, "commit")

    def on_rollback(self, conn: Any) -> None:
        self._end(conn, self._rollback, "rollback")
