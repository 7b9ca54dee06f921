"""Network stalls: a server that accepts and never answers, and a link that freezes mid-query."""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dbpulse.localpg import LocalPostgres
from dbpulse.sidecar.base import BuildResult, Context, Rows, query
from dbpulse.sidecar.collectors.database import DatabaseCollector
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.poller import Poller, Schedule
from dbpulse.sidecar.snapshot import Snapshot


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
    assert "pg_up 0.0" in _text(snap)
    assert 'pg_scrape_collector_success{collector="database"} 0.0' in _text(snap)
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
        assert "pg_up 0.0" in text
        assert 'pg_scrape_collector_success{collector="slow"} 0.0' in text
        reason = snap.readiness(60)[1]
        assert "no answer" in reason, reason
        # The link comes back: the same poller reconnects through it by itself.
        proxy.frozen.clear()
        deadline = time.monotonic() + 15
        while not poller.run_once("database"):
            assert time.monotonic() < deadline, "never recovered after the link came back"
            time.sleep(0.2)
        assert "pg_up 1.0" in _text(snap)
        assert poller.run_once("slow")
    finally:
        conns.close()
        proxy.close()


class DroppedLink:
    """PostgreSQL reached over a veth pair from a network namespace; ``drop()`` downs the link.

    Unlike FreezableProxy, whose kernel keeps acknowledging, a downed link loses every
    packet: the case keepalives and tcp_user_timeout are for. Needs root and ``ip``.
    """

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.netns = f"dbpulse-{tag}"
        self.outer, self.inner = f"dbp{tag}o", f"dbp{tag}i"
        subnet = f"10.213.{int(tag[:2], 16)}"
        self.server_ip, self.client_ip = f"{subnet}.1", f"{subnet}.2"
        self.subnet = f"{subnet}.0/24"
        try:
            self._ip("netns", "add", self.netns)
            self._ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
            self._ip("link", "set", self.inner, "netns", self.netns)
            self._ip("addr", "add", f"{self.server_ip}/24", "dev", self.outer)
            self._ip("link", "set", self.outer, "up")
            self._inside("ip", "addr", "add", f"{self.client_ip}/24", "dev", self.inner)
            self._inside("ip", "link", "set", self.inner, "up")
        except subprocess.CalledProcessError:
            self.close()  # leave no half-built namespace behind
            raise

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def _inside(self, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.netns, *argv], check=True, capture_output=True)

    def spawn(self, *argv: str) -> subprocess.Popen[str]:
        """A process inside the namespace, with pipes for a line protocol."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def drop(self) -> None:
        self._ip("link", "set", self.outer, "down")

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.outer], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], check=False, capture_output=True)


@pytest.fixture
def dropped_link() -> Iterator[DroppedLink]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to build a network namespace")
    try:
        link = DroppedLink()
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"network namespaces or veth unavailable: {exc.stderr!r}")
    yield link
    link.close()


def test_link_that_drops_packets_is_detected_by_keepalives(dropped_link: DroppedLink) -> None:
    """A link that loses every packet mid-query: libpq keepalives/tcp_user_timeout make the kernel end the poll ("timed out") long before the client-side deadline."""
    with LocalPostgres() as server:
        with psycopg.connect(server.dsn, autocommit=True) as admin:
            admin.execute("ALTER SYSTEM SET listen_addresses = '*'")
        with (server.datadir / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {dropped_link.subnet} trust\n")
        server.restart()
        dsn = f"postgresql://postgres@{dropped_link.server_ip}:{server.port}/postgres"
        root = Path(__file__).resolve().parents[2]
        client = dropped_link.spawn(
            sys.executable, str(root / "tests/integration/netns_poll.py"), dsn
        )
        try:
            assert client.stdin is not None
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "ready"
            client.stdin.write("go\n")
            client.stdin.flush()
            assert client.stdout.readline().strip() == "inflight"
            dropped_link.drop()
            outcome = client.stdout.readline().strip()
        finally:
            client.kill()
            client.wait()
    assert outcome.startswith("OperationalError"), outcome
    assert "timed out" in outcome, outcome
    assert "no answer" not in outcome, "the client-side deadline, not the kernel, ended the poll"
