"""The final summary: every step seen, with its duration and outcome, and the exit code (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dbpulse.watch.catalog import Change
from dbpulse.watch.model import Finished
from dbpulse.watch.steps import Step, format_duration_precise

EXIT_FAILED = 1


@dataclass(frozen=True)
class Summary:
    lines: list[str]
    code: int


def _bare(name: str) -> str:
    return name.rsplit(".", 1)[-1].strip('"')


def step_outcome(
    step: Step, changes: list[Change], *, last: bool, command_status: int | None
) -> str:
    """What became of one step: its index's fate for an index build, else how it ended."""
    if step.key.upper().startswith(("CREATE INDEX", "CREATE UNIQUE INDEX", "REINDEX")):
        for change in changes:
            if change.index and re.search(rf"\b{re.escape(_bare(change.index))}\b", step.key):
                return ("failed: " if change.bad else "done: ") + change.text
    if step.aborted:
        return "failed: its transaction was aborted"
    if last and command_status:
        return f"failed: the command exited {command_status} after it"
    if step.ended is None:
        return "still running"
    return "done"


def summarize(
    steps: list[Step],
    now: float,
    changes: list[Change],
    finished: list[Finished],
    command_status: int | None,
    *,
    follows: bool = True,
) -> Summary:
    """Lines for the end of the watch and the exit code the watch owes.

    The code is the command's status when there is a command, made 1 when a build failed
    or the migration left an index INVALID or a constraint NOT VALID that was not so
    before it started: a migration that swallows a failed CIC still fails the deploy.
    """
    lines = [f"summary: {len(steps)} step(s) seen on the migration's backends"] if follows else []
    for number, step in enumerate(steps, 1):
        outcome = step_outcome(
            step, changes, last=number == len(steps), command_status=command_status
        )
        took = format_duration_precise(step.duration(now))
        lines.append(f"  step {number} (pid {step.pid}, {took}): {step.title()}: {outcome}")
    for build in finished:
        lines.append(f"  index build {build.label}: {build.outcome}: {build.detail}")
    lines += [f"  schema: {change.text}" for change in changes]
    failed_builds = [f for f in finished if f.outcome == "failed"]
    bad = [c for c in changes if c.bad]
    code = command_status or 0
    if (failed_builds or bad) and code == 0:
        code = EXIT_FAILED
    return Summary(lines, code)
