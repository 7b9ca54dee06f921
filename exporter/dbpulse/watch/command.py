"""The watch loop: poll, fold into the tracker, draw; exit when the migration is done.

What is followed, and when it ends:

- ``-- COMMAND``: the watch runs the migration itself (its connections get a unique
  ``PGAPPNAME``) and ends when the command exits, with the command's status;
- ``--application-name``/``--pid``: the migration's backends; the watch ends when they
  have all disconnected, never in the gap between two steps;
- neither (legacy): when nothing was in flight for ``--quiet-seconds``.

Exit codes: the command's status, else 0; made 1 when an index build failed or the
migration left an index INVALID or a constraint NOT VALID that was not so before the
watch started; 2 on bad input (database unreachable at start, no such pid, a command
that cannot be run); 130 on Ctrl-C.
"""

# layout-note: one loop and the ways it ends: starting and stopping the command, deciding
# layout-note: the end, and the verdict read the same state, so they stay in one class.

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TextIO

import psycopg

from dbpulse.dsn import target_name
from dbpulse.errors import first_line
from dbpulse.logging import configure_logging
from dbpulse.settings import ConfigError, Settings, load_settings
from dbpulse.sidecar.connection import ConnectionManager, Unavailable
from dbpulse.watch.background import Background
from dbpulse.watch.catalog import Catalog, compare, read_catalog
from dbpulse.watch.fetch import POLL_TIMEOUT, Poll, ProbeRunner, poll
from dbpulse.watch.model import Tracker, View
from dbpulse.watch.screen import Screen
from dbpulse.watch.summary import summarize
from dbpulse.watch.target import Target, exit_status, forward

EXIT_FAILED_BUILD = 1
EXIT_UNUSABLE = 2
EXIT_INTERRUPTED = 130
SETTLE_POLLS = 3  # polls after the end, for builds whose index validity is still unsettled


@contextmanager
def _ctrl_c_interrupts() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt here, whatever SIGINT disposition we inherited.

    Python installs its SIGINT handler only when it starts with SIGINT at its default:
    a process started from a background shell job (``make test &``) inherits SIGINT
    ignored, and Ctrl-C would then never reach the loop. The previous handler comes back
    on exit, so calling ``run`` in-process (tests, embedding) leaves no trace.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        # None: the old handler was set outside Python; the default is the closest.
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config, dsn=args.dsn)
    if settings.dsn is None:
        raise ConfigError([("dsn", "required: pass --dsn, set DBPULSE_DSN or dsn: in --config")])
    return settings


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    # The connection manager logs reconnects; on this screen only errors may interrupt.
    configure_logging("error", "console", stream=sys.stderr)
    settings = _settings(args)
    dsn = settings.dsn.get_secret_value() if settings.dsn else ""
    target = settings.target or target_name(dsn)
    conns = ConnectionManager(
        dsn,
        target=target,
        max_connections=3,  # the display loop, the probes' thread, the backends' sampler
        connect_timeout=settings.connect_timeout,
        lock_timeout=settings.lock_timeout,
        application_name="dbpulse-watch",
    )
    try:
        with _ctrl_c_interrupts():
            watch = Watch(args, Target.from_args(args), conns, stream, target)
            return watch.run(ProbeRunner(list(settings.probes)))
    finally:
        conns.close()


def _fail(message: str) -> int:
    print(f"dbpulse watch-migration: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def _read_catalog(conns: ConnectionManager) -> Catalog:
    with conns.transaction(POLL_TIMEOUT) as conn:
        return read_catalog(conn)


class Watch:
    def __init__(
        self,
        args: argparse.Namespace,
        target: Target,
        conns: ConnectionManager,
        out: TextIO,
        name: str,
    ) -> None:
        self.args = args
        self.target = target
        self.conns = conns
        self.out = out
        self.name = name
        self.interval: float = args.interval
        self.wait: float = args.wait or 0.0
        self.quiet: float = getattr(args, "quiet_seconds", None) or 0.0
        self.tracker = Tracker(started=time.monotonic())
        self.proc: subprocess.Popen[bytes] | None = None
        self.gone_since: float | None = None  # when the watched backends were last all gone

    def run(self, probes: ProbeRunner) -> int:
        try:
            first = poll(self.conns, [])
            before = _read_catalog(self.conns)
        except Unavailable as exc:
            return _fail(f"cannot connect to {self.name}: {first_line(exc)}")
        except psycopg.Error as exc:  # connected, but the role cannot read the catalogs
            return _fail(f"cannot read the catalogs of {self.name}: {first_line(exc)}")
        bg = Background(
            self.conns, probes, self.interval, app=self.target.app, pids=self.target.pids
        )
        if self.target.pids and not self.target.app:
            bg.sample()
            missing = sorted(set(self.target.pids) - bg.backends()[1])
            if missing:
                return _fail(f"no backend with pid {', '.join(map(str, missing))}")
        screen = Screen(self.out, self.name)
        reader: threading.Thread | None = None
        try:
            if self.target.command:
                try:
                    self.proc = self._start_command()
                except OSError as exc:
                    return _fail(f"cannot run {self.target.command[0]}: {first_line(exc)}")
                if self.proc.stdout is not None:
                    reader = forward(self.proc.stdout, screen.echo)
            bg.start()
            with screen.opened():
                how = self._follow(first, bg, screen)
                self._settle(bg, screen)
        except KeyboardInterrupt:
            self._stop_command()
            print("dbpulse watch-migration: interrupted", file=self.out, flush=True)
            return EXIT_INTERRUPTED
        finally:
            bg.stop()
        if reader is not None:
            reader.join(timeout=5)
        return self._finish(how, before, bg)

    def _start_command(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PGAPPNAME": self.target.app or ""}
        return subprocess.Popen(  # noqa: S603 - the user's own migration command, as given
            self.target.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
        )

    def _stop_command(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def _ended(self, view: View, bg: Background) -> str | None:
        """Why the watch ends now, or None to go on."""
        if self.proc is not None:
            return "command" if self.proc.poll() is not None else None
        if self.target.follows:
            ever, alive = bg.backends()
            if alive:
                self.gone_since = None
            elif ever:
                # A migration tool may reconnect between steps (a new engine per revision):
                # by name, the end is a disconnect that lasts --quiet-seconds. A pid
                # cannot come back.
                if self.gone_since is None:
                    self.gone_since = view.elapsed
                if not self.target.app or view.elapsed - self.gone_since >= self.quiet:
                    return "disconnected"
            elif view.elapsed >= self.wait:
                return "idle"
            return None
        if not bg.probes_ready():
            return None  # a backfill probe's first answer may still say rows remain
        decision = self.tracker.decide(view, self.wait, self.quiet)
        return None if decision == "continue" else decision

    def _follow(self, result: Poll, bg: Background, screen: Screen) -> str:
        while True:
            view = self.tracker.update(
                time.monotonic(),
                result.builds,
                result.waits,
                bg.probe_readings(),
                result.index_valid,
            )
            screen.draw(view, _latest_steps(bg))
            how = self._ended(view, bg)
            if how is not None:
                return how
            self._sleep()
            result = self._poll_again()

    def _sleep(self) -> None:
        # A command that exits ends the watch at once, not after the rest of an interval.
        if self.proc is None:
            time.sleep(self.interval)
            return
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=self.interval)

    def _poll_again(self) -> Poll:
        """Poll; while the database is unreachable or a poll fails, keep the last screen."""
        while True:
            try:
                return poll(self.conns, self.tracker.index_oids())
            except (Unavailable, psycopg.Error):
                time.sleep(self.interval)

    def _settle(self, bg: Background, screen: Screen) -> None:
        """Last samples and polls after the end: steps' end times, builds' final validity."""
        if bg.follows_backends:
            bg.sample()
        for _ in range(SETTLE_POLLS):
            if not (self.tracker.running or self.tracker.pending):
                return
            time.sleep(min(self.interval, 0.5))
            result = self._poll_again()
            view = self.tracker.update(
                time.monotonic(), result.builds, result.waits, [], result.index_valid
            )
            screen.draw(view, [])

    def _finish(self, how: str, before: Catalog, bg: Background) -> int:
        try:
            changes = compare(before, _read_catalog(self.conns))
        except (Unavailable, psycopg.Error) as exc:
            print(
                f"dbpulse watch-migration: cannot compare the catalog at the end: "
                f"{first_line(exc)}",
                file=self.out,
                flush=True,
            )
            changes = []
        status = exit_status(self.proc.returncode) if self.proc is not None else None
        steps, now = bg.steps()
        summary = summarize(
            steps, now, changes, self.tracker.finished, status, follows=self.target.follows
        )
        lines = list(summary.lines)
        if self.proc is not None and not bg.backends()[0]:
            lines.append(
                f"  note: no backend with application_name {self.target.app} was seen: if the "
                "migration's driver ignores PGAPPNAME (asyncpg), set it in the migration's "
                "connect arguments and pass it with --application-name"
            )
        for line in lines:
            print(f"dbpulse watch-migration: {line}", file=self.out, flush=True)
        print(
            f"dbpulse watch-migration: {self._verdict(how, summary.code, status)}",
            file=self.out,
            flush=True,
        )
        return summary.code

    def _verdict(self, how: str, code: int, status: int | None) -> str:  # noqa: PLR0911 - one line per way to end
        failed = len([f for f in self.tracker.finished if f.outcome == "failed"])
        problems = f" ({failed} failed index build(s))" if failed else ""
        if how == "command":
            shown = " ".join(self.target.command)
            made = " (made 1: see the schema lines above)" if code != status else ""
            return f"command `{shown}` exited {status}{problems}; exit {code}{made}"
        if how == "disconnected":
            return f"the migration's backends disconnected{problems}; exit {code}"
        if how == "idle":
            if self.target.follows:
                return "nothing in flight: no watched backend connected"
            return "nothing in flight: no index build, migration lock wait or unfinished probe"
        if failed:
            return f"finished with {failed} failed index build(s)"
        if code:
            return "finished, but the migration left the schema in a failed state (see above)"
        return "migration finished: nothing left in flight"


def _latest_steps(bg: Background) -> list[str]:
    """The watched backends' latest steps; a running one without its (ever-changing) age."""
    lines = []
    for step in bg.latest():
        state = "running" if step.ended is None else f"done in {step.duration(0.0):.2f}s"
        lines.append(f"migration pid {step.pid}: {step.title()}: {state}")
    return lines
