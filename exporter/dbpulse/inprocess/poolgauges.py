"""Pool gauges as stored values, for prometheus_client's multiprocess mode.

In one process the pool gauges are read from the pool at scrape time
(``metrics._PoolCollector``), always exact. With several worker processes the scrape runs
in one process (the gunicorn master, or whichever worker answers) and cannot read the
others' pools, so each worker writes its readings into multiprocess ``Gauge`` files
whenever its pool changes: after every checkout, checkin and detach, on entering and
leaving a blocking wait for a connection (``pool.PoolHooks``), at ``instrument()`` and
in each forked child. A reading and its write happen under one lock, so the last write
follows the last change: the files hold each pool's state as of its latest event,
which is its state now. (After ``engine.dispose()`` they show the old pool until the
next checkout.)

Aggregation across workers (``multiprocess_mode``), without a ``pid`` label:

- ``livesum`` for all four: idle and used connections, overflow and waiting callers are
  per-worker counts of real things (database connections, blocked threads), so the
  service's total is their sum; ``_max`` is each worker's pool capacity, and every worker
  brings its own pool, so the service may open the sum. ``max`` would hide that a
  service with 4 workers of pool 10 can hold 40 connections (what ``max_connections``
  must allow for).
- ``live``: a dead worker's connections are closed by PostgreSQL when its sockets go, so
  they must stop counting: its files are removed by ``mark_process_dead`` (gunicorn's
  ``child_exit``, ``dbpulse.multiprocess.child_exit``) or, for servers without such a
  hook, by the aggregate's own check that the pid still runs
  (``dbpulse.multiprocess.metrics_registry``). A non-live mode would count them forever.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import Gauge

from dbpulse.inprocess.patching import Switch

if TYPE_CHECKING:  # metrics imports this module to build the metric set
    from dbpulse.inprocess.guard import HookGuard
    from dbpulse.inprocess.metrics import PoolReading

__all__ = ["PoolGauges", "published_queue_get", "republish_after_fork", "then_publish"]

_MODE: Final = "livesum"  # see the module docstring


class PoolGauges:
    """The four pool families as multiprocess gauges (``db_client_connection_*``)."""

    def __init__(self) -> None:
        pool = ["pool_name"]
        self.count = Gauge(
            "db_client_connection_count",
            "Connections in the pool by state (idle, used)",
            ["pool_name", "state"],
            registry=None,
            multiprocess_mode=_MODE,
        )
        self.max = Gauge(
            "db_client_connection_max",
            "Most connections the pool may open (pool_size + max_overflow)",
            pool,
            registry=None,
            multiprocess_mode=_MODE,
        )
        self.overflow = Gauge(
            "db_client_connection_overflow",
            "Overflow connections open beyond pool_size (never negative)",
            pool,
            registry=None,
            multiprocess_mode=_MODE,
        )
        self.pending = Gauge(
            "db_client_connection_pending_requests",
            "Callers waiting for a connection right now",
            pool,
            registry=None,
            multiprocess_mode=_MODE,
        )

    def gauges(self) -> list[Gauge]:
        return [self.count, self.max, self.overflow, self.pending]

    def publisher(
        self, pool_name: str, read: Callable[[], PoolReading | None], guard: HookGuard
    ) -> Callable[[], None]:
        """A function writing ``read()`` into the gauges of ``pool_name``; never raises."""
        lock = threading.Lock()
        idle = self.count.labels(pool_name, "idle")
        used = self.count.labels(pool_name, "used")
        maximum = self.max.labels(pool_name)
        overflow = self.overflow.labels(pool_name)
        pending = self.pending.labels(pool_name)

        children = (idle, used, maximum, overflow, pending)
        # Each set is an mmap write under prometheus_client's process-wide lock: write
        # only what changed (a checkout moves idle and used, seldom the other three).
        # A forked child (gunicorn preload_app) inherits this memory but starts files of
        # its own, empty: what its parent wrote does not count as written.
        last: list[float | None] = [None] * len(children)
        writer = [os.getpid()]

        def publish() -> None:
            try:
                with lock:
                    if writer[0] != os.getpid():
                        writer[0] = os.getpid()
                        last[:] = [None] * len(children)
                    reading = read()
                    values = (
                        (0, 0, 0, 0, 0)  # the engine is gone: it holds nothing any more
                        if reading is None
                        else (
                            reading.idle,
                            reading.used,
                            reading.max,
                            reading.overflow,
                            reading.pending,
                        )
                    )
                    for i, value in enumerate(values):
                        if value != last[i]:
                            children[i].set(value)
                            last[i] = value
            except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
                guard.failed("publish", exc)

        return publish

    def zero(self, pool_name: str) -> None:
        """An uninstrumented pool counts nothing (labels cannot be removed in this mode)."""
        self.count.labels(pool_name, "idle").set(0)
        self.count.labels(pool_name, "used").set(0)
        for gauge in (self.max, self.overflow, self.pending):
            gauge.labels(pool_name).set(0)


def published_queue_get(
    original: Callable[..., Any],
    switch: Switch,
    waiting: list[None],
    publish: Callable[[], None],
) -> Callable[..., Any]:
    """A QueuePool queue's ``get`` counting ``waiting`` and publishing around a wait.

    QueuePool calls ``get(block, timeout)`` with ``block`` false whenever it may open an
    overflow connection instead: such a caller never waits, and publishing for it would
    only cost time. A blocking caller is published on entry (it is pending while it
    waits) and on exit (it is not, during the pre-ping that may follow).
    """

    def get(*args: Any, **kwargs: Any) -> Any:
        if not switch.on:
            return original(*args, **kwargs)
        block = args[0] if args else kwargs.get("block", True)
        waiting.append(None)
        if block:
            publish()
        try:
            return original(*args, **kwargs)
        finally:
            waiting.pop()
            if block:
                publish()

    return get


def then_publish(
    fn: Callable[..., Any], publish: Callable[[], None], switch: Switch
) -> Callable[..., Any]:
    """``fn``, then ``publish`` whatever the outcome (a checkout timing out or failing)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            if switch.on:
                publish()

    return wrapper


def republish_after_fork(publish: Callable[[], None], switch: Switch) -> None:
    """Publish again in every forked child (gunicorn ``preload_app``: the engine is made
    and instrumented in the master, whose files ``on_starting`` then removes, and each
    worker must show its own pool before its first checkout). Held weakly: an engine
    gone or uninstrumented publishes nothing."""
    ref = weakref.ref(publish)

    def after_fork() -> None:
        fn = ref()
        if fn is not None and switch.on:
            fn()

    os.register_at_fork(after_in_child=after_fork)
