"""A ready-made ``/health/database`` check: pool numbers plus a ``SELECT 1`` with a timeout.

The body is the one the seed handbook's FastAPI endpoint returns (``status`` and ``pool``
with ``size``, ``checked_in``, ``checked_out``, ``overflow``, ``total_connections``), read
from the same source as the in-process pool gauges (``PoolHooks.read`` when the engine
is instrumented), so the check and ``/metrics`` never disagree. A failed probe is a 503
whose ``detail`` is one line naming the error, never the DSN or its password.

``HealthASGIApp`` (Engine or AsyncEngine) mounts as a Starlette/FastAPI ``Route``,
``HealthWSGIApp`` under Flask (``DispatcherMiddleware``) or any WSGI server. Neither
raises into the application.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

from dbpulse.dsn import REDACTED, redact
from dbpulse.inprocess.instrumentation import pool_reading, sync_engine
from dbpulse.inprocess.metrics import PoolReading
from dbpulse.inprocess.scope import _CURRENT, PLUMBING

if TYPE_CHECKING:  # importing it at run time would need greenlet even for sync users
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "HealthASGIApp",
    "HealthWSGIApp",
    "check",
    "check_async",
    "health_body",
    "pool_body",
    "probe",
    "probe_async",
    "read_pool",
]

DEFAULT_TIMEOUT = 5.0
_MAX_REASON = 200


def pool_body(size: int, reading: PoolReading) -> dict[str, int]:
    """The seed's ``pool`` object from one gauge reading.

    ``overflow`` is the gauge's (never negative; SQLAlchemy's ``overflow()`` is negative
    while there is room), so ``total_connections`` is counted as checked in plus checked
    out: the seed's ``size + overflow()``, which is the same number for a QueuePool.
    """
    return {
        "size": size,
        "checked_in": reading.idle,
        "checked_out": reading.used,
        "overflow": reading.overflow,
        "total_connections": reading.idle + reading.used,
    }


def health_body(pool: dict[str, int], failure: str | None) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body: 200 healthy, or 503 with a one-line ``detail``."""
    if failure is None:
        return 200, {"status": "healthy", "pool": pool}
    # "detail" is the key FastAPI's HTTPException(503, detail=...) gives the seed's body.
    return 503, {"status": "unhealthy", "detail": f"Database unhealthy: {failure}", "pool": pool}


def _reading_unhooked(engine: Engine) -> PoolReading:
    """The gauges' formula for an engine dbpulse does not instrument (QueuePool only;
    other pools keep no counts without dbpulse's hooks)."""
    pool = engine.pool
    if isinstance(pool, QueuePool):
        return PoolReading(
            idle=pool.checkedin(),
            used=pool.checkedout(),
            max=math.nan,
            overflow=max(0, pool.overflow()),
            pending=0,
        )
    return PoolReading(idle=0, used=0, max=math.nan, overflow=0, pending=0)


def read_pool(engine: Engine) -> dict[str, int]:
    """``pool_body`` for ``engine`` now, from the reader its pool gauges use."""
    reading = pool_reading(engine)
    if reading is None:
        reading = _reading_unhooked(engine)
    pool = engine.pool
    if isinstance(pool, QueuePool):
        size = pool.size()
    else:  # StaticPool/AssertionPool 1, SingletonThreadPool its size; NullPool keeps none
        size = int(reading.max) if math.isfinite(reading.max) else 0
    return pool_body(size, reading)


def _one_line(error: BaseException, engine: Engine) -> str:
    """``Type: first line of the driver's message``, with any password scrubbed."""
    cause = error.orig if isinstance(error, sa_exc.DBAPIError) and error.orig else error
    lines = str(cause).strip().splitlines()
    message = redact(lines[0].strip() if lines else "")
    password = engine.url.password
    if password:
        message = message.replace(str(password), REDACTED)
    reason = f"{type(cause).__name__}: {message}" if message else type(cause).__name__
    return reason[:_MAX_REASON]


def _set_timeout(timeout: float) -> str:
    # SET takes no bind parameters; the value is an int formatted here, never input.
    return f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}"


def probe(engine: Engine, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """Run ``SELECT 1`` on a pooled connection; None when it worked, else the reason.

    PostgreSQL gets ``SET LOCAL statement_timeout`` inside the probe's own transaction,
    so the limit ends with it and never stays on the pooled connection.
    """
    # Plumbing, like the pool's own connect queries: a probe every few seconds is not
    # the application's traffic, so it is not counted in its statement metrics.
    token = _CURRENT.set(PLUMBING)
    try:
        with engine.connect() as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text(_set_timeout(timeout)))
            conn.execute(text("SELECT 1")).scalar_one()
    except Exception as error:  # noqa: BLE001 - a health check reports, never raises
        return _one_line(error, engine)
    finally:
        _CURRENT.reset(token)
    return None


async def probe_async(engine: AsyncEngine, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """``probe`` for an AsyncEngine, on the event loop its driver's connections live on."""
    token = _CURRENT.set(PLUMBING)  # not the application's traffic, as in ``probe``
    try:
        async with engine.connect() as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                await conn.execute(text(_set_timeout(timeout)))
            (await conn.execute(text("SELECT 1"))).scalar_one()
    except Exception as error:  # noqa: BLE001 - a health check reports, never raises
        return _one_line(error, engine.sync_engine)
    finally:
        _CURRENT.reset(token)
    return None


def check(engine: Any, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, dict[str, Any]]:
    """Probe, then read the pool (after the probe's connection is back, as a scrape
    would see it). Never raises: a failure to read the pool is a 503 too."""
    try:
        sync = sync_engine(engine)
        failure = probe(sync, timeout)
        return health_body(read_pool(sync), failure)
    except Exception as error:  # noqa: BLE001 - a health check reports, never raises
        return _broken(error)


async def check_async(
    engine: AsyncEngine, timeout: float = DEFAULT_TIMEOUT
) -> tuple[int, dict[str, Any]]:
    """``check`` for an AsyncEngine; never raises."""
    try:
        try:
            # The whole probe, checkout and connect included, gets the timeout: on a
            # loop, cancelling it is safe (SQLAlchemy invalidates a cancelled connection).
            failure = await asyncio.wait_for(probe_async(engine, timeout), timeout)
        except TimeoutError:
            failure = _late(timeout)
        return health_body(read_pool(sync_engine(engine)), failure)
    except Exception as error:  # noqa: BLE001 - a health check reports, never raises
        return _broken(error)


def _late(timeout: float) -> str:
    return f"no answer within {timeout:g}s (checkout, connect or SELECT 1)"


def _broken(error: Exception) -> tuple[int, dict[str, Any]]:
    """The check itself failed (not the database): 503 naming only the error's type."""
    return 503, {"status": "unhealthy", "detail": f"Database unhealthy: {type(error).__name__}"}


def _engine_only(engine: Any) -> Engine:
    """A sync Engine (or its ``execution_options()`` copy); an AsyncEngine's driver cannot
    run from the worker thread the probe uses, so it is refused when the app is built."""
    if not isinstance(engine, Engine):
        raise TypeError(f"the health check needs a sync Engine, got {type(engine)!r}")
    return sync_engine(engine)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class HealthASGIApp:
    """ASGI app answering any HTTP request with ``check(engine)``'s JSON.

    FastAPI/Starlette: ``app.router.routes.append(Route("/health/database",
    HealthASGIApp(engine)))`` (a Route whose endpoint is not a function is an ASGI app).
    A sync engine's probe runs in a worker thread, off the event loop; an AsyncEngine's
    on the loop.
    """

    def __init__(self, engine: Engine | AsyncEngine, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._engine: Engine | None = None
        self._async: AsyncEngine | None = None
        # Duck-typed: isinstance(AsyncEngine) would import sqlalchemy.ext.asyncio.
        if hasattr(engine, "sync_engine"):
            self._async = cast("AsyncEngine", engine)
        else:
            self._engine = _engine_only(engine)
        self._timeout = timeout

    async def _check_sync(self, engine: Engine) -> tuple[int, dict[str, Any]]:
        """``check`` in a worker thread, answered within the timeout even when the pool
        is exhausted; a late thread finishes on its own and returns its connection."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(check, engine, self._timeout), self._timeout
            )
        except TimeoutError:
            try:
                return health_body(read_pool(engine), _late(self._timeout))
            except Exception as error:  # noqa: BLE001 - a health check never raises
                return _broken(error)

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            return
        if self._async is not None:
            status, body = await check_async(self._async, self._timeout)
        elif self._engine is not None:
            status, body = await self._check_sync(self._engine)
        else:  # unreachable: __init__ sets one of the two
            return
        payload = _encode(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class HealthWSGIApp:
    """WSGI app answering any request with ``check(engine)``'s JSON.

    Flask: ``app.wsgi_app = DispatcherMiddleware(app.wsgi_app,
    {"/health/database": HealthWSGIApp(engine)})`` (werkzeug ships with Flask).
    """

    def __init__(self, engine: Engine, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._engine = _engine_only(engine)
        self._timeout = timeout

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        status, body = check(self._engine, self._timeout)
        payload = _encode(body)
        reason = "OK" if status == 200 else "Service Unavailable"
        start_response(
            f"{status} {reason}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [payload]
