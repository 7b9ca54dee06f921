"""Pool hooks: checkout wait, timeouts, hold time, connection creation, invalidations.

Gauges (idle/used/overflow/max/pending) are read from the pool at scrape time by
``PoolHooks.read``; only what the pool cannot tell afterwards is recorded as it happens.
Multiprocess mode also writes that reading to stored gauges after each change
(``poolgauges``); in one process the wrappers are built without it, as before.

Three things SQLAlchemy has no event for are caught with instance-attribute wrappers
(``patching.Patcher``, undone by ``uninstrument()``):

- ``pool.connect``: a checkout that times out raises ``sqlalchemy.exc.TimeoutError``
  without calling ``handle_error``, and "callers waiting right now" needs the entry and
  exit of every checkout (for a QueuePool, of its queue's ``get``: see ``wrap_pool``);
- ``pool.recreate``: ``engine.dispose()`` swaps in a new pool, which gets wrapped too;
- ``dialect.connect``: the time spent opening a DBAPI connection.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from time import perf_counter
from typing import Any

from opentelemetry import trace
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool, QueuePool

from dbpulse.inprocess import compat
from dbpulse.inprocess.guard import HookGuard
from dbpulse.inprocess.metrics import MetricSet, PoolReading
from dbpulse.inprocess.patching import Patcher, Switch
from dbpulse.inprocess.poolgauges import published_queue_get, republish_after_fork, then_publish
from dbpulse.inprocess.poolreading import read_pool
from dbpulse.inprocess.scope import _CURRENT, PLUMBING

__all__ = ["PoolHooks"]

_T0 = "_dbpulse_checkout_t0"


def _timeout_event(pool_name: str, waited: float) -> None:
    """A checkout that gave up: an event on the current span (the request's), if any."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(
            "db.client.connection.timeout",
            {"db.client.connection.pool.name": pool_name, "dbpulse.wait_seconds": waited},
        )


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
        self._pool_name = pool_name
        self._guard = guard
        self._patcher = patcher
        self._wait = metrics.wait_time.labels(pool_name)
        self._use = metrics.use_time.labels(pool_name)
        self._create = metrics.create_time.labels(pool_name)
        self._timeouts = metrics.timeouts.labels(pool_name)
        self._invalidations = metrics.invalidations.labels(pool_name)
        # list.append and list.pop are atomic under the GIL, so these two lists count
        # "waiting now" and "checked out now" without a lock on the checkout path.
        self._waiting: list[None] = []
        # Checked out through dbpulse's wrapper; read only for pools that keep no count
        # of their own (NullPool, StaticPool, SingletonThreadPool).
        self._out: list[None] = []
        self._listened: list[weakref.ref[Pool]] = []
        gauges = metrics.pool_gauges  # multiprocess mode only: writes the reading to them
        self.publish = gauges.publisher(pool_name, self.read, guard) if gauges else None
        if self.publish is not None:
            republish_after_fork(self.publish, patcher.switch)

    # -- pool event listeners ----------------------------------------------------------

    def _events(self) -> tuple[tuple[str, Callable[..., None]], ...]:
        return (("detach", self.on_detach), ("invalidate", self.on_invalidate))

    def listen(self, pool: Pool) -> None:
        """Add the detach/invalidate listeners to ``pool`` (held weakly: a pool's first-
        connect listener refers to its engine, and dbpulse must not keep engines alive)."""
        for identifier, fn in self._events():
            if not event.contains(pool, identifier, fn):
                event.listen(pool, identifier, fn)
        self._listened.append(weakref.ref(pool))

    def unlisten(self, pool: Pool) -> None:
        for identifier, fn in self._events():
            if event.contains(pool, identifier, fn):
                event.remove(pool, identifier, fn)

    def unlisten_all(self) -> None:
        """Remove the listeners from every pool they were added to that is still alive."""
        for ref in self._listened:
            pool = ref()
            if pool is not None:
                self.unlisten(pool)
        self._listened.clear()

    # -- checkin / detach / invalidate -------------------------------------------------

    def _returned(self, record: Any, hook: str) -> None:
        try:
            t0 = record.__dict__.pop(_T0, None)
            if t0 is None:  # checked out before instrument(), or already returned
                return
            self._use.observe(perf_counter() - t0)
            # Another thread may have emptied it between a check and a pop: suppress.
            with contextlib.suppress(IndexError):
                self._out.pop()
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._guard.failed(hook, exc)

    def on_detach(self, dbapi_connection: Any, record: Any) -> None:
        # A detached connection leaves the pool: its hold time ends here, and the pool
        # no longer counts it (the record goes back to the queue empty).
        self._returned(record, "detach")
        if self.publish is not None:
            self.publish()

    def on_invalidate(self, dbapi_connection: Any, record: Any, exception: Any) -> None:
        try:
            self._invalidations.inc()
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._guard.failed("invalidate", exc)

    # -- wrappers ----------------------------------------------------------------------

    def wrap_pool(self, pool: Pool) -> None:
        """Time checkouts, holds and timeouts on ``pool`` and every pool replacing it.

        Wrappers rather than the pool's checkout/checkin events: a checkout listener
        moves every checkout onto SQLAlchemy's slower retry loop.
        """
        # A QueuePool counts a connection as checked out from the moment its queue hands
        # it over (or overflow is reserved for a new one), well before connect() returns
        # from a pre-ping or a connection opening. So its callers are pending only while
        # inside the queue's get: counted around connect(), a caller in that window would
        # be pending and used at once. Other pools never make a caller wait and are
        # counted as used by our own list once connect() returns.
        queued = isinstance(pool, QueuePool)
        if isinstance(pool, QueuePool):
            self._patcher.wrap(compat.pool_queue(pool), "get", self._make_queue_get)
        self._patcher.wrap(
            pool, "connect", lambda original, switch: self._make_connect(original, switch, queued)
        )
        self._patcher.wrap(pool, compat.POOL_RETURN_CONN, self._make_return)
        self._patcher.wrap(pool, "recreate", self._make_recreate)

    def wrap_dialect(self, dialect: Any) -> None:
        """Time new DBAPI connections (the creator calls ``dialect.connect``)."""
        self._patcher.wrap(dialect, "connect", self._make_create)

    def _make_recreate(self, original: Callable[[], Pool], switch: Switch) -> Callable[[], Pool]:
        def recreate() -> Pool:
            if not switch.on:
                return original()
            old = getattr(original, "__self__", None)
            # recreate() copies the old pool's listeners into the new one, where
            # event.remove() cannot reach them once the old pool is gone: take ours out
            # for the copy, put them back on the old pool (connections still checked
            # out of it), and add them to the new pool in their own right.
            if old is not None:
                self.unlisten(old)
            try:
                new = original()
            finally:
                if old is not None:
                    self.listen(old)
            try:
                self.wrap_pool(new)
                self.listen(new)
            except Exception as exc:  # noqa: BLE001 - hooks never raise into the app
                self._guard.failed("recreate", exc)
            return new

        return recreate

    def _make_queue_get(self, original: Callable[..., Any], switch: Switch) -> Callable[..., Any]:
        waiting = self._waiting
        publish = self.publish
        if publish is not None:
            return published_queue_get(original, switch, waiting, publish)

        def get(*args: Any, **kwargs: Any) -> Any:
            if not switch.on:
                return original(*args, **kwargs)
            waiting.append(None)
            try:
                return original(*args, **kwargs)
            finally:
                waiting.pop()

        return get

    def _make_connect(
        self, original: Callable[[], Any], switch: Switch, queued: bool
    ) -> Callable[[], Any]:
        # queued: the pool's queue wrapper counts the waiting (see wrap_pool).
        waiting = None if queued else self._waiting
        out = self._out
        wait = self._wait
        timeouts = self._timeouts
        guard = self._guard
        pool_name = self._pool_name
        first_record = compat.first_checkout_record

        def connect() -> Any:
            if not switch.on:
                return original()
            if waiting is not None:
                waiting.append(None)
            # Statements the pool runs while checking out (first-connect queries,
            # connect-event SETs) are plumbing, not the application's.
            token = _CURRENT.set(PLUMBING)
            t0 = perf_counter()
            try:
                fairy = original()
            except sa_exc.TimeoutError:
                try:
                    timeouts.inc()
                    _timeout_event(pool_name, perf_counter() - t0)
                except Exception as exc:  # noqa: BLE001 - the app gets its own error
                    guard.failed("checkout", exc)
                raise
            finally:
                now = perf_counter()
                _CURRENT.reset(token)
                if waiting is not None:
                    waiting.pop()
                try:
                    wait.observe(now - t0)
                except Exception as exc:  # noqa: BLE001 - hooks never raise into the app
                    guard.failed("checkout", exc)
            try:
                # None: a re-entrant checkout of a connection this thread already holds
                # (SingletonThreadPool); its hold time started earlier.
                record = first_record(fairy)
                if record is not None:
                    record.__dict__[_T0] = now
                    out.append(None)
            except Exception as exc:  # noqa: BLE001 - hooks never raise into the app
                guard.failed("checkout", exc)
            return fairy

        return connect if self.publish is None else then_publish(connect, self.publish, switch)

    def _make_return(
        self, original: Callable[[Any], None], switch: Switch
    ) -> Callable[[Any], None]:
        returned = self._returned

        def _return_conn(record: Any) -> None:
            if switch.on:
                returned(record, "checkin")
            original(record)

        # Published after the pool took the connection back (or closed an overflow one).
        if self.publish is None:
            return _return_conn
        return then_publish(_return_conn, self.publish, switch)

    def _make_create(self, original: Callable[..., Any], switch: Switch) -> Callable[..., Any]:
        create = self._create
        guard = self._guard

        def connect(*args: Any, **kwargs: Any) -> Any:
            t0 = perf_counter()
            conn = original(*args, **kwargs)
            if switch.on:
                try:
                    create.observe(perf_counter() - t0)
                except Exception as exc:  # noqa: BLE001 - hooks never raise into the app
                    guard.failed("connect", exc)
            return conn

        return connect

    # -- scrape-time reading -----------------------------------------------------------

    def read(self) -> PoolReading | None:
        """The pool's state now, from the pool's own counters where it keeps them."""
        engine = self._engine_ref()
        if engine is None:
            return None
        return read_pool(engine.pool, self._waiting, self._out)
