"""How one poll of one collector runs: the only place a collector's fetch and build are called.

A poll opens a read-only transaction under the collector's statement_timeout, refreshes
the target's database list when it is due (``databases.py``), calls ``fetch`` with the
state the previous successful build returned, closes the transaction, then calls the
pure ``build`` and records the result (or the failure) in the snapshot. The collectors'
cross-poll state lives here, owned by the runtime: collectors keep none. When to poll is
the runtime's business (``runtime.py``), not this module's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from dbpulse.errors import first_line
from dbpulse.logging import get_logger
from dbpulse.sidecar.base import (
    BuildResult,
    Collector,
    CollectorError,
    Context,
    Row,
    server_label,
)
from dbpulse.sidecar.connection import ConnectionManager, Unavailable
from dbpulse.sidecar.databases import DatabaseList
from dbpulse.sidecar.snapshot import Snapshot

if TYPE_CHECKING:
    from dbpulse.sidecar.base import Allotment

# Called with each successful poll's result (the sidecar's tracing); it must not raise,
# and it runs outside the collector's transaction.
Observer = Callable[[str, BuildResult, Context], None]


@dataclass(frozen=True)
class Schedule:
    interval: float
    timeout: float


class Poller:
    """One target's (or one discovered database's) collectors, their state and last problems."""

    def __init__(
        self,
        *,
        collectors: Mapping[str, Collector],
        schedules: Mapping[str, Schedule],
        connections: ConnectionManager,
        snapshot: Snapshot,
        observer: Observer | None = None,
        database_list: bool = True,
        allotment: Callable[[str], Allotment | None] = lambda _name: None,
    ) -> None:
        self.observer = observer
        self._collectors = dict(collectors)
        self._schedules = dict(schedules)
        self._conns = connections
        self._allotment = allotment
        self._snapshot = snapshot
        # None for a discovered database's poller: its collectors need no list.
        self.databases = (
            DatabaseList(max_age=min((s.interval for s in schedules.values()), default=60.0))
            if database_list
            else None
        )
        self._states: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._last_problem: dict[str, str] = {}
        self._notices_seen: set[str] = set()

    def state(self, name: str) -> Any:
        """The state the collector's next fetch and build get (None before a success)."""
        with self._lock:
            return self._states.get(name)

    def run_once(self, name: str) -> bool:
        """Run one collector now; True when it succeeded."""
        collector = self._collectors[name]
        schedule = self._schedules[name]
        log = get_logger(collector=name, target=self._snapshot.target)
        started = time.perf_counter()
        state = self.state(name)
        try:
            with self._conns.transaction(schedule.timeout) as conn:
                now = time.time()
                ctx = Context(
                    target=self._snapshot.target,
                    server_version_num=self._conns.server_version_num,
                    now=now,
                    databases=self._databases(collector, conn, now),
                    server=server_label(conn),
                    allotment=self._allotment(name),
                )
                rows = collector.fetch(conn, ctx, state)
            result = collector.build(rows, ctx, state)
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
        with self._lock:
            self._states[name] = result.state
        self._snapshot.record_success(name, result, duration)
        if self.observer is not None:
            self.observer(name, result, ctx)
        if self._last_problem.pop(name, None):
            log.info("collector recovered")
        for notice in result.notices:
            if notice not in self._notices_seen:
                self._notices_seen.add(notice)
                log.warning(notice)
        return True

    def _databases(
        self, collector: Collector, conn: psycopg.Connection[Row], now: float
    ) -> tuple[str, ...]:
        """The database list for collectors that ask for it (read when it is due)."""
        if self.databases is None or not getattr(collector, "needs_databases", False):
            return ()
        return self.databases.current(conn, now)

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
        """Run every collector once, in turn (tools and tests; the runtime schedules)."""
        return {name: self.run_once(name) for name in self._collectors}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"permission denied: {first_line(exc)} (grant pg_monitor to the dbpulse role)"
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction):
        return f"{first_line(exc)} (this server version or configuration lacks it)"
    return first_line(exc)
