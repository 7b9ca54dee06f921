"""Transaction duration: BEGIN to the outermost COMMIT or ROLLBACK.

The dialect's ``do_begin``/``do_commit``/``do_rollback`` are wrapped (not the engine's
``begin``/``commit``/``rollback`` events: any engine-level listener puts every statement
on SQLAlchemy's slower event path). SAVEPOINT, RELEASE and ROLLBACK TO SAVEPOINT go
through other dialect methods, so a nested transaction never ends the measurement of the
one around it. The pool's reset-on-return also calls ``do_rollback``; with no BEGIN
timestamp left on the connection it is not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from dbpulse.inprocess.guard import HookGuard
from dbpulse.inprocess.metrics import MetricSet
from dbpulse.inprocess.patching import Patcher, Switch

__all__ = ["TransactionHooks"]

_T0 = "_dbpulse_tx_t0"


class TransactionHooks:
    """Wrappers for one engine's dialect that time transactions."""

    def __init__(self, pool_name: str, metrics: MetricSet, guard: HookGuard) -> None:
        self._guard = guard
        self._commit = metrics.transaction_duration.labels(pool_name, "commit")
        self._rollback = metrics.transaction_duration.labels(pool_name, "rollback")

    def wrap_dialect(self, dialect: Any, patcher: Patcher) -> None:
        patcher.wrap(dialect, "do_begin", self._make_begin)
        patcher.wrap(dialect, "do_commit", lambda orig, sw: self._make_end(orig, sw, "commit"))
        patcher.wrap(dialect, "do_rollback", lambda orig, sw: self._make_end(orig, sw, "rollback"))

    def _make_begin(self, original: Callable[[Any], None], switch: Switch) -> Callable[[Any], None]:
        guard = self._guard

        def do_begin(dbapi_connection: Any) -> None:
            original(dbapi_connection)
            if switch.on:
                try:
                    # The pool's proxied connection; a bare DBAPI connection (no
                    # __dict__) is never seen here in practice, and is then skipped.
                    attrs = getattr(dbapi_connection, "__dict__", None)
                    if attrs is not None:
                        attrs[_T0] = perf_counter()
                except Exception as exc:  # noqa: BLE001 - hooks never raise into the app
                    guard.failed("begin", exc)

        return do_begin

    def _make_end(
        self, original: Callable[[Any], None], switch: Switch, outcome: str
    ) -> Callable[[Any], None]:
        guard = self._guard
        child = self._commit if outcome == "commit" else self._rollback

        def do_end(dbapi_connection: Any) -> None:
            t0 = None
            if switch.on:
                attrs = getattr(dbapi_connection, "__dict__", None)
                t0 = attrs.pop(_T0, None) if attrs is not None else None
            original(dbapi_connection)
            if t0 is not None:  # None: began before instrument(), or a pool reset
                try:
                    child.observe(perf_counter() - t0)
                except Exception as exc:  # noqa: BLE001 - hooks never raise into the app
                    guard.failed(outcome, exc)

        return do_end
