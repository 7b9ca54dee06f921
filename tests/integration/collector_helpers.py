"""Helpers for running sidecar collectors against the real test cluster."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from dbpulse.sidecar.base import BuildResult, Collector, Context, server_label
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.databases import DatabaseList
from dbpulse.sidecar.poller import Poller, Schedule
from dbpulse.sidecar.snapshot import Snapshot

APP_NAME = "dbpulse-test"


def dbname(dsn: str) -> str:
    return str(conninfo_to_dict(dsn)["dbname"])


@contextmanager
def runner(dsn: str) -> Iterator[Callable[..., BuildResult]]:
    """A real ConnectionManager; yields run(collector, now=None) -> BuildResult.

    Like the runtime, it reads the database list into the context and keeps each
    collector's state between runs, passing it to the next fetch and build.
    """
    conns = ConnectionManager(dsn, target="t", connect_timeout=5, application_name=APP_NAME)
    databases = DatabaseList(max_age=0.0)  # read again on every run
    states: dict[int, Any] = {}

    def run(collector: Collector, now: float | None = None) -> BuildResult:
        state = states.get(id(collector))
        with conns.transaction(5.0) as conn:
            at = time.time() if now is None else now
            ctx = Context(
                "t",
                conns.server_version_num,
                at,
                databases.current(conn, at),
                server=server_label(conn),
            )
            rows = collector.fetch(conn, ctx, state)
        result = collector.build(rows, ctx, state)
        states[id(collector)] = result.state
        return result

    try:
        yield run
    finally:
        conns.close()


def samples(result: BuildResult, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(s.labels), s.value) for fam in result.families for s in fam.samples if s.name == name
    ]


def value(result: BuildResult, name: str, **labels: str) -> float | None:
    """The value of the one sample whose labels include ``labels``, else None."""
    found = [v for lab, v in samples(result, name) if labels.items() <= lab.items()]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def wait_for(probe: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Call ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {got!r})")
        time.sleep(interval)


@dataclass
class Background:
    """A statement running in its own session on a thread."""

    pid: int
    thread: threading.Thread
    conn: psycopg.Connection[Any]
    error: list[BaseException] = field(default_factory=list)

    def done(self) -> bool:
        return not self.thread.is_alive()


@contextmanager
def background(dsn: str, sql: str, *, timeout: float = 30.0) -> Iterator[Background]:
    """Run ``sql`` on a thread; on exit cancel it if still running and always join."""
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(f"SET statement_timeout = '{int(timeout)}s'")
    job = Background(
        pid=conn.info.backend_pid, thread=threading.Thread(target=lambda: None), conn=conn
    )

    def target() -> None:
        try:
            conn.execute(sql)
        except psycopg.Error as exc:
            job.error.append(exc)

    job.thread = threading.Thread(target=target, name="bg-sql", daemon=True)
    job.thread.start()
    try:
        yield job
    finally:
        if job.thread.is_alive():
            conn.cancel()
        job.thread.join(timeout + 5)
        conn.close()


def one_target_poller(
    dsn: str,
    collectors: dict[str, Any],
    *,
    timeout: float = 5.0,
    interval: float = 60.0,
    max_connections: int = 1,
) -> tuple[Poller, Snapshot, ConnectionManager]:
    """A poller for target 't' with one schedule per collector; nothing runs until asked."""
    snap = Snapshot("t", dict.fromkeys(collectors, 3 * interval))
    conns = ConnectionManager(dsn, target="t", max_connections=max_connections, connect_timeout=2)
    poller = Poller(
        collectors=collectors,
        schedules={n: Schedule(interval=interval, timeout=timeout) for n in collectors},
        connections=conns,
        snapshot=snap,
    )
    return poller, snap, conns
