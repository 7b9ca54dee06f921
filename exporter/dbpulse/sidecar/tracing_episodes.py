"""Episodes seen across polls: started, phase changed, ended (pure; state in, events out).

An episode is something the catalog shows for a while and then no longer: an index
build, a blocking episode, a long-running query. Each poll hands the tracker every
current sighting of one kind; the tracker compares with the previous poll and returns
what happened, with timestamps. Start times come from the sighting (the server knows
how long the thing has been going on, so the first poll that sees it can date it);
an episode ends at the last poll that saw it, which is the closest bound the sidecar
has (the true end lies before the next poll).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

AttrValue = str | bool | int | float
Attributes = Mapping[str, AttrValue]
EventKind = Literal["started", "phase_changed", "ended"]


@dataclass(frozen=True)
class Sighting:
    """One poll's view of one episode."""

    key: Hashable
    started_at: float  # epoch seconds, as estimated from this sighting
    name: str
    phase: str | None = None
    attributes: Attributes = field(default_factory=dict)
    # W3C traceparent of the span that issued it, when the statement carries one.
    traceparent: str | None = None


@dataclass(frozen=True)
class EpisodeEvent:
    kind: EventKind
    key: Hashable
    at: float  # epoch seconds
    sighting: Sighting  # the latest sighting (the last one, for "ended")
    previous_phase: str | None = None


@dataclass(frozen=True)
class _Open:
    first: Sighting
    last: Sighting
    last_seen: float


@dataclass(frozen=True)
class TrackerState:
    """Open episodes of one kind, by key."""

    open: Mapping[Hashable, _Open] = field(default_factory=dict)


def observe(
    state: TrackerState, sightings: Iterable[Sighting], now: float
) -> tuple[TrackerState, list[EpisodeEvent]]:
    """Compare this poll's sightings with the open episodes; return the new state and events.

    A key seen for the first time starts an episode at its ``started_at`` (never later
    than ``now``); a changed phase is an event at ``now``; a key no longer seen ends at
    the last poll that saw it.
    """
    events: list[EpisodeEvent] = []
    current: dict[Hashable, _Open] = {}
    for sighting in sightings:
        if sighting.key in current:  # duplicate rows (e.g. parallel workers): first wins
            continue
        before = state.open.get(sighting.key)
        if before is None:
            start = min(sighting.started_at, now)
            first = replace(sighting, started_at=start)
            events.append(EpisodeEvent("started", sighting.key, start, first))
            current[sighting.key] = _Open(first=first, last=first, last_seen=now)
            continue
        if sighting.phase != before.last.phase:
            events.append(
                EpisodeEvent(
                    "phase_changed",
                    sighting.key,
                    now,
                    sighting,
                    previous_phase=before.last.phase,
                )
            )
        current[sighting.key] = _Open(first=before.first, last=sighting, last_seen=now)
    for key, gone in state.open.items():
        if key not in current:
            end = max(gone.last_seen, gone.first.started_at)
            events.append(EpisodeEvent("ended", key, end, gone.last))
    return TrackerState(open=current), events


def close_all(state: TrackerState) -> list[EpisodeEvent]:
    """End every open episode at its last sighting (the sidecar is stopping)."""
    return [
        EpisodeEvent("ended", key, max(o.last_seen, o.first.started_at), o.last)
        for key, o in state.open.items()
    ]
