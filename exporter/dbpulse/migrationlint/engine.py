"""Statements in order -> findings with a place, ignore comments applied (pure).

The context flows statement to statement (``state.advance``); each migration (Alembic
revision, SQL file) starts its own unit, statements outside any (env.py's) are the
preamble whose ``SET lock_timeout`` covers them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dbpulse.migrationlint.catalog import BY_NAME, LEVELS
from dbpulse.migrationlint.ignores import covering_lines, directives
from dbpulse.migrationlint.model import Finding, Hit, Statement, Unit
from dbpulse.migrationlint.rules import check, hit
from dbpulse.migrationlint.state import Context, advance, mark_preamble, start_unit
from dbpulse.sql import normalize

_EXCERPT = 160


def _finding(found: Hit, stmt: Statement) -> Finding:
    excerpt = normalize(stmt.text)
    if len(excerpt) > _EXCERPT:
        excerpt = excerpt[: _EXCERPT - 1] + "…"
    return Finding(
        found.rule, found.level, found.message, found.fix, stmt.file, stmt.line, stmt.unit, excerpt
    )


def lint_statements(statements: Sequence[Statement], ctx: Context) -> list[tuple[Finding, int]]:
    """Findings in statement order, each with the last line its ignore comments may sit on."""
    out: list[tuple[Finding, int]] = []
    unit: str | None = None
    for stmt in statements:
        if stmt.unit != unit:
            if not unit:
                ctx = mark_preamble(ctx)
            unit = stmt.unit
            ctx = start_unit(ctx)
        if stmt.node is None:
            out.append((_finding(hit("syntax-error", stmt.error), stmt), stmt.end_line))
            continue
        hits = check(stmt.node, ctx)
        warned = any(h.rule == "lock-timeout-missing" for h in hits)
        ctx = advance(ctx, stmt.node, warned=warned)
        out.extend((_finding(h, stmt), stmt.end_line) for h in hits)
    return out


def downgrade_findings(units: Sequence[Unit]) -> list[tuple[Finding, int]]:
    out: list[tuple[Finding, int]] = []
    for unit in units:
        if unit.downgrade_line is None:
            continue
        found = hit("missing-downgrade", f"revision {unit.name}: downgrade() does nothing")
        finding = Finding(
            found.rule,
            found.level,
            found.message,
            found.fix,
            unit.file,
            unit.downgrade_line,
            unit.name,
        )
        out.append((finding, unit.downgrade_end or unit.downgrade_line))
    return out


def apply_ignores(
    findings: Sequence[tuple[Finding, int]], files: Mapping[str, Sequence[str]]
) -> list[Finding]:
    """Drop findings an ignore comment with a reason covers; report bad ignore comments."""
    by_file = {path: directives(lines) for path, lines in files.items()}
    kept: list[Finding] = []
    for finding, end in findings:
        lines = files.get(finding.file)
        if lines is not None:
            covered = covering_lines(lines, finding.line, end)
            if any(
                d.line in covered and finding.rule in d.rules and d.reason
                for d in by_file.get(finding.file, [])
            ):
                continue
        kept.append(finding)
    for path, found in sorted(by_file.items()):
        for directive in found:
            unknown = [r for r in directive.rules if r not in BY_NAME]
            if unknown:
                entry = hit("ignore-unknown-rule", f"unknown rule(s): {', '.join(unknown)}")
                kept.append(_bare(entry, path, directive.line))
            if not directive.reason:
                entry = hit(
                    "ignore-needs-reason",
                    f"ignore={','.join(directive.rules)} has no `reason:`, so it ignores nothing",
                )
                kept.append(_bare(entry, path, directive.line))
    return kept


def _bare(found: Hit, path: str, line: int) -> Finding:
    return Finding(found.rule, found.level, found.message, found.fix, path, line, "")


def lint(
    statements: Sequence[Statement],
    units: Sequence[Unit],
    files: Mapping[str, Sequence[str]],
    ctx: Context,
) -> list[Finding]:
    raw = lint_statements(statements, ctx) + downgrade_findings(units)
    return apply_ignores(raw, files)


def worst(findings: Sequence[Finding]) -> str:
    return max((f.level for f in findings), key=LEVELS.index, default="ok")


def exit_code(findings: Sequence[Finding]) -> int:
    """1 when any finding is an error, so the linter can gate a merge or a deploy."""
    return 1 if any(f.level == "error" for f in findings) else 0
