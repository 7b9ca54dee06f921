"""The migration's steps, folded from samples of its backends' pg_stat_activity (pure).

A statement is identified by (pid, query_start); its end is ``state_change`` once the
backend left ``active``, so a step's duration is the server's, not the sampling's.
Consecutive statements with one fingerprint on one backend are one step (500 committed
backfill batches are one "UPDATE ... (x500)"), and transaction plumbing, catalog reads and
Alembic's own bookkeeping are not steps. Labels are fingerprints: literals never show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbpulse.sql import fingerprint
from dbpulse.watch.rate import format_duration

Row = dict[str, Any]

_PLUMBING = frozenset(
    {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "SHOW", "RESET"}
)
LABEL_LENGTH = 160
ABORTED = "idle in transaction (aborted)"


def describe(query: str | None) -> tuple[str, str] | None:
    """(key, label) of a statement, or None when it is plumbing rather than a step."""
    if not query or not query.strip():
        return None
    try:
        fp = fingerprint(query)
    except Exception:  # noqa: BLE001 - a text the lexer rejects (truncated): still a step
        return "?", "(statement not shown: unparsable)"
    table = fp.collection
    if fp.operation in _PLUMBING or table == "alembic_version" or table.startswith("pg_"):
        return None
    if fp.operation == "SELECT" and not table:
        return None  # version(), current_schema(), pg_sleep(): driver and test plumbing
    label = " ".join(fp.text.split())
    if len(label) > LABEL_LENGTH:
        label = label[: LABEL_LENGTH - 3] + "..."
    return fp.text, label


@dataclass
class Step:
    pid: int
    key: str
    label: str
    started: float  # epoch seconds, the server's clock
    ended: float | None  # None while the latest statement still runs
    last_start: float
    count: int = 1
    aborted: bool = False
    cut: bool = False  # its backend disconnected while it ran

    def duration(self, now: float) -> float:
        return max(0.0, (self.ended if self.ended is not None else now) - self.started)

    def title(self) -> str:
        return self.label if self.count == 1 else f"{self.label} (x{self.count})"


@dataclass
class StepJournal:
    """Every step seen on the watched backends, in order, and which backends are alive."""

    steps: list[Step] = field(default_factory=list)
    current: dict[int, Step] = field(default_factory=dict)
    seen: dict[int, float] = field(default_factory=dict)
    # whether each backend's statement was still running at the last sample
    active: dict[int, bool] = field(default_factory=dict)
    alive: set[int] = field(default_factory=set)
    ever_alive: bool = False
    last_now: float = 0.0  # the server's clock at the last sample with rows

    def fold(self, rows: list[Row]) -> None:
        """One sample: rows of pg_stat_activity for the watched backends (epoch floats)."""
        alive = {int(r["pid"]) for r in rows}
        for pid in self.alive - alive:
            step = self.current.get(pid)
            if step is not None and step.ended is None:
                # Its backend went away mid-statement (the command failed and exited): the
                # end is within one sample of when it was last seen running.
                step.ended = max(step.last_start, self.last_now)
                step.cut = True
        self.alive = alive
        self.ever_alive = self.ever_alive or bool(alive)
        if rows:
            self.last_now = float(rows[0].get("now") or self.last_now)
        for row in rows:
            pid = int(row["pid"])
            started = row.get("query_start")
            if started is None:
                continue
            state = str(row.get("state") or "")
            ended = None if state == "active" else _float(row.get("state_change"))
            step = self.current.get(pid)
            was_active = self.active.get(pid, False)
            self.active[pid] = state == "active"
            if self.seen.get(pid) == started:  # the same statement as last sample
                if step is not None and step.last_start == started:
                    step.ended = ended
                    step.aborted = step.aborted or state == ABORTED
                continue
            self.seen[pid] = float(started)
            described = describe(row.get("query"))
            if described is None:
                if step is not None and state == ABORTED:
                    step.aborted = True  # a failed statement's transaction, seen late
                continue
            key, label = described
            if step is not None and step.key == key:
                if was_active and step.ended is None:
                    # Still running when last seen: with the extended query protocol the
                    # server stamps query_start at Parse and again at Execute, so one
                    # statement can show two starts. A repeat shows its backend idle first.
                    step.last_start = float(started)
                    step.ended = ended
                    continue
                step.count += 1
                step.last_start = float(started)
                step.ended = ended
                step.aborted = step.aborted or state == ABORTED
                continue
            new = Step(pid, key, label, float(started), ended, float(started))
            new.aborted = state == ABORTED
            self.steps.append(new)
            self.current[pid] = new

    def latest(self) -> list[Step]:
        """Each live watched backend's latest step (running, or done and idle since)."""
        return [s for pid, s in sorted(self.current.items()) if pid in self.alive]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def step_line(step: Step, now: float, outcome: str) -> str:
    return f"step {step.title()}: {outcome} in {format_duration_precise(step.duration(now))}"


def format_duration_precise(seconds: float) -> str:
    """Sub-second steps matter in a migration's summary: '0.04s', '3.2s', then '3m05s'."""
    if seconds < 10:
        return f"{seconds:.2f}s" if seconds < 1 else f"{seconds:.1f}s"
    return format_duration(seconds)
