"""Statement spans (OpenTelemetry database conventions) and traceparent comments.

Nothing in this module runs unless ``instrument()`` was asked for per-statement spans
(``statement_span_ratio > 0``) or for ``traceparent_comment=True``: only then does
``QueryHooks`` install the wrappers made here instead of its plain ones, so with
tracing off the statement path is exactly what it was. Slow statements get a span
either way (``slowquery.SlowQueryReporter``); both use :func:`span_attributes`.

Attributes follow the stable database semantic conventions: ``db.system.name``,
``db.namespace``, ``db.operation.name``, ``db.collection.name``, ``db.query.summary``
and ``db.query.text``, which is always the fingerprint (literals replaced by ``?``),
never the statement as sent; ``error.type`` and ``db.response.status_code`` on failure.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from dbpulse.inprocess.fingerprint import Fingerprint
from dbpulse.inprocess.patching import Switch
from dbpulse.inprocess.scope import _CURRENT, PLUMBING
from dbpulse.tracecontext import comment_for

if TYPE_CHECKING:
    from dbpulse.inprocess.queries import QueryHooks

__all__ = [
    "DbTarget",
    "StatementTracer",
    "code_attributes",
    "db_system_name",
    "error_attributes",
    "span_attributes",
    "span_name",
    "target_of",
]

# SQLAlchemy dialect name -> db.system.name (the conventions' well-known values).
_SYSTEMS = {
    "postgresql": "postgresql",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "mssql": "microsoft.sql_server",
    "oracle": "oracle.db",
}
QUERY_TEXT_MAX = 2000


def db_system_name(dialect_name: str) -> str:
    return _SYSTEMS.get(dialect_name, dialect_name)


@dataclass(frozen=True)
class DbTarget:
    """Where statements go, from the engine URL (never its user or password)."""

    system: str
    namespace: str = ""
    address: str = ""
    port: int | None = None


def target_of(url: Any, dialect_name: str) -> DbTarget:
    """The DbTarget of a SQLAlchemy URL (SQLite files: the path is not a namespace)."""
    if dialect_name == "sqlite":
        return DbTarget(system="sqlite")
    return DbTarget(
        system=db_system_name(dialect_name),
        namespace=str(url.database or ""),
        address=str(url.host or ""),
        port=int(url.port) if url.port else None,
    )


def span_name(fp: Fingerprint) -> str:
    """``db.query.summary``: operation and main table, e.g. ``SELECT users``."""
    return f"{fp.operation} {fp.collection}".strip()


def span_attributes(target: DbTarget, fp: Fingerprint, pool_name: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "db.system.name": target.system,
        "db.operation.name": fp.operation,
        "db.query.summary": span_name(fp),
        "db.query.text": fp.text[:QUERY_TEXT_MAX],
        "db.client.connection.pool.name": pool_name,
    }
    if fp.collection:
        attrs["db.collection.name"] = fp.collection
    if target.namespace:
        attrs["db.namespace"] = target.namespace
    if target.address:
        attrs["server.address"] = target.address
    if target.port is not None:
        attrs["server.port"] = target.port
    return attrs


def error_attributes(error: BaseException) -> dict[str, str]:
    """``error.type`` (the DBAPI exception's qualified class) and the SQLSTATE if any."""
    cls = type(error)
    attrs = {"error.type": f"{cls.__module__}.{cls.__qualname__}"}
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate:
        attrs["db.response.status_code"] = sqlstate
    return attrs


def code_attributes(site: str) -> dict[str, Any]:
    """``path:line`` from callsite.caller() as the code.* attributes (a template named
    after it, `` (template NAME:LINE)``, is left out: OpenTelemetry has no name for it)."""
    path, _, line = site.partition(" (template ")[0].rpartition(":")
    if path and line.isdigit():
        return {"code.file.path": path, "code.line.number": int(line)}
    return {}


class StatementTracer:
    """Per-statement spans (sampled) and traceparent comments for one engine."""

    def __init__(
        self,
        hooks: QueryHooks,
        tracer: trace.Tracer,
        *,
        target: DbTarget,
        pool_name: str,
        sample_ratio: float,
        comment: bool,
    ) -> None:
        self._hooks = hooks
        self._tracer = tracer
        self._target = target
        self._pool_name = pool_name
        self._ratio = max(0.0, min(1.0, sample_ratio))
        self._comment = comment

    def _start(self, statement: str, context: Any) -> Span | None:
        ratio = self._ratio
        if ratio <= 0.0 or (ratio < 1.0 and random.random() >= ratio):  # noqa: S311 - sampling, not security
            return None
        compiled = getattr(context, "compiled", None)
        fp = self._hooks.entry(compiled.string if compiled is not None else statement).fp
        # A child of the current span: start_span() reads the current context.
        return self._tracer.start_span(
            span_name(fp),
            kind=SpanKind.CLIENT,
            attributes=span_attributes(self._target, fp, self._pool_name),
        )

    def _prepare(self, statement: str, context: Any) -> tuple[Span | None, str]:
        """The statement's span (if sampled) and the statement to send; never raises."""
        try:
            if _CURRENT.get() is PLUMBING:  # the pool's own first-connect statements
                return None, statement
            span = self._start(statement, context)
            if self._comment:
                ctx = (span or trace.get_current_span()).get_span_context()
                statement = comment_for(ctx) + statement
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._hooks.hook_failed("trace_start", exc)
            return None, statement
        return span, statement

    def _end(self, span: Span | None) -> None:
        if span is None:
            return
        try:
            span.end()
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._hooks.hook_failed("trace_end", exc)

    def _failed(self, span: Span | None, error: BaseException) -> None:
        if span is None:
            return
        try:
            span.set_attributes(error_attributes(error))
            span.set_status(Status(StatusCode.ERROR))
            span.end()
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._hooks.hook_failed("trace_end", exc)

    def make_execute(self, original: Callable[..., Any], switch: Switch) -> Callable[..., Any]:
        done = self._hooks.statement_done
        failed = self._hooks.statement_failed
        prepare = self._prepare
        span_failed = self._failed
        end = self._end

        def do_execute(cursor: Any, statement: str, parameters: Any, context: Any = None) -> Any:
            if not switch.on:
                return original(cursor, statement, parameters, context)
            span, sent = prepare(statement, context)
            t0 = perf_counter()
            try:
                result = original(cursor, sent, parameters, context)
            except Exception as exc:
                failed(statement, context, exc)
                span_failed(span, exc)
                raise
            elapsed = perf_counter() - t0
            try:
                done(elapsed, statement, parameters, context, span)
            finally:
                end(span)
            return result

        return do_execute

    def make_execute_no_params(
        self, original: Callable[..., Any], switch: Switch
    ) -> Callable[..., Any]:
        done = self._hooks.statement_done
        failed = self._hooks.statement_failed
        prepare = self._prepare
        span_failed = self._failed
        end = self._end

        def do_execute_no_params(cursor: Any, statement: str, context: Any = None) -> Any:
            if not switch.on:
                return original(cursor, statement, context)
            span, sent = prepare(statement, context)
            t0 = perf_counter()
            try:
                result = original(cursor, sent, context)
            except Exception as exc:
                failed(statement, context, exc)
                span_failed(span, exc)
                raise
            elapsed = perf_counter() - t0
            try:
                done(elapsed, statement, None, context, span)
            finally:
                end(span)
            return result

        return do_execute_no_params
