"""The connection manager on its own: the bound, the backoff, and shutdown, against real sockets."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

from dbpulse.localpg import LocalPostgres
from dbpulse.sidecar.connection import ConnectionManager, Unavailable
from tests.integration.collector_helpers import wait_for
from tests.integration.test_faults_network import SilentServer


class SlammingServer:
    """Accepts TCP connections and closes them at once; counts the connect attempts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()

    def dsn(self) -> str:
        # No SSL or GSS negotiation: each connect is exactly one TCP connection.
        return (
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
            "?sslmode=disable&gssencmode=disable"
        )


@pytest.fixture
def slamming() -> Iterator[SlammingServer]:
    server = SlammingServer()
    yield server
    server.sock.close()


def _pool_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("dbpulse-closing-")]


def _poll_error(conns: ConnectionManager) -> str:
    with pytest.raises(Unavailable) as caught, conns.transaction(1.0):
        pass
    return str(caught.value)


def test_concurrent_polls_never_open_more_than_max_connections(pg: LocalPostgres) -> None:
    """Six polls at once with max_connections=2: pg_stat_activity never shows a third backend, and both are used."""
    app = f"dbpulse-bound-{uuid.uuid4().hex[:8]}"
    conns = ConnectionManager(pg.dsn, target="t", max_connections=2, application_name=app)
    start = threading.Barrier(6)
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def poll() -> None:
        start.wait()
        try:
            with conns.transaction(5.0) as conn:
                row = conn.execute(
                    "SELECT pg_backend_pid() AS pid, (SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = %s) AS backends, pg_sleep(0.2)",
                    (app,),
                ).fetchone()
                assert row is not None
                seen.append((int(row["pid"]), int(row["backends"])))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conns.close()
    assert not errors, errors
    assert len(seen) == 6
    assert max(backends for _, backends in seen) == 2
    assert len({pid for pid, _ in seen}) == 2, (
        "the second connection was never opened or a third was"
    )


def test_down_target_is_tried_once_per_backoff_step(slamming: SlammingServer) -> None:
    """A target that drops every connection: one attempt, then polls are refused without a connect until the 1 s backoff ends; the pool adds no attempts of its own."""
    conns = ConnectionManager(slamming.dsn(), target="t", connect_timeout=2)
    assert slamming.accepted == 0, "the manager connected at construction"
    try:
        first = _poll_error(conns)
        assert "server closed the connection unexpectedly" in first, first
        assert not conns.up
        assert "waiting to reconnect" in _poll_error(conns)
        assert slamming.accepted == 1
        # Poll until the backoff lets an attempt through: it is the second connect ever.
        wait_for(lambda: "waiting to reconnect" not in _poll_error(conns), timeout=10)
        assert slamming.accepted == 2
        assert "waiting to reconnect" in _poll_error(conns)
        assert slamming.accepted == 2
    finally:
        conns.close()


def test_begin_close_releases_a_waiting_poll_and_close_does_not_wait_for_the_connect() -> None:
    """A poll waiting on a connect to a silent server gives up at begin_close; close() returns while the connect is in flight, and the pool's threads end after it."""
    silent = SilentServer()
    dsn = f"postgresql://postgres@127.0.0.1:{silent.port}/postgres?sslmode=disable"
    conns = ConnectionManager(dsn, target="closing", connect_timeout=5)
    outcome: list[str] = []

    def poll() -> None:
        try:
            with conns.transaction(1.0):
                outcome.append("connected")
        except Unavailable as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=poll)
    worker.start()
    try:
        wait_for(lambda: silent.accepted)
        conns.begin_close()
        worker.join()
        assert outcome == ["shutting down"]
        conns.close()
        # The pool's worker is still in its connect (until connect_timeout): close() did
        # not wait for it, and it ends by itself once the connect fails.
        assert _pool_threads(), "close() waited for the connect"
        wait_for(lambda: not _pool_threads())
    finally:
        silent.close()
