"""ASGI and WSGI middleware: one query scope (and N+1 unit of work) per request.

Each request runs inside a fresh ``QueryScope``. When it ends, its statement count goes
to the ``db_client_request_queries`` histogram and, with ``headers=True``, the response
carries ``X-DB-Query-Count`` (statements) and ``X-DB-Query-Time`` (seconds in the
database, 6 decimals). Counts cover the statements run before the response starts,
which for ordinary handlers is all of them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry

from dbpulse.inprocess.metrics import metric_set
from dbpulse.inprocess.scope import _CURRENT, QueryScope, current_scope

__all__ = ["DBPulseASGIMiddleware", "DBPulseWSGIMiddleware"]

COUNT_HEADER = "X-DB-Query-Count"
TIME_HEADER = "X-DB-Query-Time"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _new_scope() -> QueryScope:
    return QueryScope(unit_of_work=True, parent=current_scope())


def _header_values(scope: QueryScope) -> tuple[str, str]:
    return str(scope.count), f"{scope.duration:.6f}"


class _Middleware:
    """What both middlewares keep: the wrapped app, the header switch, the histogram."""

    def __init__(
        self,
        app: Any,
        *,
        headers: bool = True,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.app = app
        self.headers = headers
        self._request_queries = metric_set(registry).request_queries


class DBPulseASGIMiddleware(_Middleware):
    """Wrap an ASGI app (Starlette, FastAPI, ...): ``app = DBPulseASGIMiddleware(app)``."""

    app: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        qscope = _new_scope()
        token = _CURRENT.set(qscope)

        async def send_wrapper(message: Message) -> None:
            if self.headers and message.get("type") == "http.response.start":
                count, seconds = _header_values(qscope)
                raw = list(message.get("headers", []))
                raw.append((COUNT_HEADER.lower().encode(), count.encode()))
                raw.append((TIME_HEADER.lower().encode(), seconds.encode()))
                message["headers"] = raw
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            _CURRENT.reset(token)
            self._request_queries.observe(qscope.count)


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _ClosingIterable:
    """Runs the body in the request's context and ends the scope when it closes."""

    def __init__(
        self, body: Iterable[bytes], ctx: contextvars.Context, done: Callable[[], None]
    ) -> None:
        self._body = body
        self._iter: Iterator[bytes] = ctx.run(iter, body)
        self._ctx = ctx
        self._done = done

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return self._ctx.run(next, self._iter)
        except StopIteration:
            # The body is complete: the request's statements are all counted, even if a
            # server (or a test client) is late to call close().
            self._done()
            raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                self._ctx.run(close)
        finally:
            self._done()


class DBPulseWSGIMiddleware(_Middleware):
    """Wrap a WSGI app (Flask, Django, ...): ``app.wsgi_app = DBPulseWSGIMiddleware(...)``."""

    app: WSGIApp

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # A copied context keeps the scope out of the server thread's own context, and
        # lets the body iterator run inside it later.
        ctx = contextvars.copy_context()
        qscope = _new_scope()
        ctx.run(_CURRENT.set, qscope)

        def start_wrapper(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            if self.headers:
                count, seconds = _header_values(qscope)
                headers = [*headers, (COUNT_HEADER, count), (TIME_HEADER, seconds)]
            return start_response(status, headers, *args)

        finished = False

        def done() -> None:
            nonlocal finished
            if not finished:
                finished = True
                self._request_queries.observe(qscope.count)

        try:
            body = ctx.run(self.app, environ, start_wrapper)
        except BaseException:
            done()
            raise
        return _ClosingIterable(body, ctx, done)
