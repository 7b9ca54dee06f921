"""A pool's gauges at one instant, from the pool's own counters where it keeps them."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.pool import (
    AssertionPool,
    NullPool,
    Pool,
    QueuePool,
    SingletonThreadPool,
    StaticPool,
)

from dbpulse.inprocess import compat
from dbpulse.inprocess.metrics import PoolReading

__all__ = ["read_pool"]


def read_pool(pool: Pool, waiting: list[Any], out: list[Any]) -> PoolReading:
    """``pool``'s state now; ``waiting``/``out`` are the hooks' counts of callers waiting
    and (for pools that keep no count) connections checked out.

    ``pending`` is read last: a caller is counted as used a moment before it stops being
    counted as waiting, so reading used first cannot catch it in both states unless this
    whole read fits in that moment.
    """
    if isinstance(pool, QueuePool):  # includes AsyncAdaptedQueuePool
        max_overflow = compat.pool_max_overflow(pool)
        size = pool.size()
        idle = pool.checkedin()
        used = pool.checkedout()
        # overflow() starts at -pool_size: negative means "room left", not a count.
        overflow = max(0, pool.overflow())
        return PoolReading(
            idle=idle,
            used=used,
            max=size + max_overflow if max_overflow >= 0 else math.inf,
            overflow=overflow,
            pending=len(waiting),
        )
    used = len(out)
    if isinstance(pool, StaticPool):
        has_conn = compat.static_pool_connected(pool)
        used = min(used, 1)
        return PoolReading(
            idle=int(has_conn) - used if has_conn else 0,
            used=used,
            max=1,
            overflow=0,
            pending=len(waiting),
        )
    if isinstance(pool, SingletonThreadPool):
        open_conns = compat.pool_open_connections(pool)
        return PoolReading(
            idle=max(0, open_conns - used),
            used=used,
            max=pool.size,
            overflow=0,
            pending=len(waiting),
        )
    if isinstance(pool, AssertionPool):
        return PoolReading(idle=0, used=used, max=1, overflow=0, pending=len(waiting))
    if isinstance(pool, NullPool):
        return PoolReading(idle=0, used=used, max=math.inf, overflow=0, pending=len(waiting))
    return PoolReading(idle=0, used=used, max=math.nan, overflow=0, pending=len(waiting))
