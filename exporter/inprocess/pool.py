"""Pool hooks: checkout wait, timeouts, hold time, connection creation, invalidations.

Gauges (idle/used/overflow/max/pending) are read from the pool at scrape time by
``PoolHooks.read``; only what the pool cannot tell afterwards is recorded as it happens.

Three things SQLAlchemy has no event for are caught with instance-attribute wrappers
(``patching.Patcher``, undone by ``uninstrument()``):

- ``pool.connect``: a checkout that times out raises ``sqlalchemy.exc.TimeoutError``
  without calling ``handle_error``, and "callers waiting right now" needs the entry and
  exit of every checkout;
- ``pool.recreate``: ``engine.dispose()`` swaps in a new pool, which gets wrapped too;
- ``dialect.connect``: the time spent opening a DBAPI connection.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable
from time import perf_counter
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import (
    AssertionPool,
    NullPool,
    Pool,
    QueuePool,
    SingletonThreadPool,
    StaticPool,
)

from exporter.inprocess.guard import HookGuard
from exporter.inprocess.metrics import MetricSet, PoolReading
from exporter.inprocess.patching import Patcher, Switch
from exporter.inprocess.scope import _CURRENT, PLUMBING

__all__ = ["PoolHooks"]

_T0 = "_dbpulse_checkout_t0"


class PoolHooks:
    """Listeners and wrappers for one engine's pool (and the pools that replace it)."""

    def __init__(
        self,
        engine: Engine,
        pool_name: str,
        metrics: MetricSet,
        guard: HookGuard,
        patcher: Patcher,
    ) -> None:
        self._engine_ref = weakref.ref(engine)
        self._guard = guard
        self._patcher = patcher
        self._wait = metrics.wait_time.labels(pool_name)
        self._use = metrics.use_time.labels(pool_name)
        self._create = metrics.create_time.labels(pool_name)
        self._timeouts = metrics.timeouts.labels(pool_name)
        self._invalidations = metrics.invalidations.labels(pool_name)
        self._lock = threading.Lock()
        self._pending = 0
        # Checked-out count for pools that do not keep one (NullPool, StaticPool, ...).
        self._checked_out = 0

    # -- event listeners ---------------------------------------------------------------

    def on_checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        try:
            record.__dict__[_T0] = perf_counter()
            with self._lock:
                self._checked_out += 1
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._guard.failed("checkout", exc)

    def _returned(self, record: Any, hook: str) -> None:
        try:
            t0 = record.__dict__.pop(_T0, None)
            with self._lock:
                self._checked_out = max(0, self._checked_out - 1)
            if t0 is not None:  # None: checked out before instrument(), nothing to time
                self._use.observe(perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._guard.failed(hook, exc)

    def on_checkin(self, dbapi_connection: Any, record: Any) -> None:
        self._returned(record, "checkin")

    def on_detach(self, dbapi_connection: Any, record: Any) -> None:
        # A detached connection leaves the pool: its hold time ends here, and the pool
        # no longer counts it (the record goes back to the queue empty).
        self._returned(record, "detach")

    def on_invalidate(self, dbapi_connection: Any, record: Any, exception: Any) -> None:
        try:
            self._invalidations.inc()
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._guard.failed("invalidate", exc)

    # -- wrappers ----------------------------------------------------------------------

    def wrap_pool(self, pool: Pool) -> None:
        """Time checkouts and catch timeouts on ``pool`` and on every pool replacing it."""
        self._patcher.wrap(pool, "connect", self._make_connect)
        self._patcher.wrap(pool, "recreate", self._make_recreate)

    def wrap_dialect(self, dialect: Any) -> None:
        """Time new DBAPI connections (the creator calls ``dialect.connect``)."""
        self._patcher.wrap(dialect, "connect", self._make_create)

    def _make_recreate(self, original: Callable[[], Pool], switch: Switch) -> Callable[[], Pool]:
        def recreate() -> Pool:
            new = original()
            if switch.on:
                try:
                    self.wrap_pool(new)
                except Exception as exc:  # noqa: BLE001 - hooks never raise into the app
                    self._guard.failed("recreate", exc)
            return new

        return recreate

    def _make_connect(self, original: Callable[[], Any], switch: Switch) -> Callable[[], Any]:
        lock = self._lock
        wait = self._wait
        timeouts = self._timeouts

        def connect() -> Any:
            if not switch.on:
                return original()
            with lock:
                self._pending += 1
            token = _CURRENT.set(PLUMBING)
            t0 = perf_counter()
            try:
                return original()
            except sa_exc.TimeoutError:
                timeouts.inc()
                raise
            finally:
                elapsed = perf_counter() - t0
                _CURRENT.reset(token)
                with lock:
                    self._pending -= 1
                wait.observe(elapsed)

        return connect

    def _make_create(self, original: Callable[..., Any], switch: Switch) -> Callable[..., Any]:
        create = self._create

        def connect(*args: Any, **kwargs: Any) -> Any:
            t0 = perf_counter()
            conn = original(*args, **kwargs)
            if switch.on:
                create.observe(perf_counter() - t0)
            return conn

        return connect

    # -- scrape-time reading -----------------------------------------------------------

    def read(self) -> PoolReading | None:  # noqa: PLR0911 - one return per pool class
        """The pool's state now, from the pool's own counters where it keeps them."""
        engine = self._engine_ref()
        if engine is None:
            return None
        pool = engine.pool
        pending = max(0, self._pending)
        if isinstance(pool, QueuePool):  # includes AsyncAdaptedQueuePool
            max_overflow = pool._max_overflow
            size = pool.size()
            return PoolReading(
                idle=pool.checkedin(),
                used=pool.checkedout(),
                max=size + max_overflow if max_overflow >= 0 else math.inf,
                # overflow() starts at -pool_size: negative means "room left", not a count.
                overflow=max(0, pool.overflow()),
                pending=pending,
            )
        used = self._checked_out
        if isinstance(pool, StaticPool):
            has_conn = "connection" in pool.__dict__  # memoized once first created
            used = min(used, 1)
            return PoolReading(
                idle=int(has_conn) - used if has_conn else 0,
                used=used,
                max=1,
                overflow=0,
                pending=pending,
            )
        if isinstance(pool, SingletonThreadPool):
            open_conns = len(pool._all_conns)
            return PoolReading(
                idle=max(0, open_conns - used),
                used=used,
                max=pool.size,
                overflow=0,
                pending=pending,
            )
        if isinstance(pool, AssertionPool):
            return PoolReading(idle=0, used=used, max=1, overflow=0, pending=pending)
        if isinstance(pool, NullPool):
            return PoolReading(idle=0, used=used, max=math.inf, overflow=0, pending=pending)
        return PoolReading(idle=0, used=used, max=math.nan, overflow=0, pending=pending)
