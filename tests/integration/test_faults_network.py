"""Network stalls: a server that accepts and never answers, and a link that freezes mid-query."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from dbpulse.localpg import LocalPostgres
from dbpulse.sidecar.base import BuildResult, Context, Rows, query
from dbpulse.sidecar.collectors.database import DatabaseCollector
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.poller import Poller, Schedule
from dbpulse.sidecar.snapshot import Snapshot
from prometheus_client import CollectorRegistry, generate_latest


class SilentServer:
    """Accepts TCP connections and never sends a byte (a hung host or a black-holed port)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


class FreezableProxy:
    """Forwards TCP to PostgreSQL until ``freeze()``; then holds every byte, both ways."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.sock.accept()
                server = socket.create_connection(("127.0.0.1", self.upstream))
                self.pairs.append((client, server))
                threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            while not self.closed.is_set():
                if self.frozen.is_set():
                    time.sleep(0.05)  # read nothing, forward nothing: the link is frozen
                    continue
                ready, _, _ = select.select([a, b], [], [], 0.05)
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    (b if src is a else a).sendall(data)

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        for a, b in self.pairs:
            a.close()
            b.close()


class SqlCollector:
    """Runs one statement (to keep a query in flight while the link freezes)."""

    def __init__(self, sql: str, name: str) -> None:
        self.sql = sql
        self.name = name

    def fetch(self, conn: psycopg.Connection[Any], ctx: Context, state: Any) -> Rows:
        return {"rows": query(conn, self.sql)}

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        return BuildResult([])


def _text(snap: Snapshot) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snap)
    return generate_latest(registry).decode()


def _poller(
    dsn: str, collectors: dict[str, Any], timeout: float
) -> tuple[Poller, Snapshot, ConnectionManager]:
    snap = Snapshot("t", dict.fromkeys(collectors, 60.0))
    conns = ConnectionManager(dsn, target="t", max_connections=1, connect_timeout=1)
    poller = Poller(
        collectors=collectors,
        schedules={n: Schedule(interval=60, timeout=timeout) for n in collectors},
        connections=conns,
        snapshot=snap,
    )
    return poller, snap, conns


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_server_that_accepts_and_never_answers_times_out(silent: SilentServer) -> None:
    """A port that accepts but never speaks: the poll gives up after connect_timeout, pg_up 0."""
    dsn = f"postgresql://postgres@127.0.0.1:{silent.port}/postgres"
    poller, snap, conns = _poller(dsn, {"database": DatabaseCollector()}, timeout=1)
    started = time.monotonic()
    assert not poller.run_once("database")
    elapsed = time.monotonic() - started
    conns.close()
    assert silent.accepted, "the client never reached the silent server"
    assert elapsed < 4, f"connect took {elapsed:.1f}s with connect_timeout=1"
    assert 'pg_up{target="t"} 0.0' in _text(snap)
    assert 'dbpulse_collector_success{collector="database"} 0.0' in _text(snap)
    assert "timeout" in snap.readiness(60)[1].lower()


def test_link_frozen_mid_query_is_cut_and_the_poller_recovers(pg: LocalPostgres) -> None:
    """The network freezes while a query is in flight: the poll ends at its deadline, pg_up 0; once the link is back it recovers by itself."""
    proxy = FreezableProxy(pg.port)
    dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
    collectors = {
        "slow": SqlCollector("SELECT pg_sleep(0.5)", "slow"),
        "database": DatabaseCollector(),
    }
    poller, snap, conns = _poller(dsn, collectors, timeout=1)
    try:
        assert poller.run_once("database")
        outcome: list[bool] = []
        worker = threading.Thread(target=lambda: outcome.append(poller.run_once("slow")))
        started = time.monotonic()
        worker.start()
        time.sleep(0.2)  # the query is on the server now
        proxy.freeze()
        worker.join(timeout=15)
        elapsed = time.monotonic() - started
        assert not worker.is_alive(), "the poll hung on a frozen network"
        assert outcome == [False]
        # statement_timeout 1 s cannot fire (the server's answer is stuck); the client-side
        # deadline (2 x statement_timeout + connect_timeout = 3 s) must.
        assert elapsed < 5, elapsed
        text = _text(snap)
        assert 'pg_up{target="t"} 0.0' in text
        assert 'dbpulse_collector_success{collector="slow"} 0.0' in text
        reason = snap.readiness(60)[1]
        assert "no answer" in reason, reason
        # The link comes back: the same poller reconnects through it by itself.
        proxy.frozen.clear()
        deadline = time.monotonic() + 15
        while not poller.run_once("database"):
            assert time.monotonic() < deadline, "never recovered after the link came back"
            time.sleep(0.2)
        assert 'pg_up{target="t"} 1.0' in _text(snap)
        assert poller.run_once("slow")
    finally:
        conns.close()
        proxy.close()
