"""Plans of slow statements, captured in the background (opt-in: ``explain_slow_queries``).

For a statement over ``slow_query_seconds`` the hot path hands the statement as sent, its
parameters and the slow span's context to :meth:`PlanCapture.submit`, which only drops
them into a small bounded queue (no I/O, no lock held; a full queue drops the request) and
only once per fingerprint per ``interval``. One daemon thread takes them off the queue and
runs ``EXPLAIN (FORMAT JSON)`` with the real parameters, never ``ANALYZE`` (which would run
the statement again), on its own DBAPI connection made like the pool's but outside it,
read-only and under a short ``statement_timeout``. The plan is scrubbed by the same
lexer-based scrubber as statement text (real parameters put constants in it), summarised,
checked by the advice rules that need no catalog facts, and reported as a child span of
the slow statement's span and a log line under the ``dbpulse.plans`` logger.

PostgreSQL with a synchronous driver only: other dialects and async drivers are told
once, at ``instrument()``, that plan capture does nothing for them. With it off (the
default), the statement path does not change at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Tracer

from dbpulse.inprocess.compat import new_dbapi_connection
from dbpulse.inprocess.fingerprint import Fingerprint
from dbpulse.inprocess.ratelimit import WarningLimiter
from dbpulse.plans import advice
from dbpulse.plans.tree import plan_hash, root, scrubbed, summary

log = logging.getLogger("dbpulse.plans")

EXPLAINABLE = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
PLAN_TEXT_MAX = 8000
_QUEUE_SIZE = 16


@dataclass(frozen=True)
class Request:
    fp: Fingerprint
    statement: str
    parameters: Any
    parent: SpanContext | None
    at: float


@dataclass(frozen=True)
class CapturedPlan:
    fingerprint: str
    plan_hash: str
    summary: str
    plan: Any  # scrubbed EXPLAIN JSON (the top node)
    findings: tuple[advice.Finding, ...]


def _many(parameters: Any) -> bool:
    """executemany's list of parameter sets: one statement, many plans; not planned."""
    return (
        isinstance(parameters, list)
        and bool(parameters)
        and not isinstance(parameters[0], str | int | float | bool | bytes)
    )


def supported(engine: Any) -> str | None:
    """None when plans can be captured for ``engine``, else why not (for one log line)."""
    if engine.dialect.name != "postgresql":
        return f"plan capture needs PostgreSQL, not {engine.dialect.name}"
    if getattr(engine.dialect, "is_async", False):
        return "plan capture needs a synchronous driver (this engine's driver is async)"
    return None


class PlanCapture:
    """One engine's background plan capture; :meth:`submit` is the only hot-path call."""

    def __init__(
        self,
        engine: Any,
        tracer: Tracer,
        pool_name: str,
        *,
        interval: float = 300.0,
        timeout: float = 1.0,
    ) -> None:
        self._engine = engine
        self._tracer = tracer
        self._pool_name = pool_name
        self._timeout = timeout
        self._queue: queue.Queue[Request | None] = queue.Queue(maxsize=_QUEUE_SIZE)
        # Once per fingerprint per interval: the warnings' own per-key limiter.
        self._once = WarningLimiter(interval)
        self._conn: Any = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        dbapi = getattr(engine.dialect, "dbapi", None)
        self._dbapi_error: type[Exception] = getattr(dbapi, "Error", Exception)
        self.captured: list[CapturedPlan] = []  # the latest few, for tests and debugging

    def submit(
        self, fp: Fingerprint, statement: str, parameters: Any, parent: SpanContext | None
    ) -> None:
        """Queue one slow statement for planning; never blocks, never raises."""
        if fp.operation not in EXPLAINABLE or _many(parameters):
            return
        if self._once.admit(fp.text) is None:
            return
        if self._thread is None:
            self._start()
        # Planning is best effort: a burst of slow statements is not worth a wait.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(Request(fp, statement, parameters, parent, time.time()))

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="dbpulse-plan-capture", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Stop the worker (it finishes the plan in hand) and close its connection."""
        thread = self._thread
        if thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=1.0)
            thread.join(timeout=self._timeout + 2.0)
        self._close_connection()

    def _run(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            try:
                self._capture(request)
            except self._dbapi_error as exc:
                # The server said no (a table created in a transaction not yet committed,
                # a permission, the timeout): that statement goes unplanned this time.
                log.info(
                    "could not plan %s %s: %s",
                    request.fp.operation,
                    request.fp.collection,
                    type(exc).__name__,
                )
                self._close_connection()
            except Exception as exc:  # noqa: BLE001 - a background helper must not die
                log.warning(
                    "plan capture failed for %s: %s", request.fp.operation, type(exc).__name__
                )
                self._close_connection()

    def _connection(self) -> Any:
        if self._conn is None:
            conn = new_dbapi_connection(self._engine)
            cur = conn.cursor()
            # Read-only and short: EXPLAIN without ANALYZE runs nothing, and this makes
            # sure of it; a plan that takes longer to make is not worth waiting for.
            cur.execute("SET default_transaction_read_only = on")
            cur.execute(f"SET statement_timeout = {max(1, int(self._timeout * 1000))}")
            cur.execute("SET lock_timeout = 100")
            cur.close()
            conn.commit()
            self._conn = conn
        return self._conn

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing a broken connection may fail too; it is gone either way.
            with contextlib.suppress(Exception):
                conn.close()

    def _capture(self, request: Request) -> None:
        conn = self._connection()
        cur = conn.cursor()
        try:
            cur.execute("EXPLAIN (FORMAT JSON) " + request.statement, request.parameters)
            row = cur.fetchone()
        finally:
            cur.close()
            conn.rollback()
        explained = row[0] if row else None
        if isinstance(explained, str):
            explained = json.loads(explained)
        top = root(explained)
        plan = CapturedPlan(
            fingerprint=request.fp.text,
            plan_hash=plan_hash(top),
            summary=summary(top),
            plan=scrubbed(top),
            findings=tuple(advice.advise(top, advice.CatalogFacts())),
        )
        self.captured = [*self.captured[-9:], plan]
        self._report(plan, request)

    def _report(self, plan: CapturedPlan, request: Request) -> None:
        text = json.dumps(plan.plan, separators=(",", ":"))[:PLAN_TEXT_MAX]
        attributes: dict[str, Any] = {
            "db.system.name": "postgresql",
            "db.operation.name": request.fp.operation,
            "db.query.text": request.fp.text[:2000],
            "dbpulse.pool_name": self._pool_name,
            "dbpulse.plan.hash": plan.plan_hash,
            "dbpulse.plan.summary": plan.summary,
            "dbpulse.plan": text,
        }
        if request.fp.collection:
            attributes["db.collection.name"] = request.fp.collection
        if plan.findings:
            attributes["dbpulse.plan.advice"] = [f"{f.rule}: {f.fix}" for f in plan.findings]
        context = (
            trace.set_span_in_context(NonRecordingSpan(request.parent))
            if request.parent is not None and request.parent.is_valid
            else None
        )
        span = self._tracer.start_span(
            f"EXPLAIN {request.fp.operation} {request.fp.collection}".strip(),
            context=context,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        span.end()
        log.warning(
            "slow query plan: %s (%s) [%s]%s",
            plan.summary,
            request.fp.text[:200],
            plan.plan_hash,
            "".join(f"; {f.rule}: {f.fix}" for f in plan.findings),
            extra={
                "fingerprint": request.fp.text[:2000],
                "plan_hash": plan.plan_hash,
                "plan_summary": plan.summary,
                "plan": text,
                "pool_name": self._pool_name,
            },
        )
