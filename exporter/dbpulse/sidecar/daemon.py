"""Wires settings into one running sidecar: its targets, the one scheduler, the HTTP server.

There is one runtime (``runtime.py``): the ``dsn`` target is a static target that never
idles out, and ``targets`` are created on their first ``/probe``. Both run on one
APScheduler (``scheduling.py``); connections and their budgets belong to the targets'
runtimes and to ``MultiTarget``'s budget.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from dbpulse.dsn import target_name
from dbpulse.http import Endpoints, start_server
from dbpulse.logging import get_logger
from dbpulse.settings import ConfigError, Settings, parse_listen
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.multitarget import MultiTarget
from dbpulse.sidecar.poller import Poller
from dbpulse.sidecar.runtime import TargetRuntime
from dbpulse.sidecar.scheduling import Scheduler
from dbpulse.sidecar.shutdown import Budget, StopSignal, exit_if_stuck
from dbpulse.sidecar.snapshot import Snapshot
from dbpulse.sidecar.targets import TargetSpec
from dbpulse.sidecar.tracing import SidecarTracing

# /debug/blocking is the name users look for; the data belongs to the locks collector.
# /debug/plans likewise: plans are made by the regressions collector.
DEBUG_ALIASES = {"blocking": "locks", "plans": "regressions"}

# On shutdown, how long a poll in flight has to end after its cancel before its socket is
# cut: a reachable server answers a cancel in milliseconds, a frozen link never does.
CUT_AFTER = 1.0


@dataclass
class Sidecar:
    """The process: the static target (``dsn``) and/or the probed targets, one scheduler.

    ``registry`` serves everything (today's /metrics); ``cached_registry`` holds what only
    changes with ``generation()`` and ``live_registry`` what changes per scrape, for an
    HTTP layer that caches the encoded body.
    """

    settings: Settings
    registry: CollectorRegistry
    cached_registry: CollectorRegistry
    live_registry: CollectorRegistry
    scheduler: Scheduler
    target: TargetRuntime | None = None
    multi: MultiTarget | None = None
    tracing: SidecarTracing | None = None

    @classmethod
    def build(cls, settings: Settings, registry: CollectorRegistry | None = None) -> Sidecar:
        if settings.dsn is None and not settings.targets:
            raise ValueError("dsn or targets is required")
        scheduler = Scheduler(
            workers=settings.workers if settings.targets else 1,
            static_workers=settings.max_connections if settings.dsn is not None else 0,
        )
        full = registry if registry is not None else CollectorRegistry(auto_describe=False)
        cached = CollectorRegistry(auto_describe=False)
        live = CollectorRegistry(auto_describe=False)
        target = tracing = None
        if settings.dsn is not None:
            dsn = settings.dsn.get_secret_value()
            name = settings.target or target_name(dsn)
            tracing = SidecarTracing.from_settings(settings, name)
            spec = TargetSpec(name, dsn, settings.max_connections, discovery=False)
            target = TargetRuntime(
                spec,
                settings,
                observer=tracing.tracer.observe if tracing is not None else None,
                # One target's snapshot is small; compaction pays off for many only.
                compact=False,
            )
            full.register(target.snapshot)
            cached.register(target.snapshot.cached)
            live.register(target.snapshot.live)
        multi = None
        if settings.targets:
            multi = MultiTarget(settings, scheduler=scheduler)
            multi.build_info = target is None  # else the static snapshot exports it
            full.register(multi)
            live.register(multi)
        process = ProcessCollector(registry=full)
        live.register(process)
        return cls(settings, full, cached, live, scheduler, target, multi, tracing)

    # The static target's parts (tools, tests and the demo poll it directly).
    @property
    def poller(self) -> Poller:
        return self._static().poller

    @property
    def snapshot(self) -> Snapshot:
        return self._static().snapshot

    @property
    def connections(self) -> ConnectionManager:
        return self._static().connections

    def _static(self) -> TargetRuntime:
        if self.target is None:
            raise ValueError("no dsn: this sidecar has probed targets only")
        return self.target

    def generation(self) -> Hashable:
        """Changes whenever ``cached_registry`` would render differently."""
        return None if self.target is None else self.target.snapshot.generation()

    def readiness(self) -> tuple[bool, str]:
        if self.target is not None:
            return self.target.snapshot.readiness(self.settings.readiness_stale_after())
        return self.multi.readiness() if self.multi is not None else (False, "no targets")

    def endpoints(self) -> Endpoints:
        endpoints = Endpoints(
            registry=self.cached_registry,
            live_registry=self.live_registry,
            generation=self.generation,
            readiness=self.readiness,
            probe=self.multi.probe if self.multi is not None else None,
        )
        if self.target is not None and self.settings.debug_endpoints:
            snapshot = self.target.snapshot
            endpoints.debug = lambda name: snapshot.debug(DEBUG_ALIASES.get(name) or name)
            endpoints.debug_names = lambda: [*snapshot.collector_names(), *DEBUG_ALIASES]
        return endpoints

    def start(self) -> None:
        if self.target is not None:
            self.scheduler.add_target(self.target, static=True)
        if self.multi is not None:
            self.multi.start()
        self.scheduler.start()

    def close(self, budget: Budget | None = None) -> list[str]:
        """Stop polling and close connections within ``budget``; returns what it abandoned.

        Polls in flight are cancelled (a reachable server ends them at once, so their
        connections can be closed properly) and, over a frozen link, their sockets are cut
        after ``CUT_AFTER``; a step that still hangs is left to its daemon thread.
        """
        budget = budget or Budget()
        if self.target is not None:
            self.target.interrupt(CUT_AFTER)
        if self.multi is not None:
            self.multi.interrupt(CUT_AFTER)
        budget.run("scheduler", self.scheduler.shutdown)
        if self.tracing is not None:  # after the last poll: end open spans, flush
            budget.run("tracing", self.tracing.close)
        budget.run("connections", self._close_connections)
        return budget.abandoned

    def _close_connections(self) -> None:
        if self.target is not None:
            self.target.close()
        if self.multi is not None:
            self.multi.close()


def run_sidecar(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    log = get_logger()
    signals = StopSignal()
    signals.install()  # before anything starts: a signal during start-up stops it too
    sidecar = Sidecar.build(settings)
    host, port = parse_listen(settings.listen)
    try:
        server, _ = start_server(
            host, port, sidecar.endpoints(), web_config_file=settings.web_config_file
        )
    except ConfigError:  # a bad web config: one line and exit 2, from the CLI
        sidecar.close()
        raise
    except OSError as exc:
        # The reason is the whole message; a traceback would only bury it.
        log.error(  # noqa: TRY400
            "cannot listen", listen=settings.listen, reason=exc.strerror
        )
        sidecar.close()
        return 2
    if not signals.stop.is_set():
        sidecar.start()
        _log_started(sidecar, f"{server.scheme}://{host}:{server.server_address[1]}")
    signals.wait()
    started = time.monotonic()
    budget = Budget()
    # The server stops beside the sidecar: a /probe it is answering needs no poll.
    http_stopped = budget.start("http", server.shutdown)
    sidecar.close(budget)
    http_stopped()
    log.info(
        "stopped",
        seconds=round(time.monotonic() - started, 3),
        abandoned=budget.abandoned or None,
    )
    exit_if_stuck(0)
    return 0


def _log_started(sidecar: Sidecar, address: str) -> None:
    log = get_logger()
    if sidecar.target is not None:
        log.info(
            "dbpulse sidecar started",
            target=sidecar.target.spec.name,
            dsn=sidecar.target.connections.describe(),
            listen=f"{address}/metrics",
            collectors=sidecar.target.snapshot.collector_names(),
        )
    if sidecar.multi is not None:
        log.info(
            "dbpulse sidecar started",
            targets=[t.name for t in sidecar.settings.targets],
            listen=f"{address}/probe?target=NAME",
        )
