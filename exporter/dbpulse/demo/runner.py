"""Orchestrates the demo: cluster, sidecar, instrumented engine, workload loop, cleanup."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import FrameType

import psycopg
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, create_engine

from dbpulse import __version__
from dbpulse.demo import workload
from dbpulse.http import Endpoints, start_server
from dbpulse.localpg import LocalPostgres, PostgresNotFound
from dbpulse.settings import load_settings, parse_listen
from dbpulse.sidecar.daemon import Sidecar

Say = Callable[[str], None]


@dataclass
class DemoOptions:
    listen: str = "127.0.0.1:9189"
    app_listen: str = "127.0.0.1:9190"
    cycles: int = 0  # 0: until Ctrl-C
    interval: float = 1.0
    pause: float = 2.0


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextmanager
def _sidecar(dsn: str, options: DemoOptions, say: Say) -> Iterator[Sidecar]:
    # The migrations collector normally runs every few minutes; the demo wants it now, with
    # thresholds low enough that its small tables count as seq-scan heavy.
    migrations = {"interval": 5.0, "seq_scan_min_scans": 5, "seq_scan_min_rows": 1000}
    settings = load_settings(
        dsn=dsn,
        listen=options.listen,
        interval=options.interval,
        collectors={"migrations": migrations},
    )
    sidecar = Sidecar.build(settings)
    host, port = parse_listen(options.listen)
    server, _ = start_server(host, port, sidecar.endpoints())
    sidecar.start()
    say(f"sidecar metrics:      http://{host}:{server.server_address[1]}/metrics")
    try:
        yield sidecar
    finally:
        server.shutdown()
        sidecar.close()


@contextmanager
def _app(dsn: str, options: DemoOptions, say: Say) -> Iterator[Engine]:
    """The instrumented 'application': a small pool, so pressure shows quickly."""
    from dbpulse import instrument  # the in-process half, imported only when needed

    registry = CollectorRegistry()
    host, port = parse_listen(options.app_listen)
    server, _ = start_server(host, port, Endpoints(registry=registry))
    engine = create_engine(
        dsn.replace("postgresql://", "postgresql+psycopg://", 1),
        pool_size=2,
        max_overflow=1,
        pool_timeout=1.0,
        pool_pre_ping=True,
        connect_args={"options": "-c statement_timeout=30000", "application_name": "demo-app"},
    )
    instrumentation = instrument(
        engine,
        pool_name="demo",
        registry=registry,
        slow_query_seconds=0.5,
        service_version=__version__,  # target_info: the dashboard's "Deploys" annotation
    )
    say(f"application metrics:  http://{host}:{server.server_address[1]}/metrics")
    try:
        yield engine
    finally:
        instrumentation.uninstrument()
        engine.dispose()
        server.shutdown()


def _scenarios(engine: Engine, dsn: str, say: Say) -> list[tuple[str, Callable[[], object]]]:
    return [
        ("pool pressure", lambda: workload.pool_pressure(engine, say)),
        ("slow query", lambda: workload.slow_query(engine, say)),
        ("N+1", lambda: workload.n_plus_one(engine, say)),
        ("lock wait", lambda: workload.lock_wait(dsn, say)),
        ("index build", lambda: workload.index_build(dsn, say)),
        ("migration hazards", lambda: workload.migration_hazards(engine, dsn, say)),
        ("maintenance", lambda: workload.maintenance(dsn, say)),
    ]


def run_demo(options: DemoOptions, say: Say = _say) -> int:
    """Run the demo until Ctrl-C (or ``options.cycles``); returns the exit code."""
    try:
        cluster = LocalPostgres()
    except PostgresNotFound as exc:
        print(f"dbpulse demo: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    say("starting a throwaway PostgreSQL cluster (initdb + pg_ctl in a temp dir)")
    try:
        with ExitStack() as stack:
            stack.enter_context(cluster)
            dsn = cluster.dsn
            say(f"PostgreSQL {cluster.bindir.parent.name} is up on 127.0.0.1:{cluster.port}")
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            engine = stack.enter_context(_app(dsn, options, say))
            say("creating demo tables (users, posts, accounts, 300k orders)")
            workload.setup_schema(engine)
            stack.enter_context(_sidecar(dsn, options, say))
            say("press Ctrl-C to stop; the cluster is removed on exit")
            _loop(_scenarios(engine, dsn, say), options, stop, say)
            say("stopping")
    except OSError as exc:
        print(f"dbpulse demo: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
    say("removed the temporary cluster; bye")
    return 0


def _loop(
    scenarios: list[tuple[str, Callable[[], object]]],
    options: DemoOptions,
    stop: threading.Event,
    say: Say,
) -> None:
    cycle = 0
    while not stop.is_set() and (options.cycles == 0 or cycle < options.cycles):
        cycle += 1
        for index, (name, scenario) in enumerate(scenarios, 1):
            if stop.is_set():
                return
            say(f"cycle {cycle}, step {index}/{len(scenarios)}: {name} ...")
            scenario()
            stop.wait(options.pause)
