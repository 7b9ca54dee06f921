"""One target's runtime: its connections, collectors, state, snapshot and poll lanes.

Every target is polled the same way, the sidecar's own ``dsn`` (a static target) and
every target probed through ``/probe`` alike. A target's server-wide collectors are
dealt round-robin into ``max_connections`` lanes; each lane is one scheduler job
(``scheduling.py``) that runs its due collectors in turn on one connection. So a target
occupies at most one worker thread per connection it may hold (a target that hangs in
connect cannot take the pool from the others), one collector never runs twice at once,
and each keeps its own interval, timeout and stale_after. With discovery, one more job
polls the per-database collectors of every discovered database (``discovery.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial

from prometheus_client.metrics_core import Metric

from dbpulse.settings import Settings
from dbpulse.sidecar import collectors as collector_registry
from dbpulse.sidecar.base import Collector
from dbpulse.sidecar.compact import Compacting
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.discovery import Discovery
from dbpulse.sidecar.gauges import gauge
from dbpulse.sidecar.poller import Observer, Poller, Schedule
from dbpulse.sidecar.probes import create_probes
from dbpulse.sidecar.snapshot import Snapshot
from dbpulse.sidecar.targets import PER_DATABASE, Cadence, TargetSpec

# A database job ticks at least this often so a failed discovery is retried soon.
DATABASE_TICK_MAX = 30.0


def server_collectors(
    settings: Settings, per_db: set[str], *, compact: bool, traced: bool | None = None
) -> tuple[dict[str, Collector], dict[str, Schedule], dict[str, float]]:
    """The target's server-wide collectors and probes, their schedules and stale_after.

    ``traced`` (default: telemetry enabled) says whether anything observes this target's
    polls: an untraced one (a probed target) skips the tracing collectors, which only the
    tracer reads.
    """
    collectors: dict[str, Collector] = {}
    schedules: dict[str, Schedule] = {}
    stale: dict[str, float] = {}
    for name, collector in collector_registry.create_enabled(settings, traced=traced).items():
        if name in per_db:
            continue
        config = collector_registry.settings_name(name)
        collectors[name] = Compacting(collector) if compact else collector
        schedules[name] = Schedule(
            settings.collector_interval(config), getattr(settings.collectors, config).timeout
        )
        stale[name] = settings.collector_stale_after(config)
    for probe in create_probes(settings):  # each probe is its own collector: probe:<name>
        collectors[probe.name] = Compacting(probe.collector) if compact else probe.collector
        schedules[probe.name] = Schedule(probe.interval, probe.timeout)
        stale[probe.name] = probe.stale_after
    return collectors, schedules, stale


def deal(names: list[str], connections: int) -> list[list[str]]:
    """Collectors dealt round-robin into one lane per connection (never an empty lane)."""
    if not names:
        return []
    lanes = max(1, min(connections, len(names)))
    return [names[i::lanes] for i in range(lanes)]


class TargetRuntime:
    """One target's connections, collectors, snapshot and cadence."""

    def __init__(
        self,
        spec: TargetSpec,
        settings: Settings,
        *,
        reserve: Callable[[str], bool] = lambda _sub: True,
        release: Callable[[str], None] = lambda _sub: None,
        observer: Observer | None = None,
        compact: bool = True,
    ) -> None:
        self.spec = spec
        self._settings = settings
        enabled = {n for n, c in settings.collectors.items() if c.enabled}
        per_db = sorted(PER_DATABASE & enabled) if spec.discovery else []
        collectors, schedules, stale = server_collectors(
            settings, set(per_db), compact=compact, traced=observer is not None
        )
        self.snapshot = Snapshot(spec.name, stale)
        self.connections = self.connect(spec.dsn, spec.name, spec.max_connections)
        self.poller = Poller(
            collectors=collectors,
            schedules=schedules,
            connections=self.connections,
            snapshot=self.snapshot,
            observer=observer,
        )
        self.lanes = [
            Cadence({n: schedules[n].interval for n in lane})
            for lane in deal(list(collectors), spec.max_connections)
        ]
        self.discovery: Discovery | None = None
        self.db_tick = DATABASE_TICK_MAX
        if per_db and self.poller.databases is not None:
            self.discovery = Discovery(
                spec,
                settings,
                per_db,
                snapshot=self.snapshot,
                server=self.connections,
                database_list=self.poller.databases,
                connect=self.connect,
                reserve=reserve,
                release=release,
                observer=observer,
            )
            self.db_tick = min(
                DATABASE_TICK_MAX,
                settings.discovery.interval,
                *(settings.collector_interval(n) for n in per_db),
            )
        self.first_poll = threading.Event()
        if not self.lanes:  # nothing server-wide to poll: nothing to wait for
            self.first_poll.set()
        self._lanes_done: set[int] = set()
        self.closed = False

    @property
    def discovers(self) -> bool:
        return self.discovery is not None

    def connect(self, dsn: str, name: str, max_connections: int) -> ConnectionManager:
        return ConnectionManager(
            dsn,
            target=name,
            max_connections=max_connections,
            connect_timeout=self._settings.connect_timeout,
            lock_timeout=self._settings.lock_timeout,
            # Collectors of one lane take turns; waiting longer than a connect would
            # only pile up threads behind a target that is slow to answer.
            acquire_timeout=self._settings.connect_timeout,
        )

    def jobs(self) -> list[tuple[Callable[[], None], float]]:
        """(function, period) of every scheduler job this target needs."""
        found: list[tuple[Callable[[], None], float]] = [
            (partial(self.tick, i), lane.tick) for i, lane in enumerate(self.lanes)
        ]
        if self.discovery is not None:
            found.append((self.tick_databases, self.db_tick))
        return found

    def tick(self, lane: int = 0) -> None:
        """Run the lane's server-wide collectors that are due (a scheduler job)."""
        cadence = self.lanes[lane]
        now = time.time()
        for name in cadence.due(now):
            if self.closed:
                break
            cadence.ran(name, now)
            self.poller.run_once(name)
        self._lanes_done.add(lane)
        if len(self._lanes_done) == len(self.lanes):
            self.first_poll.set()
        if self.closed:
            self.connections.close()

    def tick_databases(self) -> None:
        """Refresh the database list when due, then poll the databases that are due."""
        if self.discovery is not None:
            self.discovery.tick(time.time(), lambda: self.closed)

    @property
    def lag(self) -> float:
        """How late the latest round of any of this target's jobs started."""
        cadences = [*self.lanes, *([self.discovery.cadence] if self.discovery else [])]
        return max((c.lag for c in cadences), default=0.0)

    def extra_families(self) -> Iterator[Metric]:
        """The target's families beside its snapshot's, on its /probe page."""
        yield gauge(
            "dbpulse_poll_lag_seconds",
            "how late this target's last poll round started",
            [([], self.lag)],
        )
        if self.discovery is not None:
            yield gauge(
                "dbpulse_discovery_databases",
                "databases found by discovery: polled, or skipped (over max_databases or budget)",
                [
                    (["polled"], len(self.discovery.databases)),
                    (["skipped"], len(self.discovery.skipped)),
                ],
                ["state"],
            )

    def begin_close(self) -> None:
        """Jobs stop between collectors; a queued poll fails fast instead of connecting."""
        self.closed = True
        self.connections.begin_close()
        self.first_poll.set()  # a /probe waiting for the first poll answers now

    def interrupt(self, cut_after: float) -> None:
        """Shutdown: end the polls in flight (``ConnectionManager.interrupt``)."""
        self.begin_close()
        managers = [self.connections]
        if self.discovery is not None:
            managers += [db.connections for db in list(self.discovery.databases.values())]
        for manager in managers:
            manager.interrupt(cut_after)

    def close(self) -> None:
        """Close idle connections now; a job still running closes its own when it ends."""
        self.closed = True
        self.connections.close()
        if self.discovery is not None:
            self.discovery.close()
