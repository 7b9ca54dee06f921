"""Stopping on SIGTERM/SIGINT within a Kubernetes grace period, whatever the sidecar is doing.

Two things made a sidecar slow to stop. The main thread waited on an ``Event`` with no
timeout: CPython runs a Python signal handler only in the main thread, between bytecodes,
so a signal the kernel delivered to another thread was acted on only when the main
thread next woke up (once, 85 s later). And closing waited for every poll in flight, one
of which may be blocked on a frozen link until its deadline (2 x statement_timeout +
connect_timeout: 43 s for a probe with a 20 s timeout).

So the main thread wakes up every ``WAKE_EVERY`` seconds, and each closing step runs in
a daemon thread under one shared ``Budget``: a step still running when the budget is
spent is abandoned, named in the log, and the process exits anyway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from dbpulse.logging import get_logger

# How long a signal delivered to another thread may wait for the main thread to notice.
WAKE_EVERY = 0.2

# What closing may take in all, well inside the 5 s the sidecar promises (Kubernetes'
# grace period is 30 s by default, but a pod may set less): the rest is margin for the
# interpreter's own exit.
CLOSE_BUDGET = 3.0


class Budget:
    """One deadline shared by the closing steps; records the steps it abandoned."""

    def __init__(self, seconds: float = CLOSE_BUDGET) -> None:
        self.deadline = time.monotonic() + seconds
        self.abandoned: list[str] = []

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def start(self, name: str, step: Callable[[], object]) -> Callable[[], bool]:
        """Start ``step`` in a daemon thread; the returned ``join`` waits within the budget."""
        thread = threading.Thread(target=_quietly(name, step), name=f"close-{name}", daemon=True)
        thread.start()

        def join(limit: float | None = None) -> bool:
            wait = self.remaining() if limit is None else min(limit, self.remaining())
            thread.join(wait)
            if thread.is_alive():
                if name not in self.abandoned:
                    self.abandoned.append(name)
                return False
            return True

        return join

    def run(self, name: str, step: Callable[[], object]) -> bool:
        """Run ``step`` and wait for it within the budget; False if it was abandoned."""
        return self.start(name, step)()


def _quietly(name: str, step: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            step()
        except Exception as exc:  # noqa: BLE001  a failing step must not keep the others from running
            get_logger().warning("closing step failed", step=name, error=type(exc).__name__)

    return run


class StopSignal:
    """SIGTERM and SIGINT set ``stop``; ``wait()`` returns soon after either arrives."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.received: str | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name
            get_logger().info("stopping", signal=self.received)
        self.stop.set()

    def wait(self) -> None:
        # A timed wait: an untimed one may never return to the bytecode loop, and so never
        # run the handler of a signal the kernel delivered to another thread.
        while not self.stop.wait(WAKE_EVERY):
            pass


def exit_if_stuck(code: int) -> None:
    """Exit now if a non-daemon thread would keep the interpreter from exiting.

    The interpreter joins non-daemon threads at exit (concurrent.futures' workers, which
    APScheduler uses, and cheroot's); one blocked on a frozen socket would hold the
    process past its grace period. Logs what it abandons.
    """
    stuck = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if not stuck:
        return
    get_logger().warning("exiting with threads still running", threads=sorted(stuck))
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to say
            stream.flush()
    os._exit(code)
