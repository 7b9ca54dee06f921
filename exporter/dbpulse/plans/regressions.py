"""Which statements got slower than their own past (pure).

Per statement (database, user, queryid) the sidecar keeps, from pg_stat_statements'
cumulative counters:

- a **recent window**: the calls and time of the polls in the last ``recent_window``
  seconds;
- a **baseline**: the time per call of everything older, as an exponentially decayed
  sum of calls and of time (``baseline_half_life``), seeded with the counters' totals
  since the statement entered pg_stat_statements the first time it is seen.

A statement whose recent time per call is at least ``factor`` x its baseline, over at
least ``min_calls`` recent calls and ``min_extra_seconds`` more per call, has regressed;
it stays so until its ratio falls below ``clear_factor`` (no flapping at the edge).
Window entries move into the baseline as they age out, so a lasting change becomes the
new normal after a few half-lives. Counters that go backwards (pg_stat_statements_reset,
an evicted and re-entered statement) start the statement over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

Key = tuple[int, int, int]  # dbid, userid, queryid


@dataclass(frozen=True)
class RegressionRules:
    factor: float = 2.0
    clear_factor: float = 1.5
    min_calls: int = 20
    min_extra_seconds: float = 0.001
    recent_window: float = 600.0
    baseline_half_life: float = 6 * 3600.0


@dataclass(frozen=True)
class Counters:
    """One pg_stat_statements entry as read this poll (cumulative since it entered)."""

    key: Key
    datname: str
    user: str
    calls: float
    seconds: float


@dataclass(frozen=True)
class Track:
    calls: float  # cumulative, as last read
    seconds: float
    window: tuple[tuple[float, float, float], ...]  # (at, calls, seconds) per poll
    base_calls: float
    base_seconds: float
    base_at: float
    regressed_since: float | None = None


@dataclass(frozen=True)
class Regression:
    key: Key
    datname: str
    user: str
    ratio: float
    recent_seconds_per_call: float
    baseline_seconds_per_call: float
    recent_calls: float
    since: float
    new: bool  # became a regression in this poll

    @property
    def queryid(self) -> int:
        return self.key[2]


def _start(row: Counters, now: float) -> Track:
    return Track(row.calls, row.seconds, (), row.calls, row.seconds, now)


def _fold(track: Track, now: float, rules: RegressionRules) -> Track:
    """Move window entries older than the window into the decayed baseline."""
    cutoff = now - rules.recent_window
    keep = tuple(e for e in track.window if e[0] > cutoff)
    if len(keep) == len(track.window):
        return track
    base_calls, base_seconds, base_at = track.base_calls, track.base_seconds, track.base_at
    for at, calls, seconds in track.window:
        if at > cutoff:
            continue
        decay = 0.5 ** (max(0.0, at - base_at) / rules.baseline_half_life)
        base_calls = base_calls * decay + calls
        base_seconds = base_seconds * decay + seconds
        base_at = max(base_at, at)
    return replace(
        track, window=keep, base_calls=base_calls, base_seconds=base_seconds, base_at=base_at
    )


def _advance(previous: Track | None, row: Counters, now: float, rules: RegressionRules) -> Track:
    if previous is None or row.calls < previous.calls or row.seconds < previous.seconds:
        return _start(row, now)
    calls, seconds = row.calls - previous.calls, row.seconds - previous.seconds
    window = previous.window
    if calls > 0:
        window = (*window, (now, calls, seconds))
    track = replace(previous, calls=row.calls, seconds=row.seconds, window=window)
    return _fold(track, now, rules)


def _judge(
    track: Track, row: Counters, now: float, rules: RegressionRules
) -> tuple[Track, Regression | None]:
    recent_calls = sum(e[1] for e in track.window)
    recent_seconds = sum(e[2] for e in track.window)
    if recent_calls < rules.min_calls or track.base_calls <= 0 or track.base_seconds <= 0:
        return replace(track, regressed_since=None), None
    recent = recent_seconds / recent_calls
    baseline = track.base_seconds / track.base_calls
    ratio = recent / baseline
    was = track.regressed_since is not None
    bar = rules.clear_factor if was else rules.factor
    if ratio < bar or recent - baseline < rules.min_extra_seconds:
        return replace(track, regressed_since=None), None
    since = track.regressed_since if track.regressed_since is not None else now
    regression = Regression(
        key=row.key,
        datname=row.datname,
        user=row.user,
        ratio=ratio,
        recent_seconds_per_call=recent,
        baseline_seconds_per_call=baseline,
        recent_calls=recent_calls,
        since=since,
        new=not was,
    )
    return replace(track, regressed_since=since), regression


def observe(
    tracks: dict[Key, Track] | None,
    rows: Iterable[Counters],
    now: float,
    rules: RegressionRules,
) -> tuple[dict[Key, Track], list[Regression]]:
    """The next tracks (statements no longer listed are forgotten) and the regressions,
    worst ratio first."""
    previous = tracks or {}
    out: dict[Key, Track] = {}
    found: list[Regression] = []
    for row in rows:
        track = _advance(previous.get(row.key), row, now, rules)
        track, regression = _judge(track, row, now, rules)
        out[row.key] = track
        if regression is not None:
            found.append(regression)
    found.sort(key=lambda r: (-r.ratio, r.key))
    return out, found
