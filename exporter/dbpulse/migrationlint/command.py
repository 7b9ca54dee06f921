"""``dbpulse lint-migrations``: exit 0 clean, 1 on an error-level finding, 2 on bad input."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

import psycopg

from dbpulse.dsn import remember
from dbpulse.errors import first_line
from dbpulse.migrationlint import alembic_source, live, render, roundtrip
from dbpulse.migrationlint.engine import exit_code, lint
from dbpulse.migrationlint.model import Finding, Statement, Unit
from dbpulse.migrationlint.sqlsource import (
    SourceError,
    display_path,
    parse_text,
    read_text,
    sql_files,
)
from dbpulse.migrationlint.state import Context

EXIT_UNUSABLE = 2


def _fail(message: str) -> int:
    print(f"dbpulse lint-migrations: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def _context(args: argparse.Namespace, dsn: str | None) -> Context:
    ctx = Context(server_major=args.pg_version, small_rows=args.small_table_rows)
    if dsn:
        facts = live.fetch(dsn)
        ctx = Context(
            server_major=facts.server_version_num // 10000,
            server_version_num=facts.server_version_num,
            table_rows=facts.rows,
            live=True,
            small_rows=args.small_table_rows,
            column_types=facts.columns,
        )
    return ctx


def _sql_inputs(paths: list[Path], assume_tx: bool) -> tuple[list[Statement], dict[str, list[str]]]:
    statements: list[Statement] = []
    files: dict[str, list[str]] = {}
    for path in sql_files(paths):
        text = read_text(path)
        shown = display_path(path)
        files[shown] = text.splitlines()
        if assume_tx:
            statements.extend(parse_text("BEGIN", shown, shown))
        statements.extend(parse_text(text, shown, shown))
        if assume_tx:
            statements.extend(parse_text("COMMIT", shown, shown))
    return statements, files


def _roundtrip(args: argparse.Namespace, dsn: str | None, out: TextIO) -> int:
    if args.alembic is None or not dsn:
        return _fail("--roundtrip needs --alembic INI and --dsn (a server to create a database on)")
    project = alembic_source.load(args.alembic, "base:heads", args.python)
    if len(project.heads) != 1:
        return _fail(f"--roundtrip needs one head, found {len(project.heads)}")

    def say(line: str) -> None:
        print(f"roundtrip: {line}", file=out, flush=True)

    report = roundtrip.run(args.alembic, dsn, project.order, say, python=args.python)
    failed = report.failed
    if failed is None:
        say(f"ok: {len(project.order)} revision(s) up, down to base and up again")
        return 0
    say(f"FAILED at {failed.action}: {failed.detail}")
    return 1


def _load(
    args: argparse.Namespace, dsn: str | None
) -> tuple[list[Statement], list[Unit], dict[str, list[str]], Context]:
    """Statements, Alembic units, file lines (for ignores) and the starting context."""
    if args.alembic is None and not args.paths:
        raise SourceError(
            "nothing to lint: pass SQL files or directories, or --alembic alembic.ini"
        )
    if args.alembic is not None and args.paths:
        raise SourceError("pass either SQL paths or --alembic, not both")
    ctx = _context(args, dsn)
    if args.alembic is not None:
        project = alembic_source.load(args.alembic, args.range, args.python)
        return project.statements, project.units, project.files, ctx
    statements, files = _sql_inputs(args.paths, args.assume_in_transaction)
    return statements, [], files, ctx


def _write(out: TextIO, fmt: str | None, findings: list[Finding], code: int, checked: int) -> None:
    fmt = fmt or _default_format(out)
    if fmt == "json":
        render.write_json(out, findings, code, checked)
    elif fmt == "github":
        render.write_github(out, findings)
    else:
        render.write_table(out, findings, code, checked, color=out.isatty())


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    dsn = args.dsn or os.environ.get("DBPULSE_DSN")
    if dsn:
        remember(dsn)
    try:
        if args.list_rules:
            render.write_rules(stream)
            return 0
        if args.roundtrip:
            return _roundtrip(args, dsn, stream)
        statements, units, files, ctx = _load(args, dsn)
    except (SourceError, live.LiveError, roundtrip.RoundtripError) as err:
        return _fail(str(err))
    except psycopg.Error as err:  # the server went away during --roundtrip
        return _fail(f"database error: {first_line(err)}")
    findings = lint(statements, units, files, ctx)
    code = exit_code(findings)
    _write(stream, args.format, findings, code, len(statements))
    return code


def _default_format(stream: TextIO) -> str:
    """Annotations inside GitHub Actions, else the table (plain when not a terminal)."""
    if os.environ.get("GITHUB_ACTIONS") == "true" and not stream.isatty():
        return "github"
    return "table"
