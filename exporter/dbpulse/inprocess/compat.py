"""Every SQLAlchemy internal the in-process hooks rely on, in one place.

SQLAlchemy has no public API for what these read (the pool's overflow limit, whether a
checkout is re-entrant, the ORM's lazy-load marker, the connect arguments) and no event
that does not slow the statement path down, so dbpulse reads private attributes. Each one
is named here, with what it is for. Checked against SQLAlchemy 2.0.0 and 2.1.9: CI runs
the in-process tests on the oldest supported 2.0 and the newest 2.1 (``make
test-sqlalchemy-matrix``); a release that renames one fails there first.

Hot paths take the attribute names (constants, compared and looked up inline as before)
rather than a function per statement; everything else is a small function.

Also relied on, though not private attributes: ``_ConnectionRecord`` and the pool's
DBAPI connection proxy keep a ``__dict__``, where ``pool.py`` and ``transactions.py``
store their start timestamps.
"""

from __future__ import annotations

import inspect
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool, QueuePool, SingletonThreadPool, StaticPool

__all__ = [
    "LAZY_LOADED_FROM",
    "ORM_LOAD_OPTIONS",
    "POOL_RETURN_CONN",
    "connect_args",
    "first_checkout_record",
    "lazy_load_relationship",
    "pool_max_overflow",
    "pool_open_connections",
    "pool_pre_ping",
    "pool_queue",
    "pool_recycle",
    "static_pool_connected",
    "unproxied_engine",
]

# Pool._return_conn(record): every check-in passes through it. Wrapped, like
# Pool.connect, instead of the pool's checkin/checkout events (see PoolHooks.wrap_pool).
POOL_RETURN_CONN = "_return_conn"

# ORM statements carry their loader options under this execution option; a lazy load's
# options name the object it loads from in _lazy_loaded_from. (The public
# ORMExecuteState.lazy_loaded_from raises for non-SELECT statements, and the per-statement
# path cannot afford a try.) Both per statement: callers compare inline.
ORM_LOAD_OPTIONS = "_sa_orm_load_options"
LAZY_LOADED_FROM = "_lazy_loaded_from"


def lazy_load_relationship(context: Any) -> Any | None:
    """The relationship a lazy load's statement loads (a ``RelationshipProperty``), read
    from the DBAPI-level execution context, or None.

    The ORM puts the loader path in the statement's ``_compile_options._current_path``
    (what ``ORMExecuteState.loader_strategy_path`` returns); ``invoked_statement`` is the
    statement as the ORM handed it to the Connection. Read here instead of in a
    ``Session.do_orm_execute`` listener: any such listener makes every ORM statement in
    the process build an ``ORMExecuteState`` and run its pre-execution twice (measured:
    ~14 µs per statement, benchmarks/results/inprocess.md).
    """
    options = getattr(getattr(context, "invoked_statement", None), "_compile_options", None)
    path = getattr(options, "_current_path", None)
    return getattr(path, "prop", None) if path is not None else None


def unproxied_engine(engine: Any) -> Any:
    """The Engine behind ``engine.execution_options(...)``'s OptionEngine (which shares
    its pool and dialect), or ``engine`` itself."""
    return getattr(engine, "_proxied", engine)


def first_checkout_record(fairy: Any) -> Any | None:
    """The pool's record of a connection just checked out, or None when the checkout is
    re-entrant (SingletonThreadPool hands the same thread its connection again, counting
    up ``_counter``): that hold started at the first checkout."""
    return fairy._connection_record if fairy._counter == 1 else None


def pool_max_overflow(pool: QueuePool) -> int:
    """``max_overflow`` as configured (negative: unlimited); QueuePool has no getter."""
    return int(pool._max_overflow)


def pool_queue(pool: QueuePool) -> Any:
    """The queue a QueuePool keeps idle connections in (``_pool``), whose ``get`` is the
    one place a QueuePool checkout waits; a thread-safe or asyncio-adapted queue."""
    return pool._pool


def pool_open_connections(pool: SingletonThreadPool) -> int:
    """Connections a SingletonThreadPool holds open (one per thread that used it)."""
    return len(pool._all_conns)


def static_pool_connected(pool: StaticPool) -> bool:
    """Whether the StaticPool opened its one connection (a memoized attribute, present
    in the instance dict once created)."""
    return "connection" in pool.__dict__


def pool_pre_ping(pool: Pool) -> bool:
    return bool(pool._pre_ping)


def pool_recycle(pool: Pool) -> int:
    return int(pool._recycle)


def connect_args(engine: Engine) -> dict[str, Any] | None:
    """The keyword arguments create_engine() passes to the DBAPI's connect() (URL query
    and ``connect_args`` merged), or None when they cannot be found: create_engine()
    keeps them only as ``cparams`` in its creator's closure."""
    creator = getattr(engine.pool, "_creator", None)
    try:
        cparams: Any = inspect.getclosurevars(creator).nonlocals.get("cparams")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return cparams if isinstance(cparams, dict) else None


def new_dbapi_connection(engine: Engine) -> Any:
    """A new DBAPI connection made the way the engine's pool makes its own (URL,
    ``connect_args``, ``creator``), but outside the pool: not counted, never lent out."""
    return engine.pool._creator()  # type: ignore[call-arg]
