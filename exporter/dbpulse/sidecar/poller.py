"""Runs each collector on its own schedule and records the outcome in the snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from dbpulse.dsn import redact
from dbpulse.logging import get_logger
from dbpulse.sidecar.base import Collector, CollectorError, Context, Rows
from dbpulse.sidecar.connection import ConnectionManager, Unavailable
from dbpulse.sidecar.snapshot import Snapshot


@dataclass(frozen=True)
class Schedule:
    interval: float
    timeout: float


class Poller:
    """One target's collectors, scheduled by APScheduler, never two runs of one at once."""

    def __init__(
        self,
        *,
        collectors: Mapping[str, Collector],
        schedules: Mapping[str, Schedule],
        connections: ConnectionManager,
        snapshot: Snapshot,
        workers: int = 1,
        observer: Callable[[str, Rows, Context], None] | None = None,
    ) -> None:
        # Called with each successful poll's rows (the sidecar's tracing); it must not
        # raise, and it runs outside the collector's transaction.
        self.observer = observer
        self._collectors = dict(collectors)
        self._schedules = dict(schedules)
        self._conns = connections
        self._snapshot = snapshot
        self._workers = workers
        self._last_problem: dict[str, str] = {}
        self._notices_seen: set[str] = set()
        self._scheduler: BackgroundScheduler | None = None

    def run_once(self, name: str) -> bool:
        """Run one collector now; True when it succeeded."""
        collector = self._collectors[name]
        schedule = self._schedules[name]
        log = get_logger(collector=name, target=self._snapshot.target)
        started = time.perf_counter()
        try:
            with self._conns.transaction(schedule.timeout) as conn:
                ctx = Context(
                    target=self._snapshot.target,
                    server_version_num=self._conns.server_version_num,
                    now=time.time(),
                )
                rows = collector.fetch(conn, ctx)
            result = collector.build(rows, ctx)
        except Unavailable as exc:
            self._fail(name, log, started, str(exc), reached=False, level="debug")
            return False
        except psycopg.errors.QueryCanceled:
            message = f"query cancelled by statement_timeout ({schedule.timeout:g}s)"
            self._fail(name, log, started, message, reached=True)
            return False
        except (CollectorError, psycopg.Error) as exc:
            # Lock and statement timeouts are OperationalErrors too: whether the database
            # was reached is what the connection manager saw, not the exception class.
            self._fail(name, log, started, _describe(exc), reached=self._conns.up)
            return False
        except Exception as exc:
            log.exception("collector crashed", error=type(exc).__name__)
            self._fail(name, log, started, f"internal error: {type(exc).__name__}", reached=True)
            return False
        duration = time.perf_counter() - started
        self._snapshot.record_success(name, result, duration)
        if self.observer is not None:
            self.observer(name, rows, ctx)
        if self._last_problem.pop(name, None):
            log.info("collector recovered")
        for notice in result.notices:
            if notice not in self._notices_seen:
                self._notices_seen.add(notice)
                log.warning(notice)
        return True

    def _fail(
        self,
        name: str,
        log: Any,
        started: float,
        message: str,
        *,
        reached: bool,
        level: str = "warning",
    ) -> None:
        self._snapshot.record_failure(name, time.perf_counter() - started, message, reached=reached)
        # Say it once per distinct problem; a collector failing every poll stays quiet.
        if self._last_problem.get(name) != message:
            self._last_problem[name] = message
            getattr(log, level)("collector failed", error=message)

    def run_all_once(self) -> dict[str, bool]:
        return {name: self.run_once(name) for name in self._collectors}

    def start(self) -> None:
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(1, self._workers))},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone="UTC",
        )
        for name, schedule in self._schedules.items():
            scheduler.add_job(
                self.run_once,
                "interval",
                args=[name],
                id=name,
                seconds=schedule.interval,
                next_run_time=_now(),
                misfire_grace_time=max(1, int(schedule.interval)),
            )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None


def _now() -> datetime:
    return datetime.now(UTC)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"permission denied: {_first(exc)} (grant pg_monitor to the dbpulse role)"
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction):
        return f"{_first(exc)} (this server version or configuration lacks it)"
    return _first(exc)


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return redact(lines[0]) if lines else type(exc).__name__
