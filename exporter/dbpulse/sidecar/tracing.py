"""The sidecar's spans: the poller hands each successful ``BuildResult`` here.

Its typed facts (``sidecar/facts.py``) become sightings (``tracing_sightings``), the
pure tracker turns sightings into started / phase-changed / ended events
(``tracing_episodes``), and this thin emitter turns events into spans with explicit
start and end times. A span stays open in memory while its episode lasts and is
exported when it ends. When the statement behind an episode carried a ``traceparent``
comment (or its ``application_name`` did), the span is a child of that remote span, so
it shows up in the application's trace.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from dbpulse import __version__
from dbpulse.logging import get_logger
from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, Context
from dbpulse.sidecar.tracing_episodes import (
    EpisodeEvent,
    Sighting,
    TrackerState,
    close_all,
    observe,
)
from dbpulse.sidecar.tracing_sightings import (
    blocking_sightings,
    index_build_sightings,
    regression_sightings,
    slow_query_sightings,
)
from dbpulse.tracecontext import context_from

__all__ = ["SidecarTracer", "SidecarTracing"]


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class SidecarTracer:
    """Episode spans for one target; ``observe`` is the poller's hook, ``close`` ends all."""

    def __init__(self, tracer_provider: Any, *, target: str) -> None:
        self._tracer = trace.get_tracer(
            "dbpulse.sidecar", __version__, tracer_provider=tracer_provider
        )
        self._target = target
        self._states: dict[str, TrackerState] = {}
        self._spans: dict[Hashable, Span] = {}
        # Collectors of one target may run on several poller threads at once.
        self._lock = threading.Lock()
        self._failed_once = False

    def observe(self, collector: str, result: BuildResult, ctx: Context) -> None:
        """Feed one successful poll's facts; never raises (tracing must not fail a poll)."""
        try:
            for kind, sightings in _sightings(result, ctx.now):
                with self._lock:
                    state, events = observe(
                        self._states.get(kind, TrackerState()), sightings, ctx.now
                    )
                    self._states[kind] = state
                    self._emit(events, ctx.now)
        except Exception as exc:  # noqa: BLE001 - a tracing bug must not fail the poll
            if not self._failed_once:
                self._failed_once = True
                get_logger(target=self._target).warning(
                    "sidecar tracing failed", collector=collector, error=type(exc).__name__
                )

    def close(self) -> None:
        """End every open episode's span (at its last sighting) before the provider flushes."""
        with self._lock:
            events = [e for state in self._states.values() for e in close_all(state)]
            for event in events:
                open_span = self._spans.get(event.key)
                if open_span is not None:
                    open_span.set_attribute("dbpulse.episode.open_at_shutdown", True)
            self._emit(events, 0.0)
            self._states.clear()

    def open_episodes(self) -> int:
        with self._lock:
            return len(self._spans)

    def _emit(self, events: Sequence[EpisodeEvent], now: float) -> None:
        for event in events:
            sighting = event.sighting
            if event.kind == "started":
                span = self._tracer.start_span(
                    sighting.name,
                    context=context_from(sighting.traceparent),
                    kind=SpanKind.INTERNAL,
                    start_time=_ns(event.at),
                    attributes={**sighting.attributes, "dbpulse.target": self._target},
                )
                self._spans[event.key] = span
                if sighting.phase is not None:
                    span.add_event(
                        "phase",
                        {"dbpulse.phase": sighting.phase, **_ratio(sighting)},
                        timestamp=_ns(max(event.at, now)),
                    )
                continue
            found = self._spans.get(event.key)
            if found is None:
                continue
            span = found
            if event.kind == "phase_changed":
                span.add_event(
                    "phase",
                    {
                        "dbpulse.phase": sighting.phase or "",
                        "dbpulse.previous_phase": event.previous_phase or "",
                        **_ratio(sighting),
                    },
                    timestamp=_ns(event.at),
                )
            else:
                del self._spans[event.key]
                span.set_attributes(sighting.attributes)
                if sighting.phase is not None:
                    span.set_attribute("dbpulse.final_phase", sighting.phase)
                span.end(end_time=_ns(event.at))


def _sightings(result: BuildResult, now: float) -> list[tuple[str, list[Sighting]]]:
    """(episode kind, sightings) for every kind of fact the result carries."""
    facts = result.facts
    found = []
    if facts.index_builds is not None:
        found.append(("index_build", index_build_sightings(facts.index_builds, now)))
    if facts.blocking is not None:
        found.append(("blocking", blocking_sightings(facts.blocking, now)))
    if facts.slow_queries is not None:
        found.append(("slow_query", slow_query_sightings(facts.slow_queries, now)))
    if facts.regressions is not None:
        found.append(("regression", regression_sightings(facts.regressions)))
    return found


def _ratio(sighting: Sighting) -> dict[str, float]:
    ratio = sighting.attributes.get("dbpulse.progress.ratio")
    return {"dbpulse.progress.ratio": float(ratio)} if isinstance(ratio, int | float) else {}


class SidecarTracing:
    """The sidecar's own provider and tracer, built only when ``telemetry.enabled``."""

    def __init__(self, telemetry: Any, tracer: SidecarTracer) -> None:
        self.telemetry = telemetry
        self.tracer = tracer

    @classmethod
    def from_settings(
        cls, settings: Settings, target: str, *, exporter: Any = None
    ) -> SidecarTracing | None:
        if not settings.telemetry.enabled:
            return None  # no provider, no exporter thread, no observer on the poller
        from dbpulse.telemetry import create_telemetry

        telemetry = create_telemetry(settings.telemetry, exporter=exporter)
        if telemetry is None:
            return None
        return cls(telemetry, SidecarTracer(telemetry.tracer_provider, target=target))

    def close(self) -> None:
        """End open episodes, then flush and shut the exporter down."""
        self.tracer.close()
        self.telemetry.shutdown()
