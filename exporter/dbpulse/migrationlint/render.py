"""Linter output: a rich table for people, JSON for pipelines, GitHub workflow annotations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import TextIO

from dbpulse.migrationlint.catalog import RULES
from dbpulse.migrationlint.engine import worst
from dbpulse.migrationlint.model import Finding

_STYLE = {"ok": "green", "info": "blue", "warning": "yellow", "error": "bold red"}
_GITHUB = {"info": "notice", "warning": "warning", "error": "error"}


def write_json(out: TextIO, findings: Sequence[Finding], code: int, checked: int) -> None:
    document = {
        "status": worst(findings),
        "exit_code": code,
        "statements_checked": checked,
        "findings": [asdict(f) for f in findings],
    }
    json.dump(document, out, indent=2)
    out.write("\n")


def _escape_data(text: str) -> str:
    # GitHub's workflow-command escaping: % first, then line breaks.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def write_github(out: TextIO, findings: Sequence[Finding]) -> None:
    """``::error file=...,line=...,title=...::message`` lines, one per finding."""
    for f in findings:
        props = f"file={_escape_property(f.file)},line={f.line}"
        props += f",title={_escape_property('dbpulse ' + f.rule)}"
        message = _escape_data(f"{f.message}. Fix: {f.fix}")
        out.write(f"::{_GITHUB[f.level]} {props}::{message}\n")


def write_table(
    out: TextIO, findings: Sequence[Finding], code: int, checked: int, *, color: bool
) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(
        file=out, force_terminal=color, no_color=not color, width=None if color else 140
    )
    if findings:
        table = Table(title="dbpulse lint-migrations", show_lines=True, expand=True)
        table.add_column("level", no_wrap=True)
        table.add_column("where", overflow="fold")
        table.add_column("rule", overflow="fold")
        table.add_column("finding", ratio=3, overflow="fold")
        table.add_column("fix", ratio=3, overflow="fold")
        for f in findings:
            what = Text(f.message, style="bold")
            if f.statement:
                what.append("\n" + f.statement, style="dim")
            where = f"{f.file}:{f.line}" + (
                f"\n{f.unit}" if f.unit and f.unit not in f.file else ""
            )
            table.add_row(
                Text(f.level.upper(), style=_STYLE[f.level]), where, f.rule, what, Text(f.fix)
            )
        console.print(table)
    verdict = {0: "no errors", 1: "errors found: exit code 1"}.get(code, f"exit code {code}")
    console.print(
        Text(
            f"{worst(findings)}: {len(findings)} finding(s) in {checked} statement(s), {verdict}",
            style=_STYLE[worst(findings)],
        )
    )


def write_rules(out: TextIO) -> None:
    for rule in RULES:
        out.write(f"{rule.name}\t{rule.level}\t{rule.summary}\n")
