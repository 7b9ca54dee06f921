"""Doctor output: a table for people (rich), JSON for pipelines. Pure apart from writing."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, TextIO

from dbpulse.doctor.facts import Facts
from dbpulse.doctor.findings import Finding, worst

_STYLE = {"ok": "green", "info": "blue", "warning": "yellow", "error": "bold red"}


def report(facts: Facts, findings: list[Finding], code: int) -> dict[str, Any]:
    """The JSON document: stable keys, one object per finding."""
    return {
        "target": facts.target,
        "database": facts.datname,
        "role": facts.role,
        "server_version": facts.server_version,
        "status": worst(findings),
        "exit_code": code,
        "findings": [asdict(finding) for finding in findings],
    }


def write_json(out: TextIO, facts: Facts, findings: list[Finding], code: int) -> None:
    json.dump(report(facts, findings, code), out, indent=2)
    out.write("\n")


def write_table(
    out: TextIO, facts: Facts, findings: list[Finding], code: int, *, color: bool
) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # On a terminal rich follows its width; in a file or pipe a fixed width keeps it stable.
    console = Console(
        file=out, force_terminal=color, no_color=not color, width=None if color else 120
    )
    table = Table(
        title=f"dbpulse doctor: {facts.target} as {facts.role} "
        f"(PostgreSQL {facts.server_version // 10000})",
        show_lines=True,
        expand=True,
    )
    table.add_column("level", no_wrap=True)
    table.add_column("check", overflow="fold")
    table.add_column("finding", ratio=3, overflow="fold")
    table.add_column("fix", ratio=3, overflow="fold")
    for finding in findings:
        what = Text(finding.title, style="bold")
        if finding.detail:
            what.append("\n" + finding.detail)
        fix = Text(finding.fix)
        for item in finding.items:
            fix.append("\n  " + item)
        table.add_row(
            Text(finding.level.upper(), style=_STYLE[finding.level]), finding.check, what, fix
        )
    console.print(table)
    verdict = {0: "no errors", 1: "errors found: exit code 1"}.get(code, f"exit code {code}")
    console.print(Text(f"{worst(findings)}: {verdict}", style=_STYLE[worst(findings)]))
