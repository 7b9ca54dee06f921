"""What watch-migration knows between polls, and when it is done (pure, clock passed in)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from dbpulse.watch.rate import Estimate, RateWindow

# layout-note: the row types of one poll and the Tracker that folds them in are one state
# layout-note: machine; rate math, steps and the catalog comparison live in their own modules

Row = dict[str, Any]

# Statements that are part of a schema migration: a wait they cause or suffer is shown.
DDL_KINDS = frozenset(
    {"ALTER", "CREATE", "DROP", "REINDEX", "VACUUM", "CLUSTER", "LOCK", "TRUNCATE", "REFRESH"}
)
_WORD = re.compile(r"[A-Za-z]+")
_SECOND_WORD = frozenset(
    {"TABLE", "INDEX", "UNIQUE", "MATERIALIZED", "SCHEMA", "TYPE", "SEQUENCE", "VIEW"}
)


def statement_kind(query: str | None) -> str:
    """The statement's leading keywords ('ALTER TABLE', 'SELECT'): never its literals."""
    text = re.sub(r"(/\*.*?\*/|--[^\n]*)", " ", query or "", flags=re.DOTALL)
    words: list[str] = _WORD.findall(text[:200])
    if not words:
        return "?"
    first = words[0].upper()
    if first in DDL_KINDS and len(words) > 1 and words[1].upper() in _SECOND_WORD:
        return f"{first} {words[1].upper()}"
    return first


@dataclass(frozen=True)
class Build:
    """One row of pg_stat_progress_create_index."""

    pid: int
    relname: str
    index_relname: str | None
    index_relid: int
    command: str
    phase: str
    blocks_done: int
    blocks_total: int
    tuples_done: int
    tuples_total: int
    lockers_done: int
    lockers_total: int
    current_locker_pid: int

    @classmethod
    def from_row(cls, row: Row) -> Build:
        def num(key: str) -> int:
            return int(row.get(key) or 0)

        return cls(
            pid=num("pid"),
            relname=str(row.get("relname") or "?"),
            index_relname=row.get("index_relname"),
            index_relid=num("index_relid"),
            command=str(row.get("command") or "CREATE INDEX"),
            phase=str(row.get("phase") or "?"),
            blocks_done=num("blocks_done"),
            blocks_total=num("blocks_total"),
            tuples_done=num("tuples_done"),
            tuples_total=num("tuples_total"),
            lockers_done=num("lockers_done"),
            lockers_total=num("lockers_total"),
            current_locker_pid=num("current_locker_pid"),
        )

    @property
    def identity(self) -> tuple[int, int, str]:
        # A migration often builds several indexes on one connection: the pid alone
        # would make the second build look like the first one continuing.
        return (self.pid, self.index_relid, self.relname)

    def counter(self) -> tuple[str, int, int] | None:
        """What this phase counts, and only that.

        pg_stat_progress_create_index keeps the previous phase's blocks and tuples while
        a build waits (e.g. "waiting for old snapshots" still shows the table scan's
        blocks at 100%), so the phase name, not whichever total is set, picks the counter:
        lockers while waiting, blocks while scanning, tuples while loading the tree.
        """
        phase = self.phase
        if phase.startswith("waiting for"):
            if self.lockers_total > 0:
                return "lockers", self.lockers_done, self.lockers_total
            return None
        if "scanning" in phase and self.blocks_total > 0:
            return "blocks", self.blocks_done, self.blocks_total
        if "loading tuples" in phase and self.tuples_total > 0:
            return "tuples", self.tuples_done, self.tuples_total
        return None


@dataclass(frozen=True)
class LockWait:
    pid: int
    kind: str
    application_name: str
    relation: str | None
    mode: str
    locktype: str
    wait_seconds: float
    blockers: tuple[tuple[int, str, str], ...]  # (pid, statement kind, state)

    def involves_migration(self, build_pids: set[int]) -> bool:
        kinds = {self.kind.split()[0], *(kind.split()[0] for _, kind, _ in self.blockers)}
        pids = {self.pid, *(pid for pid, _, _ in self.blockers)}
        return bool(kinds & DDL_KINDS) or bool(pids & build_pids)


def lock_waits_from_rows(waits: list[Row], blockers: list[Row]) -> list[LockWait]:
    by_pid = {int(b["pid"]): b for b in blockers}
    result = []
    for row in waits:
        blocking = []
        for pid in row.get("blocking_pids") or []:
            info = by_pid.get(int(pid), {})
            blocking.append(
                (int(pid), statement_kind(info.get("query")), str(info.get("state") or "?"))
            )
        result.append(
            LockWait(
                pid=int(row["pid"]),
                kind=statement_kind(row.get("query")),
                application_name=str(row.get("application_name") or ""),
                relation=row.get("relation"),
                mode=str(row.get("mode") or "?"),
                locktype=str(row.get("locktype") or "?"),
                wait_seconds=float(row.get("wait_seconds") or 0.0),
                blockers=tuple(blocking),
            )
        )
    return result


@dataclass(frozen=True)
class ProbeReading:
    name: str
    values: dict[str, float]  # column -> value (summed over rows)
    remaining: float | None
    total: float | None
    error: str = ""
    at: float = 0.0  # time.monotonic() when the probe's query returned


@dataclass(frozen=True)
class BuildView:
    build: Build
    unit: str
    done: int
    total: int
    estimate: Estimate


@dataclass(frozen=True)
class ProbeView:
    reading: ProbeReading
    estimate: Estimate


@dataclass(frozen=True)
class Finished:
    """A build that left the progress view, and what became of its index."""

    label: str
    outcome: Literal["done", "failed", "finished"]
    detail: str


@dataclass(frozen=True)
class View:
    elapsed: float
    builds: list[BuildView]
    waits: list[LockWait]
    probes: list[ProbeView]
    finished: list[Finished]
    checking: int = 0  # ended builds whose index looked invalid once: checked again

    @property
    def in_flight(self) -> bool:
        running = any(p.reading.remaining for p in self.probes if p.reading.remaining is not None)
        return bool(self.builds or self.waits or running or self.checking)


def build_label(build: Build) -> str:
    index = build.index_relname or "(new index)"
    return f"{index} on {build.relname}"


@dataclass
class Tracker:
    """Carries rate windows across polls and remembers builds until they finish."""

    started: float
    window: float = 30.0
    windows: dict[tuple[Any, ...], RateWindow] = field(default_factory=dict)
    running: dict[tuple[int, int, str], Build] = field(default_factory=dict)
    pending: dict[tuple[int, int, str], Build] = field(default_factory=dict)
    finished: list[Finished] = field(default_factory=list)
    seen_activity: bool = False
    last_busy: float = 0.0  # elapsed seconds when something was last in flight

    def vanished(self, builds: list[Build]) -> list[Build]:
        """Builds seen last poll and gone now."""
        current = {b.identity for b in builds}
        return [b for key, b in self.running.items() if key not in current]

    def index_oids(self) -> list[int]:
        """Indexes whose validity the next poll should read (running or being rechecked)."""
        builds = [*self.running.values(), *self.pending.values()]
        return sorted({b.index_relid for b in builds if b.index_relid})

    def _settle(self, builds: list[Build], index_valid: dict[int, bool | None]) -> None:
        # A concurrent build leaves the progress view just before its final commit, so
        # an index that looks invalid at that moment is checked once more next poll.
        for key, build in list(self.pending.items()):
            del self.pending[key]
            self.finished.append(_outcome(build, index_valid.get(build.index_relid)))
        for gone in self.vanished(builds):
            valid = index_valid.get(gone.index_relid)
            if gone.index_relid and valid is not True:
                self.pending[gone.identity] = gone
            else:
                self.finished.append(_outcome(gone, valid))

    def update(
        self,
        now: float,
        builds: list[Build],
        waits: list[LockWait],
        probes: list[ProbeReading],
        index_valid: dict[int, bool | None],
    ) -> View:
        """Fold one poll in; ``index_valid`` maps ``index_oids()`` to pg_index.indisvalid."""
        self._settle(builds, index_valid)
        self.running = {b.identity: b for b in builds}
        build_pids = {b.pid for b in builds}
        build_views = []
        live_keys: set[tuple[Any, ...]] = set()
        for build in builds:
            counter = build.counter()
            if counter is None:
                build_views.append(BuildView(build, "", 0, 0, Estimate(None, None, None)))
                continue
            unit, done, total = counter
            key: tuple[Any, ...] = ("build", *build.identity, build.phase, unit)
            live_keys.add(key)
            window = self.windows.setdefault(key, RateWindow(self.window))
            window.add(now, float(done), float(total))
            build_views.append(
                BuildView(build, unit, done, total, window.estimate(float(total), float(total)))
            )
        probe_views = []
        for reading in probes:
            estimate_ = Estimate(None, None, None)
            if reading.remaining is not None:
                key = ("probe", reading.name)
                live_keys.add(key)
                window = self.windows.setdefault(key, RateWindow(self.window))
                # Probes run on their own cadence: a reading is one sample, at its own time.
                at = reading.at or now
                if not window.samples or window.samples[-1][0] < at:
                    window.add(at, reading.remaining, 0.0)
                estimate_ = window.estimate(0.0, reading.total)
            probe_views.append(ProbeView(reading, estimate_))
        for key in set(self.windows) - live_keys:
            del self.windows[key]
        relevant = [w for w in waits if w.involves_migration(build_pids)]
        view = View(
            now - self.started,
            build_views,
            relevant,
            probe_views,
            list(self.finished),
            checking=len(self.pending),
        )
        self.seen_activity = self.seen_activity or view.in_flight
        return view

    def decide(
        self, view: View, wait: float, quiet: float = 0.0
    ) -> Literal["continue", "finished", "idle"]:
        """Legacy end (no migration to follow): nothing in flight for ``quiet`` seconds
        after something was, or nothing started within ``wait``.

        A multi-step migration has gaps between its steps (an index build done, the
        next ALTER not started): the quiet period keeps one gap from ending the watch.
        """
        if view.in_flight:
            self.last_busy = view.elapsed
            return "continue"
        if self.seen_activity or self.finished:
            return "finished" if view.elapsed - self.last_busy >= quiet else "continue"
        return "continue" if view.elapsed < wait else "idle"


def _outcome(build: Build, valid: bool | None) -> Finished:
    label = build_label(build)
    if build.index_relid == 0:
        return Finished(label, "finished", "left the progress view")
    if valid is True:
        return Finished(label, "done", "index is valid")
    if valid is False:
        return Finished(label, "failed", "index left INVALID: drop it and build it again")
    return Finished(label, "failed", "index is gone: the build was rolled back")
