"""The README's generated sections match the code: metric tables and the module map."""

from __future__ import annotations

from pathlib import Path

from dbpulse.docgen.layout import LIMIT, missing_notes, render_layout
from dbpulse.localpg import LocalPostgres
from dbpulse.metricdoc import END, LAYOUT_END, LAYOUT_START, START, render_live

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
REGENERATE = "python -m dbpulse.metricdoc --write README.md"


def _block(start: str, end: str) -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index(start) + len(start) : text.index(end)].strip()


def test_readme_metric_tables_are_current(pg: LocalPostgres) -> None:
    """Regenerating the tables from a live run gives exactly what README.md holds."""
    block = _block(START, END)
    fresh = render_live(pg.dsn).strip()
    assert block == fresh, f"README metric tables are stale: {REGENERATE}"


def test_readme_metric_tables_name_a_source_for_every_family() -> None:
    """Every metric row links a module that exists in the package."""
    rows = [line for line in _block(START, END).splitlines() if line.startswith("| `")]
    assert rows
    for row in rows:
        link = row.split(" | ")[1]
        path = link[link.index("](") + 2 : -1]
        assert (ROOT / path).is_file(), row


def test_readme_layout_is_current() -> None:
    """The module map in README.md is what the source tree gives today."""
    assert _block(LAYOUT_START, LAYOUT_END) == render_layout(ROOT).strip(), (
        f"README module map is stale: {REGENERATE} (or add --layout-only)"
    )


def test_every_long_module_says_why() -> None:
    """No module reaches the line limit without a '# layout-note:' explaining it."""
    unexplained = [f"{m.path} ({m.lines} lines)" for m in missing_notes(ROOT)]
    assert not unexplained, (
        f"modules of {LIMIT}+ lines need a split or a '# layout-note: ...': {unexplained}"
    )
