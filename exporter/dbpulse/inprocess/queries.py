"""Statement hooks: duration by operation and table, errors, scopes; slow ones handed on.

The dialect's ``do_execute``/``do_executemany``/``do_execute_no_params`` are wrapped
rather than listening to ``before/after_cursor_execute``: any engine-level listener
sends every statement down SQLAlchemy's event path, which alone costs about a third of a
SQLite ``SELECT 1`` (see benchmarks/results/inprocess.md). The wrapper brackets exactly
the DBAPI call the cursor events would, and sees the raw DBAPI exception on failure.

The hot path: two clock reads, one dict lookup keyed by the compiled statement string,
one histogram observe on a child whose labels were resolved when the statement was
first seen, one context-variable read; for a SELECT with N+1 detection on, one dict
lookup more (a lazy load, or a repeat in a request scope, a few more). Fingerprinting
and label budgeting happen once per distinct statement; call-site lookup, logging and the
slow span only for slow ones, in ``slowquery`` (cold code kept out of this module).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from dbpulse.inprocess.compat import LAZY_LOADED_FROM, ORM_LOAD_OPTIONS
from dbpulse.inprocess.fingerprint import Fingerprint, fingerprint
from dbpulse.inprocess.guard import HookGuard
from dbpulse.inprocess.metrics import MetricSet
from dbpulse.inprocess.nplusone import NPlusOneDetector, NPlusOneError
from dbpulse.inprocess.patching import Patcher, Switch
from dbpulse.inprocess.plancapture import PlanCapture
from dbpulse.inprocess.scope import _CURRENT, PLUMBING, record
from dbpulse.inprocess.slowquery import SlowQueryReporter
from dbpulse.inprocess.tracing import DbTarget, StatementTracer, db_system_name

__all__ = ["OTHER", "QueryHooks"]

OTHER = "other"
_MAX_ENTRIES = 4096


@dataclass(slots=True, eq=False)
class _Entry:
    """Everything the hot path needs for one distinct statement string (hashed by
    identity: it is the N+1 detector's key for a repeated statement)."""

    fp: Fingerprint
    operation: str
    collection: str
    duration: Any  # the Histogram child for this pool / operation / table
    is_select: bool


class QueryHooks:
    """Statement wrappers for one engine's dialect."""

    def __init__(
        self,
        pool_name: str,
        metrics: MetricSet,
        guard: HookGuard,
        nplusone: NPlusOneDetector | None,
        *,
        dialect_name: str,
        slow_query_seconds: float,
        log_parameters: bool,
        max_label_sets: int,
        log_interval_seconds: float = 60.0,
        tracer_provider: Any = None,
        target: DbTarget | None = None,
        statement_span_ratio: float = 0.0,
        traceparent_comment: bool = False,
        plan_capture: PlanCapture | None = None,
    ) -> None:
        self._pool_name = pool_name
        self._plans = plan_capture
        self._metrics = metrics
        self._guard = guard
        self._nplusone = nplusone
        self._dialect_name = dialect_name
        self._slow = slow_query_seconds if slow_query_seconds > 0 else float("inf")
        self._max_label_sets = max_label_sets
        self._tracer = trace.get_tracer("dbpulse", tracer_provider=tracer_provider)
        self._target = target or DbTarget(system=db_system_name(dialect_name))
        # A bound method, so the hot path's slow branch is one call, as before the split.
        self._slow_query = SlowQueryReporter(
            pool_name,
            metrics,
            self._tracer,
            self._target,
            threshold_seconds=self._slow,
            log_parameters=log_parameters,
            log_interval=log_interval_seconds,
        ).report
        # Only when asked for: otherwise the plain wrappers below stay in place and the
        # statement path does no tracing work at all.
        self._statement_tracer = (
            StatementTracer(
                self,
                self._tracer,
                target=self._target,
                pool_name=pool_name,
                sample_ratio=statement_span_ratio,
                comment=traceparent_comment,
            )
            if statement_span_ratio > 0 or traceparent_comment
            else None
        )
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._label_sets: set[tuple[str, str]] = set()

    # -- labels ------------------------------------------------------------------------

    def _labels(self, fp: Fingerprint) -> tuple[str, str]:
        """(operation, collection) within the label budget; past it, table is 'other'."""
        pair = (fp.operation, fp.collection)
        if pair in self._label_sets:
            return pair
        if len(self._label_sets) >= self._max_label_sets:
            return fp.operation, OTHER
        self._label_sets.add(pair)
        return pair

    def entry(self, statement: str) -> _Entry:
        """The cached entry for ``statement`` (fingerprinted on first sight)."""
        found = self._entries.get(statement)
        if found is not None:
            return found
        # Misses only (a few hundred per process): a lock keeps the budget and the
        # eviction consistent when threads meet a new statement at once.
        with self._lock:
            found = self._entries.get(statement)
            if found is not None:
                return found
            fp = fingerprint(statement, self._dialect_name)
            operation, collection = self._labels(fp)
            made = _Entry(
                fp=fp,
                operation=operation,
                collection=collection,
                duration=self._metrics.operation_duration.labels(
                    self._pool_name, operation, collection
                ),
                is_select=operation == "SELECT",
            )
            if len(self._entries) >= _MAX_ENTRIES:
                # Bounded: drop the oldest entry (dicts keep insertion order). Its
                # fingerprint stays in fingerprint()'s own LRU cache.
                del self._entries[next(iter(self._entries))]
            self._entries[statement] = made
            return made

    # -- wrappers ----------------------------------------------------------------------

    def wrap_dialect(self, dialect: Any, patcher: Patcher) -> None:
        traced = self._statement_tracer
        if traced is not None:
            patcher.wrap(dialect, "do_execute", traced.make_execute)
            patcher.wrap(dialect, "do_executemany", traced.make_execute)
            patcher.wrap(dialect, "do_execute_no_params", traced.make_execute_no_params)
            return
        patcher.wrap(dialect, "do_execute", self._make_execute)
        patcher.wrap(dialect, "do_executemany", self._make_execute)
        patcher.wrap(dialect, "do_execute_no_params", self._make_execute_no_params)

    def _make_execute(self, original: Callable[..., Any], switch: Switch) -> Callable[..., Any]:
        done = self.statement_done
        failed = self.statement_failed

        def do_execute(cursor: Any, statement: str, parameters: Any, context: Any = None) -> Any:
            if not switch.on:
                return original(cursor, statement, parameters, context)
            t0 = perf_counter()
            try:
                result = original(cursor, statement, parameters, context)
            except Exception as exc:
                failed(statement, context, exc)
                raise
            done(perf_counter() - t0, statement, parameters, context)
            return result

        return do_execute

    def _make_execute_no_params(
        self, original: Callable[..., Any], switch: Switch
    ) -> Callable[..., Any]:
        done = self.statement_done
        failed = self.statement_failed

        def do_execute_no_params(cursor: Any, statement: str, context: Any = None) -> Any:
            if not switch.on:
                return original(cursor, statement, context)
            t0 = perf_counter()
            try:
                result = original(cursor, statement, context)
            except Exception as exc:
                failed(statement, context, exc)
                raise
            done(perf_counter() - t0, statement, None, context)
            return result

        return do_execute_no_params

    def statement_done(
        self,
        elapsed: float,
        statement: str,
        parameters: Any,
        context: Any,
        span: Span | None = None,
    ) -> None:
        """Account for one successful statement; never raises (except strict N+1).

        ``span`` is the statement's own span when per-statement tracing sampled it
        (the caller ends it); a slow statement then marks it instead of making another.
        """
        try:
            current = _CURRENT.get()
            if current is PLUMBING:
                return
            compiled = context.compiled if context is not None else None
            # The compiled string predates IN-list expansion and insertmanyvalues
            # batching, so one ORM statement is one cache key whatever its parameters.
            key = compiled.string if compiled is not None else statement
            entry = self._entries.get(key)
            if entry is None:
                entry = self.entry(key)
            if elapsed >= self._slow:
                slow_span = self._slow_query(entry, elapsed, parameters, span)  # observes
                if self._plans is not None:
                    self._plans.submit(entry.fp, statement, parameters, slow_span)
            else:
                entry.duration.observe(elapsed)
            if current is not None:
                record(current, elapsed, entry.fp.text)
            if entry.is_select and self._nplusone is not None and context is not None:
                self._n_plus_one(current, entry, context)
        except NPlusOneError:
            raise
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._guard.failed("execute", exc)

    def statement_failed(self, statement: str, context: Any, error: BaseException) -> None:
        """Count a statement the DBAPI rejected, by the DBAPI exception's class name."""
        try:
            compiled = getattr(context, "compiled", None)
            entry = self.entry(compiled.string if compiled is not None else statement)
            self._metrics.operation_errors.labels(
                self._pool_name, entry.operation, type(error).__name__
            ).inc()
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._guard.failed("execute_error", exc)

    def _n_plus_one(self, current: Any, entry: _Entry, context: Any) -> None:
        """Feed one SELECT to the N+1 detector: a lazy load (the ORM marks those in its
        load options), or else a repeat inside a request scope."""
        detector = self._nplusone
        if detector is None:
            return
        try:
            options = context.execution_options.get(ORM_LOAD_OPTIONS)
            loaded_from = getattr(options, LAZY_LOADED_FROM, None)
            if loaded_from is not None:
                detector.lazy_load(context, loaded_from, current)
            elif current is not None:
                unit = current.unit()
                if unit is not None:
                    detector.statement_repeated(unit, entry)
        except NPlusOneError:
            raise
        except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
            self._guard.failed("n_plus_one", exc)

    def hook_failed(self, hook: str, exc: BaseException) -> None:
        self._guard.failed(hook, exc)
