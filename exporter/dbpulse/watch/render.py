"""Terminal output: a live rich screen on a TTY, plain changed-lines otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbpulse.watch.model import BuildView, LockWait, ProbeView, View, build_label
from dbpulse.watch.rate import Estimate, format_duration, format_rate

if TYPE_CHECKING:
    from rich.console import RenderableType


def _percent(estimate: Estimate) -> str:
    return "?" if estimate.fraction is None else f"{estimate.fraction * 100:.1f}%"


def build_line(view: BuildView) -> str:
    b = view.build
    head = f"build {build_label(b)} [{b.command}] {b.phase}"
    if not view.unit:
        return head
    if view.unit == "lockers":
        locker = f", now pid {b.current_locker_pid}" if b.current_locker_pid else ""
        return f"{head}: waited for {view.done}/{view.total} lockers{locker}"
    est = view.estimate
    return (
        f"{head}: {view.unit} {view.done:,}/{view.total:,} ({_percent(est)}), "
        f"{format_rate(est.rate, view.unit)}, ETA {format_duration(est.eta_seconds)}"
    )


def wait_line(wait: LockWait) -> str:
    on = wait.relation or wait.locktype
    blockers = ", ".join(f"pid {pid} ({kind}, {state})" for pid, kind, state in wait.blockers)
    app = f" {wait.application_name}" if wait.application_name else ""
    return (
        f"wait pid {wait.pid} ({wait.kind}{app}) waits {format_duration(wait.wait_seconds)} "
        f"for {wait.mode} on {on}; blocked by {blockers or 'nobody (lock queue)'}"
    )


def probe_line(view: ProbeView) -> str:
    r = view.reading
    if r.error:
        return f"probe {r.name}: error: {r.error}"
    values = " ".join(f"{col}={value:g}" for col, value in r.values.items())
    if r.remaining is None:
        return f"probe {r.name}: {values}"
    est = view.estimate
    state = "done" if r.remaining == 0 else f"ETA {format_duration(est.eta_seconds)}"
    return (
        f"probe {r.name}: {values} ({_percent(est)} done), {format_rate(est.rate, 'rows')}, {state}"
    )


def plain_lines(view: View) -> list[str]:
    """Every fact of one refresh as a line of text (pure; the non-TTY output)."""
    lines = [build_line(b) for b in view.builds]
    lines += [wait_line(w) for w in view.waits]
    lines += [probe_line(p) for p in view.probes]
    lines += [f"{f.outcome} {f.label}: {f.detail}" for f in view.finished]
    return lines


def rich_view(view: View, target: str, extra: list[str] | None = None) -> RenderableType:
    """The live screen: a progress bar per index build, then lock waits and probes."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    parts: list[RenderableType] = [
        Text(
            f"dbpulse watch-migration {target}: {format_duration(view.elapsed)} (Ctrl-C to stop)",
            style="bold",
        )
    ]
    if view.builds:
        table = Table(title="index builds", expand=True)
        for column in ("index", "phase", "progress", "blocks", "tuples", "rate", "ETA"):
            table.add_column(column, overflow="fold")
        for bv in view.builds:
            b, est = bv.build, bv.estimate
            bar: RenderableType = Text(bv.unit and f"{bv.done}/{bv.total} {bv.unit}")
            if bv.total and bv.unit != "lockers":
                bar = Group(
                    ProgressBar(total=float(bv.total), completed=float(bv.done), width=24),
                    Text(f"{_percent(est)} of {bv.unit}"),
                )
            table.add_row(
                build_label(b),
                b.phase,
                bar,
                # Only the phase's own counter: the others keep an earlier phase's values.
                f"{b.blocks_done:,}/{b.blocks_total:,}" if bv.unit == "blocks" else "",
                f"{b.tuples_done:,}/{b.tuples_total:,}" if bv.unit == "tuples" else "",
                format_rate(est.rate, bv.unit) if bv.unit else "",
                format_duration(est.eta_seconds) if bv.unit else "",
            )
        parts.append(table)
    if view.waits:
        waits = Table(title="lock waits", expand=True)
        waits.add_column("lock wait", overflow="fold")
        for wait in view.waits:
            waits.add_row(Text(wait_line(wait).removeprefix("wait "), style="yellow"))
        parts.append(waits)
    if view.probes:
        probes = Table(title="probes", expand=True)
        probes.add_column("probe")
        probes.add_column("progress")
        probes.add_column("values", overflow="fold")
        for pv in view.probes:
            r = pv.reading
            progress: RenderableType = Text("")
            if r.remaining is not None and r.total:
                progress = ProgressBar(total=r.total, completed=r.total - r.remaining, width=24)
            probes.add_row(r.name, progress, probe_line(pv).split(": ", 1)[1])
        parts.append(probes)
    parts += [Text(line, style="cyan") for line in extra or []]
    for finished in view.finished:
        style = "green" if finished.outcome == "done" else "red"
        parts.append(Text(f"{finished.outcome} {finished.label}: {finished.detail}", style=style))
    if view.checking:
        parts.append(Text(f"checking whether {view.checking} ended build(s) left a valid index"))
    elif len(parts) == 1:
        parts.append(Text("nothing in flight yet: waiting for a migration to start"))
    return Group(*parts)
