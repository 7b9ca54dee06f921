"""The sidecar's one scheduler: APScheduler jobs for every target's lanes, and housekeeping.

The static target (``dsn``) runs on its own executor with one thread per connection, so
probed targets can never starve it; probed targets share the ``workers`` pool.
``coalesce`` and ``max_instances=1`` mean a job that falls behind runs once, never twice
at once.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from dbpulse.sidecar.runtime import TargetRuntime

STATIC = "static"


def spread(name: str, period: float) -> float:
    """A stable offset in [0, period) for the name (crc32: the same across restarts)."""
    return (zlib.crc32(name.encode()) / 2**32) * period


class Scheduler:
    """One BackgroundScheduler for the whole process."""

    def __init__(self, *, workers: int, static_workers: int = 0) -> None:
        executors = {"default": ThreadPoolExecutor(max_workers=max(1, workers))}
        if static_workers:
            executors[STATIC] = ThreadPoolExecutor(max_workers=static_workers)
        self._scheduler = BackgroundScheduler(
            executors=executors,
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone="UTC",
        )
        self._ids = itertools.count(1)

    def add_target(self, runtime: TargetRuntime, *, static: bool = False) -> list[str]:
        """Schedule the target's jobs: the first round now, later ones at a stable phase."""
        ids = []
        now = datetime.now(UTC)
        for func, seconds in runtime.jobs():
            # Job ids are counters, never the target: with allow_dsn_in_url it is a DSN.
            job_id = f"target-{next(self._ids)}"
            offset = 0.0 if static else spread(runtime.spec.name, seconds)
            self._scheduler.add_job(
                func,
                "interval",
                id=job_id,
                name=f"poll {runtime.spec.name}",
                executor=STATIC if static else "default",
                seconds=seconds,
                # Targets added together (a restart, one Prometheus round) do not poll
                # in a burst after their first round.
                next_run_time=now,
                start_date=now + timedelta(seconds=offset),
                misfire_grace_time=max(1, int(seconds)),
            )
            ids.append(job_id)
        return ids

    def add_periodic(self, func: Callable[[], object], seconds: float, job_id: str) -> None:
        self._scheduler.add_job(func, "interval", seconds=seconds, id=job_id)

    def remove(self, ids: list[str]) -> None:
        for job_id in ids:
            if self._scheduler.get_job(job_id) is not None:
                self._scheduler.remove_job(job_id)

    def start(self) -> None:
        if not self._scheduler.running:
            self._scheduler.start()

    def shutdown(self) -> None:
        """Wait for running jobs only; callers make queued polls fail fast first."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
