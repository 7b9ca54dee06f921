"""The last good result of every collector, served to scrapes without touching the database.

What a scrape renders splits in two: ``cached`` (every family that only changes when a
poll is recorded, a collector is added or removed, or one crosses its stale_after; an
HTTP layer may keep its encoded body until ``generation()`` changes) and ``live``
(``dbpulse_snapshot_age_seconds``, which moves with the clock and is rendered per scrape).
Registering the snapshot itself serves both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse import __version__
from dbpulse.sidecar.base import BuildResult
from dbpulse.sidecar.gauges import gauge


@dataclass
class CollectorState:
    stale_after: float
    families: list[Metric] = field(default_factory=list)
    debug: Any = None
    success: bool = False
    duration: float = 0.0
    last_success: float | None = None
    last_attempt: float | None = None
    last_error: str = ""
    # False for per-database collectors of a discovered database: a database dropped
    # between discovery and its poll must not turn the server's pg_up to 0.
    counts_for_up: bool = True


class Snapshot:
    """Thread-safe store the poller writes and the HTTP server reads.

    Implements prometheus_client's custom-collector interface (``collect``), so it can
    be registered in a ``CollectorRegistry`` that the caller owns.
    """

    def __init__(
        self,
        target: str,
        stale_after: dict[str, float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self._clock = clock
        self._lock = threading.Lock()
        self._states = {name: CollectorState(stale_after=s) for name, s in stale_after.items()}
        self._up = False
        self._runs = 0  # collector runs recorded: postgres_exporter's pg_exporter_scrapes_total
        self._started = clock()
        self._last_reached: float | None = None
        # Bumped by every change to what the cached part renders, except staleness,
        # which generation() derives from the clock.
        self._version = 0
        self.cached = _Part(self, live=False)
        self.live = _Part(self, live=True)

    def record_success(self, name: str, result: BuildResult, duration: float) -> None:
        now = self._clock()
        with self._lock:
            state = self._states[name]
            state.families = result.families
            state.debug = result.debug
            state.success = True
            state.duration = duration
            state.last_success = state.last_attempt = now
            state.last_error = ""
            self._runs += 1
            if state.counts_for_up:
                self._up = True
                self._last_reached = now
            self._version += 1

    def record_failure(self, name: str, duration: float, error: str, *, reached: bool) -> None:
        """A failed run; ``reached`` says whether the database itself answered."""
        now = self._clock()
        with self._lock:
            state = self._states[name]
            state.success = False
            state.duration = duration
            state.last_attempt = now
            state.last_error = error
            self._runs += 1
            if state.counts_for_up:
                self._up = reached
                if reached:
                    self._last_reached = now
            self._version += 1

    def add_collector(self, name: str, stale_after: float, *, counts_for_up: bool = True) -> None:
        """Start tracking a collector that appeared after construction (a new database)."""
        with self._lock:
            if name not in self._states:
                self._states[name] = CollectorState(
                    stale_after=stale_after, counts_for_up=counts_for_up
                )
                self._version += 1

    def remove_collector(self, name: str) -> None:
        with self._lock:
            if self._states.pop(name, None) is not None:
                self._version += 1

    def generation(self) -> Hashable:
        """Changes whenever what ``cached`` renders changes; cheap enough for every scrape."""
        now = self._clock()
        with self._lock:
            fresh = tuple(name for name, state in self._states.items() if _fresh(state, now))
            return (self._version, fresh)

    @property
    def up(self) -> bool:
        with self._lock:
            return self._up

    def snapshot_age(self) -> float:
        with self._lock:
            since = self._last_reached if self._last_reached is not None else self._started
        return max(0.0, self._clock() - since)

    def readiness(self, stale_after: float) -> tuple[bool, str]:
        with self._lock:
            up = self._up
            failing = {n: s.last_error for n, s in self._states.items() if s.last_error}
        age = self.snapshot_age()
        if not up:
            detail = next(iter(failing.values()), "no poll has reached the database yet")
            return False, f"database not reachable: {detail}"
        if age > stale_after:
            return False, f"snapshot is stale: last poll reached the database {age:.0f}s ago"
        return True, "ok"

    def debug(self, name: str) -> Any:
        with self._lock:
            state = self._states.get(name)
            return None if state is None else state.debug

    def collector_names(self) -> list[str]:
        with self._lock:
            return list(self._states)

    def describe(self) -> list[Metric]:
        # An empty description keeps registration from calling collect() (which would
        # be harmless, but the registry should not depend on a poll having run).
        return []

    def collect(self) -> Iterator[Metric]:
        return self.families()

    def families(self, only: Callable[[str], bool] | None = None) -> Iterator[Metric]:
        """Every family, or with ``only`` those of the collectors it accepts (/probe)."""
        yield from self._families(only, cached=True, live=True)

    def _families(
        self, only: Callable[[str], bool] | None, *, cached: bool, live: bool
    ) -> Iterator[Metric]:
        if not cached:  # the live part, at every scrape: no copy of the collectors' states
            if live:
                yield self._age_family()
            return
        now = self._clock()
        with self._lock:
            states = {
                name: replace(state)
                for name, state in self._states.items()
                if only is None or only(name)
            }
            up = self._up
            runs = self._runs
        # postgres_exporter's names (its alerts and dashboards query them): pg_up without
        # labels (one target per page, /metrics or /probe; Prometheus adds ``instance``),
        # and its scrape health families, which here describe the background polls.
        yield gauge(
            "pg_up", "1 when the last poll connected to the target", [([], 1.0 if up else 0.0)]
        )
        attempted = [s for s in states.values() if s.last_attempt is not None]
        failed = not up or any(not s.success for s in attempted)
        yield gauge(
            "pg_exporter_last_scrape_error",
            "1 when the target was unreachable or a collector's last run failed",
            [([], 1.0 if failed else 0.0)],
        )
        yield gauge(
            "pg_exporter_last_scrape_duration_seconds",
            "wall time of the collectors' last runs, summed",
            [([], sum(s.duration for s in attempted))],
        )
        scrapes = CounterMetricFamily("pg_exporter_scrapes", "collector runs (polls) so far")
        scrapes.add_metric([], float(runs))
        yield scrapes
        yield gauge("dbpulse_build_info", "dbpulse version", [([__version__], 1.0)], ["version"])
        if live:
            yield self._age_family()
        yield gauge(
            "pg_scrape_collector_success",
            "1 when the collector's last run succeeded",
            [([n], 1.0 if s.success else 0.0) for n, s in states.items()],
            ["collector"],
        )
        yield gauge(
            "pg_scrape_collector_duration_seconds",
            "wall time of the collector's last run",
            [([n], s.duration) for n, s in states.items()],
            ["collector"],
        )
        for state in states.values():
            if _fresh(state, now):
                yield from state.families

    def _age_family(self) -> Metric:
        return gauge(
            "dbpulse_snapshot_age_seconds",
            "seconds since a poll last reached the database",
            [([], self.snapshot_age())],
        )


def _fresh(state: CollectorState, now: float) -> bool:
    return state.last_success is not None and now - state.last_success <= state.stale_after


class _Part:
    """The cached or the live part of a snapshot, as a prometheus_client collector."""

    def __init__(self, snapshot: Snapshot, *, live: bool) -> None:
        self._snapshot = snapshot
        self._live = live

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        return self._snapshot._families(None, cached=not self._live, live=self._live)
