"""Many targets in one process: a poller and snapshot per probed target, one shared pool.

``/probe?target=NAME`` finds (or creates) the target's runtime and renders its snapshot,
so a probe never waits on a database; only the first probe of a new target waits up to
``first_probe_wait`` for the first poll. Every target is one scheduler job (plus one for
its discovered databases) on a shared ``workers``-thread pool, and runs its due collectors
in turn on its own connections: a dead target occupies at most one thread per job, for
``connect_timeout``, and then fails fast under its connection backoff.
"""

from __future__ import annotations

import itertools
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from dbpulse import __version__
from dbpulse.logging import get_logger
from dbpulse.settings import COLLECTOR_NAMES, Settings
from dbpulse.sidecar import collectors as collector_registry
from dbpulse.sidecar.base import Collector, query
from dbpulse.sidecar.compact import Compacting
from dbpulse.sidecar.connection import ConnectionManager, Unavailable
from dbpulse.sidecar.poller import Poller, Schedule
from dbpulse.sidecar.probes import create_probes
from dbpulse.sidecar.snapshot import Snapshot
from dbpulse.sidecar.targets import (
    PER_DATABASE,
    Budget,
    Cadence,
    TargetRegistry,
    TargetSpec,
    UnknownTarget,
    database_dsn,
    resolve,
    select_databases,
)

SQL_DATABASES = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
TEXT = "text/plain; charset=utf-8"
# A database job ticks at least this often so a failed discovery is retried soon.
DATABASE_TICK_MAX = 30.0

ProbeAnswer = tuple[int, bytes, str]


class _Database:
    """One discovered database: its own connection and poller for per-database collectors."""

    def __init__(self, poller: Poller, connections: ConnectionManager, keys: list[str]) -> None:
        self.poller = poller
        self.connections = connections
        self.keys = keys


class TargetRuntime:
    """One target's connections, collectors, snapshot and cadence."""

    def __init__(
        self,
        spec: TargetSpec,
        settings: Settings,
        reserve: Callable[[str], bool],
        release: Callable[[str], None],
    ) -> None:
        self.spec = spec
        self._settings = settings
        self._reserve = reserve
        self._release = release
        enabled = collector_registry.create_enabled(settings)
        self._per_db = sorted(PER_DATABASE & set(enabled)) if spec.discovery else []
        server: dict[str, Collector] = {
            n: Compacting(c) for n, c in enabled.items() if n not in self._per_db
        }
        schedules = {
            n: Schedule(settings.collector_interval(n), getattr(settings.collectors, n).timeout)
            for n in server
        }
        stale = {n: settings.collector_stale_after(n) for n in server}
        for probe in create_probes(settings):
            server[probe.name] = Compacting(probe.collector)
            schedules[probe.name] = Schedule(probe.interval, probe.timeout)
            stale[probe.name] = probe.stale_after
        self.snapshot = Snapshot(spec.name, stale)
        self.connections = self._manager(spec.dsn, spec.name, spec.max_connections)
        self.poller = Poller(
            collectors=server,
            schedules=schedules,
            connections=self.connections,
            snapshot=self.snapshot,
        )
        self.cadence = Cadence({n: s.interval for n, s in schedules.items()})
        db_intervals = {"discovery": settings.discovery.interval}
        self.db_cadence = Cadence(db_intervals)
        self.db_tick = min(
            DATABASE_TICK_MAX,
            settings.discovery.interval,
            *(settings.collector_interval(n) for n in self._per_db),
        )
        self.databases: dict[str, _Database] = {}
        self.skipped: list[str] = []
        self.first_poll = threading.Event()
        self.closed = False
        self._log = get_logger(target=spec.name)

    @property
    def discovers(self) -> bool:
        return bool(self._per_db)

    def _manager(self, dsn: str, name: str, max_connections: int) -> ConnectionManager:
        return ConnectionManager(
            dsn,
            target=name,
            max_connections=max_connections,
            connect_timeout=self._settings.connect_timeout,
            lock_timeout=self._settings.lock_timeout,
            # Collectors of one target take turns; waiting longer than a connect would
            # only pile up threads behind a target that is slow to answer.
            acquire_timeout=self._settings.connect_timeout,
        )

    def tick(self) -> None:
        """Run the server-wide collectors that are due (a scheduler job)."""
        now = time.time()
        for name in self.cadence.due(now):
            if self.closed:
                break
            self.cadence.ran(name, now)
            self.poller.run_once(name)
        self.first_poll.set()
        if self.closed:
            self.connections.close()

    def tick_databases(self) -> None:
        """Refresh the database list when due, then poll the databases that are due."""
        now = time.time()
        due = set(self.db_cadence.due(now))
        if "discovery" in due and self._discover():
            self.db_cadence.ran("discovery", now)
            due = set(self.db_cadence.ready(now))  # new databases are polled at once
        for database in list(self.databases.values()):
            for key in database.keys:
                if key in due and not self.closed:
                    self.db_cadence.ran(key, now)
                    database.poller.run_once(key)
            if self.closed:
                database.connections.close()

    def _discover(self) -> bool:
        try:
            with self.connections.transaction(self._settings.collectors.database.timeout) as conn:
                rows = query(conn, SQL_DATABASES)
        except (Unavailable, psycopg.Error) as exc:
            self._log.debug("database discovery failed", error=type(exc).__name__)
            return False
        found = [str(row["datname"]) for row in rows]
        discovery = self._settings.discovery
        wanted, skipped = select_databases(
            found, discovery.include, discovery.exclude, discovery.max_databases
        )
        for name in set(self.databases) - set(wanted):
            self._drop_database(name)
        for name in wanted:
            if name in self.databases:
                continue
            if not self._reserve(f"db:{name}"):
                skipped.append(name)
                continue
            self._add_database(name)
        if skipped != self.skipped:
            self._log.warning("databases not polled", count=len(skipped), databases=skipped[:10])
        self.skipped = skipped
        return True

    def _add_database(self, name: str) -> None:
        collectors: dict[str, Collector] = {}
        schedules: dict[str, Schedule] = {}
        for base in self._per_db:
            key = f"{base}@{name}"
            collectors[key] = Compacting(collector_registry.create(base, self._settings))
            schedules[key] = Schedule(
                self._settings.collector_interval(base),
                getattr(self._settings.collectors, base).timeout,
            )
            self.snapshot.add_collector(
                key, self._settings.collector_stale_after(base), counts_for_up=False
            )
            self.db_cadence.intervals[key] = schedules[key].interval
        connections = self._manager(
            database_dsn(self.spec.dsn, name), f"{self.spec.name}/{name}", 1
        )
        poller = Poller(
            collectors=collectors,
            schedules=schedules,
            connections=connections,
            snapshot=self.snapshot,
        )
        self.databases[name] = _Database(poller, connections, list(collectors))

    def _drop_database(self, name: str) -> None:
        database = self.databases.pop(name)
        for key in database.keys:
            self.snapshot.remove_collector(key)
            self.db_cadence.intervals.pop(key, None)
        database.connections.close()
        self._release(f"db:{name}")

    def extra_families(self) -> Iterator[Metric]:
        yield _gauge(
            "dbpulse_poll_lag_seconds",
            "how late this target's last poll round started",
            [([], max(self.cadence.lag, self.db_cadence.lag))],
        )
        if self.discovers:
            family = GaugeMetricFamily(
                "dbpulse_discovery_databases",
                "databases found by discovery: polled, or skipped (over max_databases or budget)",
                labels=["state"],
            )
            family.add_metric(["polled"], float(len(self.databases)))
            family.add_metric(["skipped"], float(len(self.skipped)))
            yield family

    def close(self) -> None:
        """Close idle connections now; a job still running closes its own when it ends."""
        self.closed = True
        self.connections.close()
        for database in self.databases.values():
            database.connections.close()


class BudgetExhausted(Exception):
    """A new target does not fit in max_connections_total."""


class _View:
    """One probe's output: a target's snapshot, optionally restricted to some collectors."""

    def __init__(self, runtime: TargetRuntime, only: Callable[[str], bool] | None) -> None:
        self._runtime = runtime
        self._only = only

    def collect(self) -> Iterator[Metric]:
        yield from merge_families(
            [*self._runtime.snapshot.families(self._only), *self._runtime.extra_families()]
        )


def merge_families(families: list[Metric]) -> list[Metric]:
    """One family per name: each discovered database's collector yields the same names,
    and a second HELP/TYPE for a name makes Prometheus reject the whole scrape."""
    merged: dict[str, Metric] = {}
    for family in families:
        seen = merged.get(family.name)
        if seen is None:
            merged[family.name] = family
            continue
        if seen.type != family.type:
            continue  # cannot happen for one collector's families; never corrupt a scrape
        # Snapshot families are shared with other probes: build a new one, never extend.
        combined = Metric(seen.name, seen.documentation, seen.type, seen.unit)
        combined.samples = [*seen.samples, *family.samples]
        merged[family.name] = combined
    return list(merged.values())


class MultiTarget:
    """The targets probed recently, their shared scheduler, and the connection budget."""

    # Off when a single-target snapshot in the same registry already exports it.
    build_info = True

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._registry = TargetRegistry(settings.targets_idle_timeout)
        self._budget = Budget(settings.max_connections_total)
        self._runtimes: dict[str, TargetRuntime] = {}
        self._job_ids: dict[str, list[str]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._log = get_logger()
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=settings.workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone="UTC",
        )
        self._collector_names = {*COLLECTOR_NAMES, *(p.name for p in create_probes(settings))}

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        sweep = max(1.0, min(60.0, self._settings.targets_idle_timeout / 2))
        self._scheduler.add_job(self.sweep, "interval", seconds=sweep, id="sweep")
        self._scheduler.start()

    def stop(self) -> None:
        with self._lock:
            closing = list(self._runtimes.values())
        for runtime in closing:  # jobs see closed and stop between collectors
            runtime.closed = True
            runtime.connections.begin_close()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        with self._lock:
            runtimes, self._runtimes = list(self._runtimes.values()), {}
        for runtime in runtimes:
            runtime.close()

    def sweep(self) -> list[str]:
        """Drop targets not probed for targets_idle_timeout; returns their names."""
        dropped = []
        with self._lock:
            for key in self._registry.idle(self._clock()):
                runtime = self._runtimes.pop(key)
                for job_id in self._job_ids.pop(key, []):
                    if self._scheduler.get_job(job_id) is not None:
                        self._scheduler.remove_job(job_id)
                self._registry.forget(key)
                self._budget.release_prefix(f"{key}\x00")
                runtime.close()
                dropped.append(runtime.spec.name)
        for name in dropped:
            self._log.info("target dropped after idle timeout", target=name)
        return dropped

    # -- probing -------------------------------------------------------------------

    def probe(self, params: dict[str, list[str]]) -> ProbeAnswer:
        """Answer /probe: (status, body, content type). Never raises for user input."""
        targets = params.get("target", [])
        if len(targets) != 1 or not targets[0]:
            return 400, b"exactly one target= parameter is required\n", TEXT
        only, problem = self._collector_filter(params.get("collectors", []))
        if problem:
            return 400, problem.encode() + b"\n", TEXT
        try:
            runtime, new = self._runtime(targets[0])
        except UnknownTarget as exc:
            return 404, f"{exc}\n".encode(), TEXT
        except BudgetExhausted as exc:
            return 503, f"{exc}\n".encode(), TEXT
        except OSError as exc:
            self._log.error("cannot read password_file", reason=exc.strerror)
            return 503, b"cannot read password_file (see the dbpulse log)\n", TEXT
        if new:
            runtime.first_poll.wait(self._settings.first_probe_wait)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_View(runtime, only))
        return 200, generate_latest(registry), CONTENT_TYPE_LATEST

    def _collector_filter(
        self, values: list[str]
    ) -> tuple[Callable[[str], bool] | None, str | None]:
        wanted = {name.strip() for value in values for name in value.split(",") if name.strip()}
        if not wanted:
            return None, None
        unknown = sorted(wanted - self._collector_names)
        if unknown:
            have = ", ".join(sorted(self._collector_names))
            return None, f"unknown collectors: {', '.join(unknown)}; have: {have}"
        return (lambda name: name.split("@", 1)[0] in wanted), None

    def _runtime(self, key: str) -> tuple[TargetRuntime, bool]:
        now = self._clock()
        with self._lock:
            runtime = self._runtimes.get(key)
            if runtime is not None:
                self._registry.touch(key, now)
                return runtime, False
            spec = resolve(self._settings, key, self._password())
            if not self._budget.reserve(f"{key}\x00server", spec.max_connections):
                raise BudgetExhausted(
                    f"connection budget exhausted: max_connections_total="
                    f"{self._budget.total} held by {len(self._runtimes)} targets"
                )
            runtime = TargetRuntime(
                spec,
                self._settings,
                reserve=lambda sub: self._reserve(key, sub),
                release=lambda sub: self._release(key, sub),
            )
            self._runtimes[key] = runtime
            self._registry.touch(key, now)
            self._job_ids[key] = self._schedule(runtime)
        self._log.info("target added", target=spec.name, discovery=runtime.discovers)
        return runtime, True

    def _reserve(self, key: str, sub: str) -> bool:
        with self._lock:
            return self._budget.reserve(f"{key}\x00{sub}", 1)

    def _release(self, key: str, sub: str) -> None:
        with self._lock:
            self._budget.release(f"{key}\x00{sub}")

    def _schedule(self, runtime: TargetRuntime) -> list[str]:
        # Job ids are counters, never the key: with allow_dsn_in_url the key is a DSN.
        jobs = [(runtime.tick, runtime.cadence.tick)]
        if runtime.discovers:
            jobs.append((runtime.tick_databases, runtime.db_tick))
        ids = []
        now = datetime.now(UTC)
        for func, seconds in jobs:
            job_id = f"target-{next(self._ids)}"
            self._scheduler.add_job(
                func,
                "interval",
                id=job_id,
                name=f"poll {runtime.spec.name}",
                seconds=seconds,
                # First poll now; later rounds at a phase fixed by the name, so targets
                # added together (a restart, one Prometheus round) do not poll in a burst.
                next_run_time=now,
                start_date=now + timedelta(seconds=spread(runtime.spec.name, seconds)),
                misfire_grace_time=max(1, int(seconds)),
            )
            ids.append(job_id)
        return ids

    def _password(self) -> str | None:
        path: Path | None = self._settings.password_file
        if path is None:
            return None
        lines = path.read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else None

    # -- self metrics (/metrics in multi-target mode) ---------------------------------

    def readiness(self) -> tuple[bool, str]:
        with self._lock:
            active = len(self._runtimes)
        return True, f"ok: {active} active of {len(self._settings.targets)} configured targets"

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            runtimes = list(self._runtimes.values())
            used = self._budget.used
        lag = max((max(r.cadence.lag, r.db_cadence.lag) for r in runtimes), default=0.0)
        if self.build_info:
            yield _gauge(
                "dbpulse_build_info", "dbpulse version", [([__version__], 1.0)], ["version"]
            )
        yield _gauge("dbpulse_targets_active", "targets with a live poller", [([], len(runtimes))])
        yield _gauge(
            "dbpulse_targets_connections",
            "connections reserved by targets, and the max_connections_total budget",
            [(["reserved"], used), (["budget"], self._budget.total)],
            ["state"],
        )
        yield _gauge(
            "dbpulse_targets_poll_lag_max_seconds",
            "how late the latest poll round started, worst target (polls falling behind)",
            [([], lag)],
        )
        yield _gauge(
            "dbpulse_targets_up",
            "active targets whose last poll connected",
            [([], sum(1 for r in runtimes if r.snapshot.up))],
        )


def spread(name: str, period: float) -> float:
    """A stable offset in [0, period) for the name (crc32: the same across restarts)."""
    return (zlib.crc32(name.encode()) / 2**32) * period


def _gauge(
    name: str,
    doc: str,
    samples: list[tuple[list[str], float]],
    labels: list[str] | None = None,
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels or [])
    for values, value in samples:
        family.add_metric(values, float(value))
    return family
