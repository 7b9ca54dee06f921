"""Both modes wired to every output at once, so a test can look for a literal in all of them.

One ``Outputs`` rig holds an instrumented SQLAlchemy engine (every statement slow, every
statement a span), a sidecar on the same database (tracing on, a low slow threshold)
served over real HTTP, and the process's logs rendered by dbpulse's own JSON logging.
``run(sql)`` executes a statement in the application while the sidecar polls it;
``texts()`` returns every output produced since the last call, by name.
"""

from __future__ import annotations

import io
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from sqlalchemy import Engine, create_engine

from dbpulse import telemetry
from dbpulse.http import start_server
from dbpulse.inprocess.instrumentation import Instrumentation, instrument
from dbpulse.logging import configure_logging
from dbpulse.settings import load_settings
from dbpulse.sidecar.collectors import statements_select
from dbpulse.sidecar.daemon import Sidecar
from tests.integration.collector_helpers import wait_for
from tests.integration.inprocess.conftest import sqlalchemy_url
from tests.logging_state import restored_logging

SIDECAR_SLOW_SECONDS = 0.1  # a statement sleeping longer is a sidecar slow-query span
# prometheus_client leaves this one untyped.
openmetrics_text: Callable[[CollectorRegistry], bytes] = openmetrics.generate_latest
POLLED = ("slow_queries", "activity", "locks", "progress")  # what sees a running statement


def span_text(spans: tuple[ReadableSpan, ...]) -> str:
    """Every span name, attribute and event (name and attributes) as one text."""
    parts: list[str] = []
    for span in spans:
        parts += [span.name, *map(str, dict(span.attributes or {}).values())]
        for event in span.events:
            parts += [event.name, *map(str, dict(event.attributes or {}).values())]
    return "\n".join(parts)


@dataclass
class Outputs:
    """The rig; built by ``outputs(dsn, monkeypatch)``."""

    engine: Engine
    instrumentation: Instrumentation
    registry: CollectorRegistry
    app_provider: TracerProvider
    app_spans: InMemorySpanExporter
    sidecar: Sidecar
    sidecar_spans: InMemorySpanExporter
    port: int
    log: io.StringIO
    _log_seen: int = 0
    errors: list[BaseException] = field(default_factory=list)

    def run(
        self, sql: str, *, autocommit: bool = False, on_poll: Callable[[], object] | None = None
    ) -> None:
        """Execute ``sql`` in the application while the sidecar polls what sees it running.

        ``on_poll`` runs after each round of polls (e.g. to release a lock once seen).
        """
        options = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}

        def execute() -> None:
            try:
                with self.engine.connect().execution_options(**options) as conn:
                    # No parameters: sent as written (simple protocol, no bind-marker parsing).
                    conn.exec_driver_sql(sql, execution_options={"no_parameters": True})
                    conn.commit()
            except Exception as exc:  # reported by the test, not lost on a thread
                self.errors.append(exc)

        worker = threading.Thread(target=execute, name="app-sql", daemon=True)
        worker.start()

        def finished() -> bool:
            for name in POLLED:
                self.sidecar.poller.run_once(name)
            if on_poll is not None:
                on_poll()
            return not worker.is_alive()

        wait_for(finished, timeout=30, interval=0.02)
        worker.join()
        self.sidecar.poller.run_all_once()  # ends the episodes it no longer sees running
        self.sidecar.poller.run_once("statements")  # the second run fetches new texts

    def _get(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return bytes(resp.read()).decode("utf-8", "replace")
        except urllib.error.HTTPError as err:  # e.g. /readyz 503 before the first poll
            return bytes(err.read()).decode("utf-8", "replace")

    def debug_names(self) -> list[str]:
        names = self.sidecar.endpoints().debug_names
        assert names is not None
        return names()

    def texts(self) -> dict[str, str]:
        """Every output since the last call: logs, both /metrics, /debug/*, both span sets."""
        found = {"/metrics": self._get("/metrics"), "/readyz": self._get("/readyz")}
        for name in self.debug_names():
            found[f"/debug/{name}"] = self._get(f"/debug/{name}")
        found["in-process metrics"] = generate_latest(self.registry).decode()
        # OpenMetrics carries the slow observations' exemplars as well.
        found["in-process openmetrics"] = openmetrics_text(self.registry).decode()
        tracing = self.sidecar.tracing
        assert tracing is not None
        tracing.telemetry.tracer_provider.force_flush()
        found["sidecar spans"] = span_text(self.sidecar_spans.get_finished_spans())
        found["in-process spans"] = span_text(self.app_spans.get_finished_spans())
        self.sidecar_spans.clear()
        self.app_spans.clear()
        log = self.log.getvalue()
        found["logs"], self._log_seen = log[self._log_seen :], len(log)
        return found


@contextmanager
def outputs(dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Outputs]:
    """Both modes on ``dsn`` (a database with pg_stat_statements), logs captured as JSON."""
    sidecar_spans = InMemorySpanExporter()
    # The sidecar builds its own provider; only its OTLP exporter is swapped for memory.
    monkeypatch.setattr(telemetry, "otlp_exporter", lambda *_a: sidecar_spans)
    # Texts of newly selected statements are read on the next poll, not a minute later.
    monkeypatch.setattr(statements_select, "TEXT_FETCH_INTERVAL", 0.0)
    with ExitStack() as stack:
        stack.enter_context(restored_logging())
        log = io.StringIO()
        configure_logging(level="debug", fmt="json", stream=log)
        # SQLAlchemy's own statement echo (INFO) is the application's log, not dbpulse's.
        sqlalchemy_log = logging.getLogger("sqlalchemy")
        monkeypatch.setattr(sqlalchemy_log, "level", logging.WARNING)
        app_spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(app_spans))
        registry = CollectorRegistry()
        engine = create_engine(sqlalchemy_url(dsn))
        stack.callback(engine.dispose)
        inst = instrument(
            engine,
            registry=registry,
            slow_query_seconds=1e-9,  # every statement is slow: logged and traced
            log_interval_seconds=0,  # ... and every one logged, not once per fingerprint
            tracer_provider=provider,
            statement_span_ratio=1.0,
            traceparent_comment=True,
        )
        stack.callback(inst.uninstrument)
        everything = {"statements": {"top_n": 5000, "max_series": 100000}}
        settings = load_settings(
            dsn=dsn,
            collectors=everything,
            telemetry={"enabled": True, "slow_query_seconds": SIDECAR_SLOW_SECONDS},
        )
        sidecar = Sidecar.build(settings)
        stack.callback(sidecar.close)
        server, thread = start_server("127.0.0.1", 0, sidecar.endpoints())
        stack.callback(thread.join, 5)
        stack.callback(server.shutdown)
        yield Outputs(
            engine,
            inst,
            registry,
            provider,
            app_spans,
            sidecar,
            sidecar_spans,
            server.server_address[1],
            log,
        )
