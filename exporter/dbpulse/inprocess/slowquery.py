"""Slow statements: counted, logged by fingerprint and call site, marked in a trace.

Cold code, apart from the statement hot path in ``queries``: it runs only for a
statement at or over ``slow_query_seconds``, so a call-site lookup, a log line and a
span are affordable here. The observation it makes carries the span as an OpenMetrics
exemplar, so a latency spike on a dashboard links to the trace that caused it.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext, Tracer

from dbpulse.inprocess.callsite import caller
from dbpulse.inprocess.fingerprint import Fingerprint
from dbpulse.inprocess.metrics import MetricSet
from dbpulse.inprocess.ratelimit import WarningLimiter
from dbpulse.inprocess.tracing import DbTarget, code_attributes, span_attributes, span_name
from dbpulse.logging import get_logger

__all__ = ["SlowQueryReporter"]


class Entry(Protocol):
    """What a report reads of the hot path's cached entry for one statement."""

    fp: Fingerprint
    operation: str
    collection: str
    duration: Any  # the Histogram child for this pool / operation / table


class SlowQueryReporter:
    """Reports one engine's slow statements; the hot path calls :meth:`report`."""

    def __init__(
        self,
        pool_name: str,
        metrics: MetricSet,
        tracer: Tracer,
        target: DbTarget,
        *,
        threshold_seconds: float,
        log_parameters: bool,
        log_interval: float = 60.0,
    ) -> None:
        self._pool_name = pool_name
        self._metrics = metrics
        self._tracer = tracer
        self._target = target
        self._threshold = threshold_seconds
        self._log_parameters = log_parameters
        self._limiter = WarningLimiter(log_interval)

    def report(
        self, entry: Entry, elapsed: float, parameters: Any, span: Span | None
    ) -> SpanContext | None:
        """Count, log and trace one slow statement; observe its duration whatever fails.

        Returns the slow span's context (a captured plan becomes its child), if any.
        """
        exemplar: dict[str, str] | None = None
        context: SpanContext | None = None
        try:
            self._metrics.slow_queries.labels(
                self._pool_name, entry.operation, entry.collection
            ).inc()
            site = caller()
            fields: dict[str, Any] = {
                "fingerprint": entry.fp.text[:2000],
                "duration_seconds": round(elapsed, 6),
                "threshold_seconds": self._threshold,
                "db_operation_name": entry.operation,
                "db_collection_name": entry.collection,
                "caller": site,
            }
            if self._log_parameters:  # opt-in only: parameters can hold personal data
                fields["parameters"] = repr(parameters)[:1000]
            # Once per fingerprint per interval: a statement slow every run is one line.
            suppressed = self._limiter.admit(entry.fp.text)
            if suppressed is not None:
                get_logger("dbpulse.inprocess", pool_name=self._pool_name).warning(
                    "slow query",
                    **fields,
                    suppressed=suppressed,
                    log_interval_seconds=self._limiter.interval,
                )
            context = self._span(entry, elapsed, site, span)
            exemplar = _exemplar(context)
        finally:
            # Observed here rather than by the hot path, so the slow observation carries
            # its trace (the exemplar) and is still counted if logging or tracing failed.
            entry.duration.observe(elapsed, exemplar)
        return context

    def _span(self, entry: Entry, elapsed: float, site: str, span: Span | None) -> SpanContext:
        slow_attrs = {"dbpulse.slow_query": True, **code_attributes(site)}
        if span is not None:  # the statement's own span (per-statement tracing)
            span.set_attributes(slow_attrs)
            return span.get_span_context()
        end = time.time_ns()
        made = self._tracer.start_span(
            span_name(entry.fp),
            kind=trace.SpanKind.CLIENT,
            start_time=end - int(elapsed * 1e9),
            attributes={
                **span_attributes(self._target, entry.fp, self._pool_name),
                **slow_attrs,
            },
        )
        made.end(end_time=end)
        return made.get_span_context()


def _exemplar(ctx: SpanContext) -> dict[str, str] | None:
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return None
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}
