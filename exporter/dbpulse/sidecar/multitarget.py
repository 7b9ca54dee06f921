"""Many targets in one process: the targets probed recently, and the connection budget.

``/probe?target=NAME`` finds (or creates) the target's runtime (``runtime.py``) and
renders its snapshot (``probing.py``), so a probe never waits on a database; only the
first probe of a new target waits up to ``first_probe_wait`` for the first poll. Each
target's jobs run on the process's one scheduler (``scheduling.py``); targets not probed
for ``targets_idle_timeout`` are dropped by a periodic sweep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.metrics_core import Metric

from dbpulse import __version__
from dbpulse.logging import get_logger
from dbpulse.settings import COLLECTOR_NAMES, Settings
from dbpulse.sidecar.gauges import gauge
from dbpulse.sidecar.probes import create_probes
from dbpulse.sidecar.probing import (
    ProbeAnswer,
    bad_request,
    collector_filter,
    merge_families,
    not_found,
    render,
    unavailable,
)
from dbpulse.sidecar.runtime import TargetRuntime
from dbpulse.sidecar.scheduling import Scheduler
from dbpulse.sidecar.targets import Budget, TargetRegistry, UnknownTarget, resolve

__all__ = ["BudgetExhausted", "MultiTarget", "merge_families", "read_password"]


class BudgetExhausted(Exception):
    """A new target does not fit in max_connections_total."""


def read_password(path: Path | None) -> str | None:
    """The first line of password_file (the file is read per new target: rotation works)."""
    if path is None:
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0] if lines else None


class MultiTarget:
    """The targets probed recently, their jobs, and the connection budget."""

    # Off when a single-target snapshot in the same registry already exports it.
    build_info = True

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        *,
        scheduler: Scheduler | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._registry = TargetRegistry(settings.targets_idle_timeout)
        self._budget = Budget(settings.max_connections_total)
        # DSNs from /probe's URL draw from their own budget: junk DSNs cannot starve
        # the configured targets (they only fill this one, then get 503).
        self._url_budget = Budget(settings.dsn_in_url_max_connections)
        self._budgets: dict[str, Budget] = {}
        self._runtimes: dict[str, TargetRuntime] = {}
        self._job_ids: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._closing = False  # shutting down: no new target (and no new connection)
        self._log = get_logger()
        # Without a scheduler handed in (the sidecar's), this instance owns its own.
        self._owns_scheduler = scheduler is None
        self._scheduler = scheduler or Scheduler(workers=settings.workers)
        self._collector_names = {*COLLECTOR_NAMES, *(p.name for p in create_probes(settings))}

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        sweep = max(1.0, min(60.0, self._settings.targets_idle_timeout / 2))
        self._scheduler.add_periodic(self.sweep, sweep, "sweep")
        if self._owns_scheduler:
            self._scheduler.start()

    def begin_close(self) -> None:
        """Jobs see closed and stop between collectors; queued polls fail fast."""
        with self._lock:
            self._closing = True
            closing = list(self._runtimes.values())
        for runtime in closing:
            runtime.begin_close()

    def interrupt(self, cut_after: float) -> None:
        """Shutdown: every target's polls in flight end (``TargetRuntime.interrupt``)."""
        with self._lock:
            self._closing = True
            closing = list(self._runtimes.values())
        for runtime in closing:
            runtime.interrupt(cut_after)

    def stop(self) -> None:
        self.begin_close()
        if self._owns_scheduler:
            self._scheduler.shutdown()
        self.close()

    def close(self) -> None:
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
                self._scheduler.remove(self._job_ids.pop(key, []))
                self._registry.forget(key)
                self._budgets.pop(key, self._budget).release_prefix(f"{key}\x00")
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
            return bad_request("exactly one target= parameter is required")
        only, problem = collector_filter(params.get("collectors", []), self._collector_names)
        if problem:
            return bad_request(problem)
        try:
            runtime, new = self._runtime(targets[0])
        except UnknownTarget as exc:
            return not_found(str(exc))
        except BudgetExhausted as exc:
            return unavailable(str(exc))
        except OSError as exc:
            self._log.error("cannot read password_file", reason=exc.strerror)
            return unavailable("cannot read password_file (see the dbpulse log)")
        if new:
            runtime.first_poll.wait(self._settings.first_probe_wait)
        return render(runtime, only)

    def _runtime(self, key: str) -> tuple[TargetRuntime, bool]:
        now = self._clock()
        with self._lock:
            runtime = self._runtimes.get(key)
            if runtime is not None:
                self._registry.touch(key, now)
                return runtime, False
            if self._closing:
                raise BudgetExhausted("shutting down")
            spec = resolve(self._settings, key, read_password(self._settings.password_file))
            budget = self._url_budget if spec.from_url else self._budget
            if not budget.reserve(f"{key}\x00server", spec.max_connections):
                raise BudgetExhausted(self._exhausted(spec.from_url))
            self._budgets[key] = budget
            runtime = TargetRuntime(
                spec,
                self._settings,
                reserve=lambda sub: self._reserve(key, sub),
                release=lambda sub: self._release(key, sub),
            )
            self._runtimes[key] = runtime
            self._registry.touch(key, now)
            self._job_ids[key] = self._scheduler.add_target(runtime)
        self._log.info("target added", target=spec.name, discovery=runtime.discovers)
        return runtime, True

    def _exhausted(self, from_url: bool) -> str:
        if from_url:
            return (
                "connection budget for DSNs in the URL exhausted: dsn_in_url_max_connections="
                f"{self._url_budget.total}"
            )
        return (
            f"connection budget exhausted: max_connections_total="
            f"{self._budget.total} held by {len(self._runtimes)} targets"
        )

    def _reserve(self, key: str, sub: str) -> bool:
        with self._lock:
            return self._budgets.get(key, self._budget).reserve(f"{key}\x00{sub}", 1)

    def _release(self, key: str, sub: str) -> None:
        with self._lock:
            self._budgets.get(key, self._budget).release(f"{key}\x00{sub}")

    # -- self metrics (/metrics in multi-target mode; all live: served per scrape) ----

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
            url_used = self._url_budget.used
        if self.build_info:
            yield gauge(
                "dbpulse_build_info", "dbpulse version", [([__version__], 1.0)], ["version"]
            )
        yield gauge("dbpulse_targets_active", "targets with a live poller", [([], len(runtimes))])
        yield gauge(
            "dbpulse_targets_connections",
            "connections reserved by targets, and the max_connections_total budget",
            [
                (["reserved"], used),
                (["budget"], self._budget.total),
                # /probe DSNs: their own budget (dsn_in_url_max_connections)
                (["url_reserved"], url_used),
                (["url_budget"], self._url_budget.total),
            ],
            ["state"],
        )
        yield gauge(
            "dbpulse_targets_poll_lag_max_seconds",
            "how late the latest poll round started, worst target (polls falling behind)",
            [([], max((r.lag for r in runtimes), default=0.0))],
        )
        yield gauge(
            "dbpulse_targets_up",
            "active targets whose last poll connected",
            [([], sum(1 for r in runtimes if r.snapshot.up))],
        )
