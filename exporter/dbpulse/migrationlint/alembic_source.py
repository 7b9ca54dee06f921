"""An Alembic project -> statements attributed to revisions and lines, and its downgrades.

The offline SQL comes from the child process in ``alembic_driver``; each chunk carries
the revision file and line of the ``op.*`` call that emitted it. ``-- Running upgrade
a -> b`` comments mark where each revision starts for chunks written by env.py itself
(BEGIN, COMMIT, the alembic_version update).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbpulse.dsn import redact
from dbpulse.migrationlint.alembic_driver import MARK, URL_VARIABLE
from dbpulse.migrationlint.model import Statement, Unit
from dbpulse.migrationlint.sqlsource import SourceError, display_path, parse_text

_RUNNING = re.compile(r"^-- Running upgrade .*-> (\S+)", re.MULTILINE)
# Run as a script, not ``-m dbpulse...``: the project's interpreter (``--python``) may not
# have dbpulse's dependencies, and the driver needs only the standard library and Alembic.
DRIVER = Path(__file__).with_name("alembic_driver.py")
_TIMEOUT = 600.0


@dataclass(frozen=True)
class AlembicLint:
    statements: list[Statement]
    units: list[Unit]
    files: dict[str, list[str]]  # display path -> lines, for ignore comments
    order: list[str]  # revision ids, base to head
    heads: list[str]


def run_driver(
    *args: str,
    cwd: Path,
    python: str | None = None,
    url: str | None = None,
    timeout: float = _TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """The driver in a child, run where ``alembic`` would be: beside alembic.ini.

    ``python``: the project's interpreter (where Alembic and its models import); this one
    by default. ``url`` travels in the environment, never on the command line (where
    ``ps`` would show its password to every local user).
    """
    env = dict(os.environ)
    if url is not None:
        env[URL_VARIABLE] = url
    try:
        return subprocess.run(  # noqa: S603 - a named interpreter, our own script, no shell
            [python or sys.executable, str(DRIVER), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=env,
            check=False,
        )
    except OSError as err:
        raise SourceError(f"cannot run {python or sys.executable}: {err.strerror or err}") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"alembic did not finish within {timeout:.0f} s") from None


def driver_error(result: subprocess.CompletedProcess[str]) -> str:
    """The child's one-line reason (passwords redacted)."""
    for line in reversed(result.stderr.splitlines()):
        if line.startswith(MARK):
            return redact(line.removeprefix(MARK))
    lines = result.stderr.strip().splitlines()
    return redact(lines[-1]) if lines else f"alembic exited {result.returncode}"


def empty_downgrade(source: str) -> tuple[int, int] | None:
    """(first, last) line of ``def downgrade`` when its body does nothing (pure)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "downgrade":
            body = list(node.body)
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            idle = all(
                isinstance(s, ast.Pass)
                or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
                for s in body
            )
            return (node.lineno, node.end_lineno or node.lineno) if idle else None
    return (1, 1)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SourceError(f"{path}: cannot read: {err}") from None


def from_document(document: dict[str, Any]) -> AlembicLint:
    """The driver's JSON -> statements, units and file lines (no process, no database)."""
    revisions: dict[str, str] = document["revisions"]
    shown = {rev: display_path(Path(path)) for rev, path in revisions.items()}
    statements: list[Statement] = []
    current = ""
    seen: list[str] = []
    for chunk in document["chunks"]:
        text: str = chunk["text"]
        for match in _RUNNING.finditer(text):
            current = match.group(1)
            if current not in seen:
                seen.append(current)
        revision = chunk["revision"] or current
        file = display_path(Path(chunk["file"])) if chunk["file"] else shown.get(revision, "")
        line = chunk["line"] or 1
        statements.extend(parse_text(text, file, revision, line=line))
    files: dict[str, list[str]] = {}
    units: list[Unit] = []
    for rev in seen:
        path = Path(revisions[rev])
        source = _read(path)
        files[shown[rev]] = source.splitlines()
        empty = empty_downgrade(source)
        units.append(
            Unit(rev, shown[rev], empty[0] if empty else None, empty[1] if empty else None)
        )
    return AlembicLint(statements, units, files, document["order"], document["heads"])


def load(ini: Path, rng: str, python: str | None = None) -> AlembicLint:
    """Run ``alembic upgrade RANGE --sql`` for the project of ``ini`` and read its output."""
    if not ini.is_file():
        raise SourceError(f"{ini}: no such Alembic config file")
    with tempfile.TemporaryDirectory(prefix="dbpulse-lint-") as tmp:
        out = Path(tmp) / "offline.json"
        result = run_driver(
            "sql", str(ini.resolve()), rng, str(out), cwd=ini.resolve().parent, python=python
        )
        if result.returncode != 0 or not out.is_file():
            raise SourceError(f"alembic upgrade {rng} --sql failed: {driver_error(result)}")
        document = json.loads(out.read_text(encoding="utf-8"))
    return from_document(document)
