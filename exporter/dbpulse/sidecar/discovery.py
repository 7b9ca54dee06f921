"""Per-database collectors on every database of a server (``discovery``).

The target's database list (``databases.py``, shared with the zero-filling collectors)
is refreshed every ``discovery.interval``; each selected database gets its own poller and
one connection, reserved in the global connection budget. This module only decides what
to poll and owns those pollers; the runtime's database job calls ``tick``.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from dbpulse.logging import get_logger
from dbpulse.settings import Settings
from dbpulse.sidecar import collectors as collector_registry
from dbpulse.sidecar.allotment import split
from dbpulse.sidecar.base import Allotment, Collector
from dbpulse.sidecar.compact import Compacting
from dbpulse.sidecar.connection import ConnectionManager, Unavailable
from dbpulse.sidecar.databases import DatabaseList
from dbpulse.sidecar.poller import Observer, Poller, Schedule
from dbpulse.sidecar.snapshot import Snapshot
from dbpulse.sidecar.targets import Cadence, TargetSpec, database_dsn, select_databases

Connect = Callable[[str, str, int], ConnectionManager]


class _Database:
    """One discovered database: its own connection and poller for per-database collectors."""

    def __init__(self, poller: Poller, connections: ConnectionManager, keys: list[str]) -> None:
        self.poller = poller
        self.connections = connections
        self.keys = keys


class Discovery:
    """The databases of one target polled by its per-database collectors."""

    def __init__(
        self,
        spec: TargetSpec,
        settings: Settings,
        per_db: list[str],
        *,
        snapshot: Snapshot,
        server: ConnectionManager,
        database_list: DatabaseList,
        connect: Connect,
        reserve: Callable[[str], bool],
        release: Callable[[str], None],
        observer: Observer | None = None,
    ) -> None:
        self._spec = spec
        self._settings = settings
        self._per_db = per_db
        self._snapshot = snapshot
        self._server = server
        self._list = database_list
        self._connect = connect
        self._reserve = reserve
        self._release = release
        # Per-database collectors have facts for tracing too (regressions).
        self._observer = observer
        self.cadence = Cadence({"discovery": settings.discovery.interval})
        self.databases: dict[str, _Database] = {}
        self.skipped: list[str] = []
        self._log = get_logger(target=spec.name)

    def tick(self, now: float, closed: Callable[[], bool]) -> None:
        """Refresh the database list when due, then poll the databases that are due."""
        due = set(self.cadence.due(now))
        if "discovery" in due and self._discover(now):
            self.cadence.ran("discovery", now)
            due = set(self.cadence.ready(now))  # new databases are polled at once
        for database in list(self.databases.values()):
            for key in database.keys:
                if key in due and not closed():
                    self.cadence.ran(key, now)
                    database.poller.run_once(key)
            if closed():
                database.connections.close()

    def _discover(self, now: float) -> bool:
        interval = self._settings.discovery.interval
        try:
            if self._list.fresh(now, interval):
                found = self._list.names
            else:
                timeout = self._settings.collectors.database.timeout
                with self._server.transaction(timeout) as conn:
                    found = self._list.current(conn, now, interval)
        except (Unavailable, psycopg.Error) as exc:
            self._log.debug("database discovery failed", error=type(exc).__name__)
            return False
        discovery = self._settings.discovery
        wanted, skipped = select_databases(
            found, discovery.include, discovery.exclude, discovery.max_databases
        )
        for name in set(self.databases) - set(wanted):
            self._drop(name)
        for name in wanted:
            if name in self.databases:
                continue
            if not self._reserve(f"db:{name}"):
                skipped.append(name)
                continue
            self._add(name)
        if skipped != self.skipped:
            self._log.warning("databases not polled", count=len(skipped), databases=skipped[:10])
        self.skipped = skipped
        return True

    def _add(self, name: str) -> None:
        collectors: dict[str, Collector] = {}
        schedules: dict[str, Schedule] = {}
        for base in self._per_db:
            key = f"{base}@{name}"
            collectors[key] = Compacting(collector_registry.create(base, self._settings))
            schedules[key] = Schedule(
                self._settings.collector_interval(base),
                getattr(self._settings.collectors, base).timeout,
            )
            self._snapshot.add_collector(
                key, self._settings.collector_stale_after(base), counts_for_up=False
            )
            self.cadence.intervals[key] = schedules[key].interval
        connections = self._connect(
            database_dsn(self._spec.dsn, name), f"{self._spec.name}/{name}", 1
        )
        poller = Poller(
            collectors=collectors,
            schedules=schedules,
            connections=connections,
            snapshot=self._snapshot,
            database_list=False,
            observer=self._observer,
            allotment=self.allotment,
        )
        self.databases[name] = _Database(poller, connections, list(collectors))

    def allotment(self, key: str) -> Allotment | None:
        """This database's part of a budgeted collector's target-wide budget (``key`` is
        ``<collector>@<database>``), split by what every database last wanted."""
        base, _, name = key.partition("@")
        config = getattr(self._settings.collectors, base, None)
        top_n, max_series = getattr(config, "top_n", None), getattr(config, "max_series", None)
        if not isinstance(top_n, int) or not isinstance(max_series, int):
            return None  # not a budgeted collector
        wants = {
            other: getattr(database.poller.state(f"{base}@{other}"), "wants", None)
            for other, database in list(self.databases.items())
        }
        wants.setdefault(name, None)
        return split(top_n, max_series, wants)[name]

    def _drop(self, name: str) -> None:
        database = self.databases.pop(name)
        for key in database.keys:
            self._snapshot.remove_collector(key)
            self.cadence.intervals.pop(key, None)
        database.connections.close()
        self._release(f"db:{name}")

    def close(self) -> None:
        for database in self.databases.values():
            database.connections.close()
