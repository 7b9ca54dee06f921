"""Probes and the migration's backends, sampled on their own threads, off the display loop.

A backfill probe's ``count(*)`` can take seconds; run inside the refresh loop it made
every refresh that slow, and steps shorter than a refresh went unseen. Here probes run
on their own cadence and the backends are sampled every ``SAMPLE_INTERVAL``; the display
only reads the latest results.
"""

from __future__ import annotations

import contextlib
import threading
import time

import psycopg

from dbpulse.sidecar.connection import ConnectionManager, Unavailable
from dbpulse.watch.fetch import ProbeRunner, activity
from dbpulse.watch.model import ProbeReading
from dbpulse.watch.steps import Step, StepJournal

SAMPLE_INTERVAL = 0.1


class Background:
    def __init__(
        self,
        conns: ConnectionManager,
        probes: ProbeRunner,
        interval: float,
        *,
        app: str | None = None,
        pids: list[int] | None = None,
    ) -> None:
        self._conns = conns
        self._probes = probes
        self._interval = interval
        self._app = app
        self._pids = list(pids or [])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._journal = StepJournal()
        self._server_now = 0.0
        self._threads: list[threading.Thread] = []

    @property
    def follows_backends(self) -> bool:
        return bool(self._app or self._pids)

    def start(self) -> None:
        """The first sample now (the first screen needs it), then the threads.

        Even the first probe round runs on the probes' thread: a slow ``count(*)`` must not
        hold back the first screen (``probes_ready`` says when every probe has answered).
        """
        if self.follows_backends:
            self.sample()
        loops = [self._probe_loop] if self._probes.probes else []
        if self.follows_backends:
            loops.append(self._sample_loop)
        for loop in loops:
            thread = threading.Thread(target=loop, name="dbpulse-watch", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _run_probes(self) -> None:
        with contextlib.suppress(Unavailable):  # the display loop says the database is gone
            self._probes.run(self._conns, self._interval)

    def _probe_loop(self) -> None:
        while True:
            self._run_probes()
            if self._stop.wait(self._probes.next_due(self._interval)):
                return

    def probes_ready(self) -> bool:
        """Whether every configured probe has a reading (or an error) by now."""
        return len(self._probes.latest()) == len(self._probes.probes)

    def _sample_loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.sample()

    def sample(self) -> bool:
        """Sample the watched backends once; False when the database could not be read."""
        try:
            rows = activity(self._conns, self._app, self._pids)
        except (Unavailable, psycopg.Error):
            return False
        with self._lock:
            self._journal.fold(rows)
            self._server_now = float(rows[0]["now"]) if rows else time.time()
        return True

    def probe_readings(self) -> list[ProbeReading]:
        return self._probes.latest()

    def steps(self) -> tuple[list[Step], float]:
        """Copies of the steps seen so far, and the server's time at the last sample."""
        with self._lock:
            return [_copy(s) for s in self._journal.steps], self._server_now or time.time()

    def latest(self) -> list[Step]:
        with self._lock:
            return [_copy(s) for s in self._journal.latest()]

    def backends(self) -> tuple[bool, set[int]]:
        """Whether a watched backend was ever seen, and the ones alive at the last sample."""
        with self._lock:
            return self._journal.ever_alive, set(self._journal.alive)


def _copy(step: Step) -> Step:
    return Step(
        step.pid,
        step.key,
        step.label,
        step.started,
        step.ended,
        step.last_start,
        step.count,
        step.aborted,
        step.cut,
    )
