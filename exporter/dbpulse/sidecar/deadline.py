"""A client-side deadline per transaction, for links that freeze without closing.

statement_timeout is enforced by the server, so it cannot help when the server's answer
never arrives. TCP keepalives and tcp_user_timeout catch a link that drops packets, but
only after tens of seconds, and never a peer whose kernel still acknowledges while nothing
answers (a hung proxy or pooler, a stopped server process): the test's frozen proxy is
such a peer. So a transaction that outlives its deadline has its socket shut down, which
wakes the thread blocked on it with an error.

One watchdog thread serves every transaction of the process (not a timer thread each).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time

import psycopg


class Alarm:
    """One transaction's deadline: fires at most once, never after ``cancel``."""

    def __init__(self, conn: psycopg.Connection[object], due: float) -> None:
        self.due = due
        self.fired = False
        self._conn = conn
        self._done = False
        self._lock = threading.Lock()

    def fire(self) -> None:
        # Under the lock, so that a cancelled alarm can never cut a connection that has
        # gone back to the pool and on to another poll.
        with self._lock:
            if self._done:
                return
            self._done = True
            self.fired = True
            _shut_down(self._conn)

    def cancel(self) -> None:
        with self._lock:
            self._done = True

    @property
    def done(self) -> bool:
        return self._done

    def cancel_query(self, timeout: float) -> None:
        """Ask the server to cancel the statement in flight (a new connection: may hang)."""
        if self._done:
            return
        # Unreachable or already idle: the deadline cuts the socket anyway.
        with contextlib.suppress(psycopg.Error):
            self._conn.cancel_safe(timeout=timeout)


def _shut_down(conn: psycopg.Connection[object]) -> None:
    try:
        # shutdown() on a duplicate of the descriptor wakes the thread blocked on the
        # socket (it reads EOF); the descriptor itself stays libpq's to close.
        dup = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()
    except (OSError, psycopg.Error):
        pass  # already closed: nothing left to wake


class Watchdog:
    """Fires due alarms from one lazily started daemon thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Alarm]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, conn: psycopg.Connection[object], seconds: float) -> Alarm:
        alarm = Alarm(conn, time.monotonic() + seconds)
        with self._cond:
            heapq.heappush(self._heap, (alarm.due, next(self._order), alarm))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="dbpulse-deadline", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return alarm

    def hurry(self, alarms: list[Alarm], seconds: float) -> None:
        """Shutdown: these alarms fire within ``seconds`` (each keeps an earlier due)."""
        due = time.monotonic() + seconds
        with self._cond:
            for alarm in alarms:
                if not alarm.done and alarm.due > due:
                    alarm.due = due  # its old heap entry fires as a no-op later
                    heapq.heappush(self._heap, (due, next(self._order), alarm))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                # Cancelled alarms are dropped lazily, when they reach the top.
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                due, _, alarm = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            alarm.fire()  # outside the condition: a socket call must not block arm()


WATCHDOG = Watchdog()
