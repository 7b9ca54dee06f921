"""The README's module map, read from the source tree: path, size, docstring, layout note.

Modules stay under ``LIMIT`` lines. One that does not carries its reason in the module
itself, as a comment line (continued by further ``# layout-note:`` lines)::

    # layout-note: one data structure, the dashboard's panels in screen order

A module at or over the limit without a note is listed by ``missing_notes`` and marked in
the table, and the generator exits non-zero, so the rule cannot be forgotten quietly.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

LIMIT = 300
NOTE = re.compile(r"^#\s*layout-note:\s*(.*?)\s*$")
PACKAGE = "exporter/dbpulse"
# Python code outside the package (the rest of exporter/, say a compatibility alias, too);
# tests are summarised per folder (there are dozens).
AROUND = ("exporter", "benchmarks", "grafana", "deploy", ".ci")
TESTS = "tests"
_SKIP = {"__pycache__", "out", ".venv", "build", "dist"}
MISSING = "**no layout note: split it or add one**"


@dataclass(frozen=True)
class Module:
    path: str  # relative to the repository root, POSIX separators
    lines: int
    summary: str  # first paragraph of the module docstring ("" when there is none)
    note: str  # the joined layout-note comment ("" when there is none)

    @property
    def needs_note(self) -> bool:
        return self.lines >= LIMIT and not self.note


def read_module(text: str, path: str) -> Module:
    """What the map shows for one module's source text (pure)."""
    try:
        doc = ast.get_docstring(ast.parse(text)) or ""
    except SyntaxError:  # the map is no compiler: show the file, let the linters complain
        doc = ""
    summary = doc.strip().split("\n\n", 1)[0]  # the first paragraph: lines wrap mid-sentence
    notes = [m.group(1) for m in map(NOTE.match, text.splitlines()) if m]
    return Module(path, len(text.splitlines()), summary, " ".join(n for n in notes if n))


def _python_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*.py")
        if not _SKIP.intersection(p.relative_to(folder).parts[:-1])
        and not any(part.startswith(".") for part in p.relative_to(folder).parts[:-1])
    )


def scan(root: Path, folders: tuple[str, ...]) -> list[Module]:
    """Every Python module under ``folders`` of the tree at ``root``, sorted by path."""
    return [
        read_module(path.read_text(encoding="utf-8"), path.relative_to(root).as_posix())
        for folder in folders
        for path in _python_files(root / folder)
    ]


def _around(root: Path) -> list[Module]:
    return [m for m in scan(root, AROUND) if not m.path.startswith(f"{PACKAGE}/")]


def missing_notes(root: Path) -> list[Module]:
    """Modules at or over ``LIMIT`` lines with no layout note, anywhere in the tree."""
    modules = [*scan(root, (PACKAGE, TESTS)), *_around(root)]
    return sorted((m for m in modules if m.needs_note), key=lambda m: m.path)


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("|", "\\|") or "—"


def _row(module: Module, shown: str) -> str:
    note = MISSING if module.needs_note else _cell(module.note) if module.note else ""
    # No line counts: they would make the README stale at every edit; size shows only
    # where it matters, as the note a module of LIMIT lines or more must carry.
    cells = [f"[`{shown}`]({module.path})", _cell(module.summary), note]
    return _join(cells)


def _join(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |" if cells[-1] else "| " + " | ".join(cells[:-1]) + " | |"


def _test_folders(root: Path) -> list[str]:
    modules = scan(root, (TESTS,))
    by_folder: dict[str, list[Module]] = {}
    for module in modules:
        by_folder.setdefault(module.path.rsplit("/", 1)[0], []).append(module)
    rows = []
    for folder, members in sorted(by_folder.items()):
        init = next((m for m in members if m.path.endswith("/__init__.py")), None)
        summary = _cell(init.summary) if init is not None else "—"
        shown = f"{summary} ({len(members)} modules)"
        rows.append(_join([f"[`{folder}/`]({folder})", shown, ""]))
        rows.extend(_row(m, m.path) for m in members if m.lines >= LIMIT)
    return rows


def render_layout(root: Path) -> str:
    """The two Markdown tables of the module map (package, then everything around it)."""
    header = "| {} | what it is (docstring) | layout note |\n|---|---|---|\n"
    package = [_row(m, m.path.removeprefix(f"{PACKAGE}/")) for m in scan(root, (PACKAGE,))]
    around = [_row(m, m.path) for m in _around(root)] + _test_folders(root)
    return (
        f"**The package** (`{PACKAGE}/`, imported as `dbpulse`)\n\n"
        + header.format("module")
        + "\n".join(package)
        + "\n\n**Around it** (tests summarised per folder; any module over the limit listed)\n\n"
        + header.format("path")
        + "\n".join(around)
        + "\n"
    )
