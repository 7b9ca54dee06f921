"""The sidecar's stop machinery: a signal caught by any thread, and a closing budget."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest

from dbpulse.sidecar.shutdown import Budget, StopSignal


@pytest.fixture
def restored_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _waiting(frame: FrameType | None) -> bool:
    return (
        frame is not None
        and frame.f_code.co_name == "wait"
        and "threading" in (frame.f_code.co_filename)
    )


@pytest.mark.usefixtures("restored_handlers")
def test_a_signal_delivered_to_another_thread_stops_the_wait() -> None:
    """SIGTERM that the kernel hands to a worker thread still ends StopSignal.wait() (an untimed Event.wait never woke for it)."""
    signals = StopSignal()
    signals.install()
    rescued = threading.Event()
    worker_done = threading.Event()

    def worker() -> None:
        # Sent while the main thread runs bytecode, the signal would be handled at once:
        # wait until it is blocked in the wait (its top frame is threading's wait()).
        main = threading.main_thread().ident or 0
        while not _waiting(sys._current_frames().get(main)):
            time.sleep(0.01)
        time.sleep(0.3)  # past the check: inside the lock's C-level wait
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # to this thread only
        # Only if the main thread never acted on it: wake it directly, and say so.
        if not signals.stop.wait(10):
            rescued.set()
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
        worker_done.set()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    signals.wait()
    worker_done.wait()
    assert signals.received == "SIGTERM"
    assert not rescued.is_set(), "the main thread acted only on a signal sent to it"


@pytest.mark.usefixtures("restored_handlers")
def test_sigint_stops_the_wait_too() -> None:
    """SIGINT is a stop request like SIGTERM, not a KeyboardInterrupt mid-shutdown."""
    signals = StopSignal()
    signals.install()
    signal.raise_signal(signal.SIGINT)
    signals.wait()
    assert signals.received == "SIGINT"


def test_budget_abandons_a_step_that_hangs_and_runs_the_next() -> None:
    """A closing step still blocked when the budget is spent is named and left behind; later steps still run."""
    budget = Budget(0.3)
    never = threading.Event()
    ran: list[str] = []
    assert not budget.run("frozen poll", never.wait)
    assert budget.run("connections", lambda: ran.append("connections"))
    assert ran == ["connections"]
    assert budget.abandoned == ["frozen poll"]
    never.set()


def test_budget_step_that_raises_does_not_stop_the_others() -> None:
    """A failing step is logged and counted done; it never raises into the shutdown."""
    budget = Budget(2.0)

    def broken() -> None:
        raise RuntimeError("pool already closed")

    assert budget.run("broken", broken)
    assert budget.abandoned == []


STUCK_CHILD = """
import threading
from dbpulse.logging import configure_logging
from dbpulse.sidecar.shutdown import exit_if_stuck
configure_logging("info", "json")
threading.Thread(target=threading.Event().wait, name="frozen-poll").start()  # not a daemon
exit_if_stuck(0)
raise SystemExit(3)  # not reached when the thread is seen
"""


def test_exit_if_stuck_leaves_a_blocked_non_daemon_thread_behind() -> None:
    """A non-daemon thread that never ends (which the interpreter would join forever) is named in the log and the process exits 0."""
    done = subprocess.run(
        [sys.executable, "-c", STUCK_CHILD], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exiting with threads still running" in done.stderr
    assert "frozen-poll" in done.stderr
