"""The watch loop: poll, fold into the tracker, draw; exit when the migration is done.

Exit codes: 0 when everything in flight finished (or nothing started within --wait),
1 when an index build ended with its index invalid or gone, 2 when the database cannot
be reached at start, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import psycopg

from dbpulse.dsn import target_name
from dbpulse.logging import configure_logging
from dbpulse.settings import ConfigError, Settings, load_settings
from dbpulse.sidecar.connection import ConnectionManager, Unavailable
from dbpulse.watch.fetch import Poll, ProbeRunner, poll
from dbpulse.watch.model import Tracker, View
from dbpulse.watch.render import plain_lines, rich_view

EXIT_FAILED_BUILD = 1
EXIT_UNUSABLE = 2
EXIT_INTERRUPTED = 130

Draw = Callable[[View], None]


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


@contextmanager
def _screen(out: TextIO, target: str) -> Iterator[Draw]:
    """A rich Live screen on a terminal; otherwise print the lines that changed."""
    if out.isatty():
        from rich.console import Console
        from rich.live import Live

        console = Console(file=out)
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            yield lambda view: live.update(rich_view(view, target), refresh=True)
        return
    previous: list[str] = []

    def draw(view: View) -> None:
        nonlocal previous
        lines = plain_lines(view)
        if lines != previous:
            stamp = f"[{view.elapsed:6.1f}s]"
            for line in lines:
                print(f"{stamp} {line}", file=out, flush=True)
            previous = lines

    yield draw


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
        connect_timeout=settings.connect_timeout,
        lock_timeout=settings.lock_timeout,
        application_name="dbpulse-watch",
    )
    try:
        with _ctrl_c_interrupts():
            return _loop(args, conns, ProbeRunner(list(settings.probes)), stream, target)
    finally:
        conns.close()


def _loop(
    args: argparse.Namespace,
    conns: ConnectionManager,
    probes: ProbeRunner,
    out: TextIO,
    target: str,
) -> int:
    interval: float = args.interval
    wait: float = args.wait or 0.0
    tracker = Tracker(started=time.monotonic())
    try:
        first = poll(conns, [])
    except Unavailable as exc:
        print(f"dbpulse watch-migration: cannot connect to {target}: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        with _screen(out, target) as draw:
            result = first
            while True:
                readings = probes.run(conns, interval)
                view = tracker.update(
                    time.monotonic(), result.builds, result.waits, readings, result.index_valid
                )
                draw(view)
                decision = tracker.decide(view, wait)
                if decision != "continue":
                    break
                time.sleep(interval)
                result = _poll_again(conns, tracker, interval)
    except KeyboardInterrupt:
        print("dbpulse watch-migration: interrupted", file=out, flush=True)
        return EXIT_INTERRUPTED
    failed = [f for f in tracker.finished if f.outcome == "failed"]
    if decision == "idle":
        summary = "nothing in flight: no index build, migration lock wait or unfinished probe"
    elif failed:
        summary = f"finished with {len(failed)} failed index build(s)"
    else:
        summary = "migration finished: nothing left in flight"
    print(f"dbpulse watch-migration: {summary}", file=out, flush=True)
    return EXIT_FAILED_BUILD if failed else 0


def _poll_again(conns: ConnectionManager, tracker: Tracker, interval: float) -> Poll:
    """Poll; while the database is unreachable or a poll fails, keep the last screen."""
    while True:
        try:
            return poll(conns, tracker.index_oids())
        except (Unavailable, psycopg.Error):
            time.sleep(interval)
