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


def _index_change(step: Step, changes: list[Change]) -> Change | None:
    """The catalog change about the index this step built, if it is an index build."""
    if not step.key.upper().startswith(("CREATE INDEX", "CREATE UNIQUE INDEX", "REINDEX")):
        return None
    for change in changes:
        if change.index and re.search(rf"\b{re.escape(_bare(change.index))}\b", step.key):
            return change
    return None


def step_outcome(step: Step, changes: list[Change], *, blame: int | None) -> str:
    """What became of one step: its index's fate for an index build, else how it ended.

    ``blame`` is the command's failing status when this step is the last one seen and no
    other failure explains it.
    """
    change = _index_change(step, changes)
    if change is not None:
        return ("failed: " if change.bad else "done: ") + change.text
    if step.aborted:
        return "failed: its transaction was aborted"
    if step.cut:
        return "cut short: its backend disconnected while it ran"
    if blame:
        return f"failed: the command exited {blame} after it"
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

    Index builds too short to be sampled (a unique CIC failing within milliseconds) are
    still listed as steps: the catalog comparison found their index. The code is the
    command's status when there is a command, made 1 when a build failed or the migration
    left an index INVALID or a constraint NOT VALID that was not so before it started: a
    migration that swallows a failed CIC still fails the deploy.
    """
    matched = {id(c) for s in steps if (c := _index_change(s, changes)) is not None}
    unseen = [c for c in changes if c.index and id(c) not in matched and "dropped" not in c.text]
    explained = any(c.bad for c in unseen) or any(c.bad for c in changes if id(c) in matched)
    lines = (
        [f"summary: {len(steps) + len(unseen)} step(s) on the migration's backends"]
        if follows
        else []
    )
    for number, step in enumerate(steps, 1):
        last = number == len(steps)
        blame = command_status if last and not explained else None
        outcome = step_outcome(step, changes, blame=blame)
        took = format_duration_precise(step.duration(now))
        lines.append(f"  step {number} (pid {step.pid}, {took}): {step.title()}: {outcome}")
    for number, change in enumerate(unseen, len(steps) + 1):
        outcome = "failed" if change.bad else "done"
        lines.append(
            f"  step {number} (too short to sample; found in the catalog): "
            f"index build {change.index}: {outcome}: {change.text}"
        )
    for build in finished:
        if build.outcome == "finished":
            continue  # seen before it had an index: the catalog lines say what became of it
        lines.append(f"  index build {build.label}: {build.outcome}: {build.detail}")
    lines += [f"  schema: {change.text}" for change in changes]
    failed_builds = [f for f in finished if f.outcome == "failed"]
    bad = [c for c in changes if c.bad]
    code = command_status or 0
    if (failed_builds or bad) and code == 0:
        code = EXIT_FAILED
    return Summary(lines, code)
