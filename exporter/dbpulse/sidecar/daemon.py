"""Wires settings into a running sidecar: connections, collectors, poller, HTTP server."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from types import FrameType

from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from dbpulse.dsn import target_name
from dbpulse.http import Endpoints, split_live, start_server
from dbpulse.logging import get_logger
from dbpulse.settings import Settings, parse_listen
from dbpulse.sidecar.collectors import create_enabled
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.multitarget import MultiTarget
from dbpulse.sidecar.poller import Poller, Schedule
from dbpulse.sidecar.probes import create_probes
from dbpulse.sidecar.snapshot import Snapshot
from dbpulse.sidecar.tracing import SidecarTracing

# /debug/blocking is the name users look for; the data belongs to the locks collector.
DEBUG_ALIASES = {"blocking": "locks"}
# Families whose value moves between polls: encoded at every scrape, never cached.
LIVE_FAMILIES = ("dbpulse_snapshot_age_seconds",)


@dataclass
class Sidecar:
    settings: Settings
    registry: CollectorRegistry
    snapshot: Snapshot
    poller: Poller
    connections: ConnectionManager
    tracing: SidecarTracing | None = None

    @classmethod
    def build(cls, settings: Settings, registry: CollectorRegistry | None = None) -> Sidecar:
        if settings.dsn is None:
            raise ValueError("dsn is required")
        dsn = settings.dsn.get_secret_value()
        target = settings.target or target_name(dsn)
        collectors = create_enabled(settings)
        schedules = {
            name: Schedule(
                interval=settings.collector_interval(name),
                timeout=getattr(settings.collectors, name).timeout,
            )
            for name in collectors
        }
        stale_after = {name: settings.collector_stale_after(name) for name in collectors}
        for probe in create_probes(settings):  # each probe is its own job: probe:<name>
            collectors[probe.name] = probe.collector
            schedules[probe.name] = Schedule(interval=probe.interval, timeout=probe.timeout)
            stale_after[probe.name] = probe.stale_after
        snapshot = Snapshot(target, stale_after)
        connections = ConnectionManager(
            dsn,
            target=target,
            max_connections=settings.max_connections,
            connect_timeout=settings.connect_timeout,
            lock_timeout=settings.lock_timeout,
        )
        tracing = SidecarTracing.from_settings(settings, target)
        poller = Poller(
            collectors=collectors,
            schedules=schedules,
            connections=connections,
            snapshot=snapshot,
            workers=settings.max_connections,
            observer=tracing.tracer.observe if tracing is not None else None,
        )
        registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
        registry.register(snapshot)
        return cls(settings, registry, snapshot, poller, connections, tracing)

    def endpoints(self) -> Endpoints:
        stale = self.settings.readiness_stale_after()
        cached, live = split_live(self.registry, LIVE_FAMILIES, live_from=self.snapshot)
        return Endpoints(
            registry=cached,
            live_registry=live,
            generation=self.snapshot.generation,
            readiness=lambda: self.snapshot.readiness(stale),
            debug=lambda name: self.snapshot.debug(DEBUG_ALIASES.get(name, name)),
            debug_names=lambda: [*self.snapshot.collector_names(), *DEBUG_ALIASES],
        )

    def close(self) -> None:
        self.connections.begin_close()  # so stopping the poller waits for no queued poll
        self.poller.stop()
        if self.tracing is not None:  # after the last poll: end open spans, flush
            self.tracing.close()
        self.connections.close()


def _wire(settings: Settings) -> tuple[Sidecar | None, MultiTarget | None, Endpoints]:
    """Single target (dsn), many (targets: on /probe), or both in one process."""
    sidecar = Sidecar.build(settings) if settings.dsn is not None else None
    multi = MultiTarget(settings) if settings.targets else None
    if sidecar is not None:
        endpoints = sidecar.endpoints()
        if multi is not None:
            multi.build_info = False  # the single target's snapshot already exports it
            sidecar.registry.register(multi)
            endpoints.probe = multi.probe
            endpoints.generation = None  # multi's families change apart from the snapshot
    elif multi is not None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(multi)
        endpoints = Endpoints(registry=registry, readiness=multi.readiness, probe=multi.probe)
    else:
        raise ValueError("dsn or targets is required")
    ProcessCollector(registry=endpoints.live_registry or endpoints.registry)
    return sidecar, multi, endpoints


def run_sidecar(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    log = get_logger()
    sidecar, multi, endpoints = _wire(settings)
    host, port = parse_listen(settings.listen)
    try:
        server, _ = start_server(host, port, endpoints)
    except OSError as exc:
        # The reason is the whole message; a traceback would only bury it.
        log.error(  # noqa: TRY400
            "cannot listen", listen=settings.listen, reason=exc.strerror
        )
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if sidecar is not None:
        sidecar.poller.start()
        log.info(
            "dbpulse sidecar started",
            target=sidecar.snapshot.target,
            dsn=sidecar.connections.describe(),
            listen=f"http://{host}:{server.server_address[1]}/metrics",
            collectors=sidecar.snapshot.collector_names(),
        )
    if multi is not None:
        multi.start()
        log.info(
            "dbpulse sidecar started",
            targets=[t.name for t in settings.targets],
            listen=f"http://{host}:{server.server_address[1]}/probe?target=NAME",
        )
    stop.wait()
    server.shutdown()
    if sidecar is not None:
        sidecar.close()
    if multi is not None:
        multi.stop()
    return 0
