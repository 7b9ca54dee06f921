"""``instrument(engine)`` and the ``Instrumentation`` it returns: the lifecycle.

One engine is instrumented at most once (a second call logs and returns the first
Instrumentation). Every listener added is recorded with its target, and every wrapped
attribute by the ``Patcher``, so that ``uninstrument()`` removes exactly those; the
engine itself is held by weak reference only.

What is hooked, and how: pool events (checkout, checkin, detach, invalidate) on the
engine's pool; instance-attribute wrappers on the engine's own dialect (statements,
transactions, new connections) and pool (checkout wait and timeouts, recreate on
dispose). Lazy loads are recognised on the statement path, with no ``Session``
listener, and no engine-level ``ConnectionEvents`` listener is added: any one of them
moves every statement onto SQLAlchemy's slower event path.
"""

# layout-note: the Instrumentation lifecycle and instrument(), its one entry point, stay
# layout-note: together: what _install adds _remove takes out, and instrument() only picks
# layout-note: which Instrumentation to build (a new one, the existing one, or an inert one).

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from typing import Any

from opentelemetry import trace
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from dbpulse import multiprocess
from dbpulse.dsn import redact
from dbpulse.inprocess import appinfo, nplusone, plancapture
from dbpulse.inprocess.compat import unproxied_engine
from dbpulse.inprocess.guard import HookGuard
from dbpulse.inprocess.lint import PoolConfig, findings, running_under_tests
from dbpulse.inprocess.metrics import MetricSet, PoolReading, failure_counter, metric_set
from dbpulse.inprocess.naming import default_pool_name, unique_name
from dbpulse.inprocess.patching import Patcher
from dbpulse.inprocess.plancapture import PlanCapture
from dbpulse.inprocess.pool import PoolHooks
from dbpulse.inprocess.queries import QueryHooks
from dbpulse.inprocess.tracing import target_of
from dbpulse.inprocess.transactions import TransactionHooks
from dbpulse.logging import get_logger

__all__ = ["Instrumentation", "default_pool_name", "instrument", "pool_reading", "sync_engine"]

_INSTRUMENTED: weakref.WeakKeyDictionary[Engine, Instrumentation] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
_LOG = logging.getLogger("dbpulse.inprocess")


def sync_engine(engine: Any) -> Engine:
    # AsyncEngine wraps a sync Engine; importing sqlalchemy.ext.asyncio to check the type
    # would need greenlet even for sync users, so duck-type instead.
    sync = getattr(engine, "sync_engine", engine)
    if not isinstance(sync, Engine):
        raise TypeError(f"instrument() needs an Engine or AsyncEngine, got {type(engine)!r}")
    # engine.execution_options() returns an OptionEngine sharing the real one's pool.
    proxied = unproxied_engine(sync)
    return proxied if isinstance(proxied, Engine) else sync


def instrumented_engines() -> int:
    """How many live engines dbpulse instruments now (a query budget with none counts 0)."""
    return sum(1 for inst in list(_INSTRUMENTED.values()) if inst.active)


def pool_reading(engine: Engine) -> PoolReading | None:
    """What ``engine``'s pool gauges read now; None when dbpulse does not instrument it."""
    inst = _INSTRUMENTED.get(engine)
    return inst._pool.read() if inst is not None and inst.active else None


class Instrumentation:
    """The hooks dbpulse installed on one engine; ``uninstrument()`` takes them out."""

    def __init__(
        self,
        engine: Engine,
        *,
        pool_name: str,
        metrics: MetricSet,
        slow_query_seconds: float,
        log_parameters: bool,
        n_plus_one_threshold: int,
        n_plus_one_strict: bool,
        detect_n_plus_one: bool,
        max_label_sets: int,
        log_interval_seconds: float = 60.0,
        tracer_provider: Any = None,
        statement_span_ratio: float = 0.0,
        traceparent_comment: bool = False,
        explain_slow_queries: bool = False,
        explain_interval: float = 300.0,
    ) -> None:
        self.pool_name = pool_name
        self.metrics = metrics
        self.slow_query_seconds = slow_query_seconds
        self._engine_ref = weakref.ref(engine)
        self._config_labels: dict[str, str] | None = None
        self._active = False
        self._guard = HookGuard(metrics, pool_name)
        self._patcher = Patcher()
        self._nplusone = (
            nplusone.NPlusOneDetector(
                pool_name,
                metrics,
                self._guard,
                threshold=n_plus_one_threshold,
                strict=n_plus_one_strict,
                log_interval=log_interval_seconds,
            )
            if detect_n_plus_one
            else None
        )
        self._pool = PoolHooks(engine, pool_name, metrics, self._guard, self._patcher)
        self.plans = self._plan_capture(
            engine, explain_slow_queries, explain_interval, tracer_provider
        )
        self._queries = QueryHooks(
            pool_name,
            metrics,
            self._guard,
            self._nplusone,
            dialect_name=engine.dialect.name,
            slow_query_seconds=slow_query_seconds,
            log_parameters=log_parameters,
            log_interval_seconds=log_interval_seconds,
            max_label_sets=max_label_sets,
            tracer_provider=tracer_provider,
            target=target_of(engine.url, engine.dialect.name),
            statement_span_ratio=statement_span_ratio,
            traceparent_comment=traceparent_comment,
            plan_capture=self.plans,
        )
        self._transactions = TransactionHooks(pool_name, metrics, self._guard)

    def _plan_capture(
        self, engine: Engine, wanted: bool, interval: float, tracer_provider: Any
    ) -> PlanCapture | None:
        if not wanted:
            return None
        why_not = plancapture.supported(engine)
        if why_not is not None:
            logging.getLogger("dbpulse.plans").warning(
                "explain_slow_queries ignored for %s: %s", self.pool_name, why_not
            )
            return None
        tracer = trace.get_tracer("dbpulse", tracer_provider=tracer_provider)
        return PlanCapture(engine, tracer, self.pool_name, interval=interval)

    @property
    def engine(self) -> Engine | None:
        """The instrumented (sync) engine, or None once it was garbage collected."""
        return self._engine_ref()

    @property
    def active(self) -> bool:
        return self._active

    def _install(self, engine: Engine) -> None:
        pool = engine.pool
        p = self._pool
        p.listen(pool)
        p.wrap_pool(pool)
        p.wrap_dialect(engine.dialect)
        self._queries.wrap_dialect(engine.dialect, self._patcher)
        self._transactions.wrap_dialect(engine.dialect, self._patcher)
        self.metrics.pools.add(self.pool_name, p.read)
        if p.publish is not None:  # multiprocess mode: capacity shows before any checkout
            p.publish()
        self._active = True

    def uninstrument(self) -> None:
        """Remove every listener and wrapper added by ``instrument()``; idempotent."""
        with _LOCK:
            if not self._active:
                return
            self._remove()
        get_logger("dbpulse.inprocess", pool_name=self.pool_name).info(
            "dbpulse uninstrumented engine"
        )

    def _remove(self) -> None:
        """Take out whatever ``_install`` put in, also when it stopped halfway."""
        self._active = False
        self._pool.unlisten_all()
        self._patcher.restore()
        self.metrics.pools.remove(self.pool_name)
        gauges = self.metrics.pool_gauges
        if gauges is not None:  # multiprocess mode cannot remove labels: zero them
            gauges.zero(self.pool_name)
        if self._config_labels is not None:
            # Describes a pool dbpulse no longer watches: drop it rather than let
            # a stale configuration linger (set to 0 where labels cannot be removed).
            with contextlib.suppress(KeyError):
                if gauges is not None:
                    self.metrics.pool_config.labels(*self._config_labels.values()).set(0)
                else:
                    self.metrics.pool_config.remove(*self._config_labels.values())
            self._config_labels = None
        engine = self._engine_ref()
        if self.plans is not None:
            self.plans.close()
        if engine is not None and _INSTRUMENTED.get(engine) is self:
            del _INSTRUMENTED[engine]

    def __repr__(self) -> str:
        state = "active" if self._active else "removed"
        return f"<Instrumentation pool_name={self.pool_name!r} {state}>"


def _embedding_problem(registry: CollectorRegistry | None, message: str, *args: object) -> None:
    """Log and count a problem instrument() absorbed instead of raising into the app."""
    # Standard logging: the embedding app's own handlers see it (structlog may be unset).
    _LOG.warning(message, *args)
    with contextlib.suppress(Exception):
        counter = failure_counter(registry)
        if counter is not None:
            counter.labels("instrument").inc()


def _lint(instrumentation: Instrumentation, engine: Engine) -> None:
    config = PoolConfig.from_engine(engine)
    labels = {"pool_name": instrumentation.pool_name, **config.labels()}
    instrumentation.metrics.pool_config.labels(**labels).set(1)
    instrumentation._config_labels = labels
    log = get_logger("dbpulse.inprocess", pool_name=instrumentation.pool_name)
    for code, advice in findings(config, under_tests=running_under_tests()):
        log.warning("pool configuration", check=code, advice=advice)


def instrument(
    engine: Any,
    *,
    pool_name: str | None = None,
    registry: CollectorRegistry | None = None,
    slow_query_seconds: float = 0.5,
    log_parameters: bool = False,
    n_plus_one_threshold: int = 5,
    n_plus_one_strict: bool = False,
    detect_n_plus_one: bool = True,
    max_label_sets: int = 500,
    log_interval_seconds: float = 60.0,
    lint: bool = True,
    tracer_provider: Any = None,
    statement_span_ratio: float = 0.0,
    traceparent_comment: bool = False,
    explain_slow_queries: bool = False,
    explain_interval: float = 300.0,
    service_version: str | None = None,
) -> Instrumentation:
    """Hook ``engine`` (an ``Engine`` or ``AsyncEngine``) into Prometheus metrics.

    ``registry=None`` uses ``prometheus_client.REGISTRY``. Engines sharing a registry
    share its metric objects, told apart by ``pool_name`` (default ``host:port/dbname``).
    A second call for the same engine returns the first; a taken name, a registry clash or
    a hook-in fault is logged and counted, never raised (the result may be inactive).
    ``log_parameters=True`` adds parameter values to slow-query logs (off by default:
    they can hold personal data). ``n_plus_one_strict=True`` raises ``NPlusOneError``
    instead of logging, for tests. ``max_label_sets`` caps distinct (operation, table)
    pairs per engine; statements past it are labelled ``db_collection_name="other"``.
    ``log_interval_seconds`` rate-limits the repeated warnings (an N+1 or slow-query
    pattern is logged at most once per interval, with a count of those left out; the
    metrics count every one; 0 logs each). Logs go to the stdlib logger
    ``dbpulse.inprocess``.
    Slow queries also become OpenTelemetry spans from ``tracer_provider`` (default: the
    global one, a no-op until the application sets one); N+1 detections and pool
    timeouts are span events on the current span. ``statement_span_ratio`` (0..1) also
    makes a CLIENT span for that fraction of all statements, and
    ``traceparent_comment=True`` prepends ``/*traceparent='...'*/`` to each statement so
    the sidecar (and the server's logs) can tell which trace issued it; both are off by
    default, and then the statement path does no tracing work.
    ``explain_slow_queries=True`` (PostgreSQL, synchronous drivers) plans a slow statement
    with its real parameters (``EXPLAIN``, never ``ANALYZE``) on a separate connection in
    a background thread, at most once per fingerprint per ``explain_interval`` seconds,
    and reports the scrubbed plan as a child span of the slow-query span and a log line.
    ``service_version`` (default: ``service.version`` of the OpenTelemetry resource) is
    exported as ``target_info{service_name,service_version}`` so dashboards mark deploys.
    """
    appinfo.publish(registry, service_version, tracer_provider)
    sync = sync_engine(engine)
    options: dict[str, Any] = {
        "slow_query_seconds": slow_query_seconds,
        "log_parameters": log_parameters,
        "n_plus_one_threshold": n_plus_one_threshold,
        "n_plus_one_strict": n_plus_one_strict,
        "detect_n_plus_one": detect_n_plus_one,
        "max_label_sets": max_label_sets,
        "log_interval_seconds": log_interval_seconds,
        "tracer_provider": tracer_provider,
        "statement_span_ratio": statement_span_ratio,
        "traceparent_comment": traceparent_comment,
        "explain_slow_queries": explain_slow_queries,
        "explain_interval": explain_interval,
    }
    wanted = pool_name or default_pool_name(sync)
    multiprocess.warn_if_misconfigured()  # e.g. the variable set after prometheus_client's import
    with _LOCK:
        existing = _INSTRUMENTED.get(sync)
        if existing is not None:
            get_logger("dbpulse.inprocess", pool_name=existing.pool_name).info(
                "engine already instrumented; returning the existing Instrumentation"
            )
            return existing
        try:
            metrics = metric_set(registry)
        except Exception as exc:  # noqa: BLE001 - e.g. the app already uses one of our names
            _embedding_problem(
                registry,
                "dbpulse: engine %s not instrumented, its registry refused the metrics: %s",
                wanted,
                redact(repr(exc)),
            )
            # Inert and unregistered: it only holds metrics in a private registry.
            return Instrumentation(
                sync, pool_name=wanted, metrics=MetricSet(CollectorRegistry()), **options
            )
        name = unique_name(metrics.pools.names(), wanted)
        if pool_name is not None and name != wanted:
            _embedding_problem(
                registry,
                "dbpulse: pool_name %r is already used in this registry; using %r",
                wanted,
                name,
            )
        inst = Instrumentation(sync, pool_name=name, metrics=metrics, **options)
        try:
            inst._install(sync)
        except Exception as exc:  # noqa: BLE001 - roll back; the app must keep working
            inst._remove()
            _embedding_problem(
                registry,
                "dbpulse: instrumenting %s failed, rolled back: %s",
                name,
                redact(repr(exc)),
            )
            return inst
        _INSTRUMENTED[sync] = inst
    if lint:
        try:
            _lint(inst, sync)
        except Exception as exc:  # noqa: BLE001 - a lint failure must not block startup
            inst._guard.failed("lint", exc)
    get_logger("dbpulse.inprocess", pool_name=name).info(
        "dbpulse instrumented engine", pool_class=type(sync.pool).__name__
    )
    return inst
