"""SQL text -> parsed statements with their lines; SQL files and directories -> units.

Statements are cut at ``;`` tokens of PostgreSQL's own scanner (a ``;`` inside a string,
``$$`` body or comment is not a cut), then each is parsed alone, so one syntax error
costs one statement, not the file.
"""

from __future__ import annotations

from pathlib import Path

import pglast
from pglast.parser import ParseError, scan

from dbpulse.migrationlint.model import Statement

_COMMENTS = {"SQL_COMMENT", "C_COMMENT"}
_SEMICOLON = "ASCII_59"


class SourceError(Exception):
    """Input the linter cannot read: a missing path, a directory without SQL, bad UTF-8."""


def _pieces(text: str) -> list[tuple[int, int]]:
    """(start, end) of each statement's text: first to last non-comment token."""
    try:
        tokens = scan(text)
    except ParseError:
        stripped = text.strip()
        if not stripped:
            return []
        at = text.index(stripped[0])
        return [(at, at + len(stripped))]  # unreadable: one statement, it will fail
    pieces: list[tuple[int, int]] = []
    start: int | None = None
    end = 0
    for token in tokens:
        if token.name in _COMMENTS:
            continue
        if token.name == _SEMICOLON:
            if start is not None:
                pieces.append((start, end))
            start = None
            continue
        if start is None:
            start = token.start
        end = token.end + 1
    if start is not None:
        pieces.append((start, end))
    return pieces


def parse_text(
    text: str, file: str, unit: str, *, line: int | None = None, first_line: int = 1
) -> list[Statement]:
    """The statements in ``text``; ``line``: every one sits on this line (an Alembic op call)."""
    out: list[Statement] = []
    # Lines counted incrementally: counting from 0 per statement is quadratic in file size.
    seen, lines_before = 0, 0
    for start, end in _pieces(text):
        body = text[start:end]
        lines_before += text.count("\n", seen, start)
        seen = start
        begin = line if line is not None else first_line + lines_before
        finish = line if line is not None else begin + body.count("\n")
        try:
            parsed = pglast.parse_sql(body)
        except ParseError as err:
            message = str(err.args[0]) if err.args else "syntax error"
            out.append(Statement(None, body, file, begin, finish, unit, error=message))
            continue
        for raw in parsed:
            out.append(Statement(raw.stmt, body, file, begin, finish, unit))
    return out


def sql_files(paths: list[Path]) -> list[Path]:
    """The .sql files named or found (sorted, recursively) under the directories named."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.sql") if p.is_file())
            if not found:
                raise SourceError(f"{path}: no .sql files in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise SourceError(f"{path}: no such file or directory")
    return files


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SourceError(f"{path}: not UTF-8") from None
    except OSError as err:
        raise SourceError(f"{path}: {err.strerror or err}") from None


def display_path(path: Path) -> str:
    """Relative to the working directory when under it: what GitHub annotations expect."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
