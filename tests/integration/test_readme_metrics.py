"""The README's metric tables match what the code emits."""

from __future__ import annotations

from pathlib import Path

from dbpulse.localpg import LocalPostgres
from dbpulse.metricdoc import END, START, render_live

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_metric_tables_are_current(pg: LocalPostgres) -> None:
    """Regenerating the tables from a live run gives exactly what README.md holds."""
    text = README.read_text(encoding="utf-8")
    block = text[text.index(START) + len(START) : text.index(END)].strip()
    fresh = render_live(pg.dsn).strip()
    assert block == fresh, (
        "README metric tables are stale: python -m dbpulse.metricdoc --write README.md"
    )
