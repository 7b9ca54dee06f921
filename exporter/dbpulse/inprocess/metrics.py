"""The in-process metric set: one per registry, shared by every engine registered in it.

prometheus_client refuses a second metric with the same name in one registry, so two
instrumented engines cannot each create their own; they share these objects and tell
their series apart by ``pool_name``. Pool gauges are not stored values at all: a
collector reads each live pool at scrape time, so they always agree with
``pool.status()``. In prometheus_client's multiprocess mode a scrape cannot read other
processes' pools, so the set holds stored gauges instead (``poolgauges``).
"""
# layout-note: one table, every in-process family declared once (names, help, buckets)

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from dbpulse import multiprocess
from dbpulse.inprocess.poolgauges import PoolGauges

__all__ = ["MetricSet", "PoolReading", "metric_set"]

# Statement latencies: sub-millisecond SQLite up to multi-second reports.
OPERATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Connection hold times run longer than statements (a request, a batch job).
USE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0)
CREATE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
TRANSACTION_BUCKETS = (*OPERATION_BUCKETS, 30.0, 60.0)
REQUEST_QUERY_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500)


@dataclass(frozen=True, slots=True)
class PoolReading:
    """A pool's state at one instant, as the gauges export it."""

    idle: int
    used: int
    max: float
    overflow: int
    pending: int


class _PoolCollector(Collector):
    """Reads every registered pool when scraped; nothing is cached between scrapes."""

    def __init__(self) -> None:
        self._readers: dict[str, Callable[[], PoolReading | None]] = {}
        self._lock = threading.Lock()

    def add(self, pool_name: str, reader: Callable[[], PoolReading | None]) -> None:
        with self._lock:
            self._readers[pool_name] = reader

    def remove(self, pool_name: str) -> None:
        with self._lock:
            self._readers.pop(pool_name, None)

    def names(self) -> set[str]:
        """Pool names in use, dropping those whose engine was garbage collected."""
        with self._lock:
            readers = list(self._readers.items())
        live = set()
        for name, reader in readers:
            if reader() is None:
                self.remove(name)
            else:
                live.add(name)
        return live

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = GaugeMetricFamily(
            "db_client_connection_count",
            "Connections in the pool by state (idle, used)",
            labels=["pool_name", "state"],
        )
        maximum = GaugeMetricFamily(
            "db_client_connection_max",
            "Most connections the pool may open (pool_size + max_overflow)",
            labels=["pool_name"],
        )
        overflow = GaugeMetricFamily(
            "db_client_connection_overflow",
            "Overflow connections open beyond pool_size (never negative)",
            labels=["pool_name"],
        )
        pending = GaugeMetricFamily(
            "db_client_connection_pending_requests",
            "Callers waiting for a connection right now",
            labels=["pool_name"],
        )
        with self._lock:
            readers = list(self._readers.items())
        for name, reader in readers:
            reading = reader()
            if reading is None:
                continue
            count.add_metric([name, "idle"], reading.idle)
            count.add_metric([name, "used"], reading.used)
            maximum.add_metric([name], reading.max)
            overflow.add_metric([name], reading.overflow)
            pending.add_metric([name], reading.pending)
        yield from (count, maximum, overflow, pending)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Describing with no samples keeps registration cheap and lets the registry
        # detect a name clash with another collector up front.
        yield GaugeMetricFamily("db_client_connection_count", "", labels=["pool_name", "state"])
        yield GaugeMetricFamily("db_client_connection_max", "", labels=["pool_name"])
        yield GaugeMetricFamily("db_client_connection_overflow", "", labels=["pool_name"])
        yield GaugeMetricFamily("db_client_connection_pending_requests", "", labels=["pool_name"])


@dataclass
class MetricSet:
    """Every in-process metric, registered once in ``registry``."""

    registry: CollectorRegistry
    pools: _PoolCollector = field(init=False)
    # Multiprocess mode only: the pool families as stored gauges, written by each worker
    # (``pools`` then keeps the readers but is not registered).
    pool_gauges: PoolGauges | None = field(init=False)
    timeouts: Counter = field(init=False)
    wait_time: Histogram = field(init=False)
    use_time: Histogram = field(init=False)
    create_time: Histogram = field(init=False)
    invalidations: Counter = field(init=False)
    operation_duration: Histogram = field(init=False)
    operation_errors: Counter = field(init=False)
    slow_queries: Counter = field(init=False)
    transaction_duration: Histogram = field(init=False)
    n_plus_one: Counter = field(init=False)
    request_queries: Histogram = field(init=False)
    pool_config: Gauge = field(init=False)
    hook_errors: Counter = field(init=False)

    def __post_init__(self) -> None:
        # Every metric is made unregistered, then all are registered or none: a registry
        # already holding one of these names must be left exactly as it was.
        pool = ["pool_name"]
        self.pools = _PoolCollector()
        self.pool_gauges = PoolGauges() if multiprocess.enabled() else None
        self.timeouts = Counter(
            "db_client_connection_timeouts",
            "Checkouts that gave up after pool_timeout",
            pool,
            registry=None,
        )
        self.wait_time = Histogram(
            "db_client_connection_wait_time_seconds",
            "Time to obtain a connection from the pool",
            pool,
            buckets=WAIT_BUCKETS,
            registry=None,
        )
        self.use_time = Histogram(
            "db_client_connection_use_time_seconds",
            "Time between checkout and checkin of a connection",
            pool,
            buckets=USE_BUCKETS,
            registry=None,
        )
        self.create_time = Histogram(
            "db_client_connection_create_time_seconds",
            "Time to open a new DBAPI connection",
            pool,
            buckets=CREATE_BUCKETS,
            registry=None,
        )
        self.invalidations = Counter(
            "db_client_connection_invalidations",
            "Connections invalidated (disconnects, explicit invalidate())",
            pool,
            registry=None,
        )
        self.operation_duration = Histogram(
            "db_client_operation_duration_seconds",
            "Statement execution time by operation and main table",
            ["pool_name", "db_operation_name", "db_collection_name"],
            buckets=OPERATION_BUCKETS,
            registry=None,
        )
        self.operation_errors = Counter(
            "db_client_operation_errors",
            "Statements that raised, by DBAPI error class",
            ["pool_name", "db_operation_name", "error_type"],
            registry=None,
        )
        self.slow_queries = Counter(
            "db_client_slow_queries",
            "Statements slower than slow_query_seconds",
            ["pool_name", "db_operation_name", "db_collection_name"],
            registry=None,
        )
        self.transaction_duration = Histogram(
            "db_client_transaction_duration_seconds",
            "Time from BEGIN to COMMIT or ROLLBACK (savepoints do not end it)",
            ["pool_name", "outcome"],
            buckets=TRANSACTION_BUCKETS,
            registry=None,
        )
        self.n_plus_one = Counter(
            "db_client_n_plus_one",
            "N+1 query patterns detected (once per unit of work and statement)",
            ["pool_name", "db_collection_name"],
            registry=None,
        )
        self.request_queries = Histogram(
            "db_client_request_queries",
            "Statements issued per request (middleware scope)",
            buckets=REQUEST_QUERY_BUCKETS,
            registry=None,
        )
        self.pool_config = Gauge(
            "db_client_pool_config_info",
            "Pool configuration at instrument() time (value is always 1)",
            ["pool_name", "pool_class", "size", "max_overflow", "timeout", "pre_ping", "recycle"],
            registry=None,
            # Multiprocess mode: every worker sets 1 for the same labels; livemax shows it
            # once, without a pid label, while any worker with that pool lives.
            multiprocess_mode="livemax",
        )
        # A failure counter made earlier for this registry (instrument() failed) is kept.
        standalone = _FAILURE_COUNTERS.get(self.registry)
        self.hook_errors = standalone if standalone is not None else _hook_errors()
        made: list[Collector] = (
            list(self.pool_gauges.gauges()) if self.pool_gauges is not None else [self.pools]
        )
        made += [v for k, v in vars(self).items() if k not in {"registry", "pools", "pool_gauges"}]
        _register_all(self.registry, [c for c in made if c is not standalone])


def _hook_errors(registry: CollectorRegistry | None = None) -> Counter:
    return Counter(
        "dbpulse_instrumentation_errors",
        "Internal failures inside dbpulse hooks (the application never sees them)",
        ["hook"],
        registry=registry,
    )


def _register_all(registry: CollectorRegistry, collectors: list[Collector]) -> None:
    done: list[Collector] = []
    try:
        for collector in collectors:
            registry.register(collector)
            done.append(collector)
    except Exception:
        for collector in done:
            registry.unregister(collector)
        raise


_SETS: weakref.WeakKeyDictionary[CollectorRegistry, MetricSet] = weakref.WeakKeyDictionary()
_FAILURE_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = (
    weakref.WeakKeyDictionary()
)
_SETS_LOCK = threading.Lock()


def failure_counter(registry: CollectorRegistry | None = None) -> Counter | None:
    """``dbpulse_instrumentation_errors`` of ``registry``, even when no metric set fits it.

    None when the registry cannot take even that one name.
    """
    reg = registry if registry is not None else REGISTRY
    with _SETS_LOCK:
        found = _SETS.get(reg)
        if found is not None:
            return found.hook_errors
        counter = _FAILURE_COUNTERS.get(reg)
        if counter is None:
            try:
                counter = _hook_errors(reg)
            except ValueError:  # the name is taken too: the log line must do
                return None
            _FAILURE_COUNTERS[reg] = counter
        return counter


def metric_set(registry: CollectorRegistry | None = None) -> MetricSet:
    """The metric set of ``registry`` (default: the global one), created on first use."""
    reg = registry if registry is not None else REGISTRY
    with _SETS_LOCK:
        found = _SETS.get(reg)
        if found is None:
            found = MetricSet(reg)
            _SETS[reg] = found
        return found
