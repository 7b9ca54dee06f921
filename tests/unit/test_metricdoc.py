"""Unit tests for the README generators: metric tables, their sources, the module map."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from dbpulse.docgen.layout import LIMIT, MISSING, missing_notes, read_module, render_layout
from dbpulse.docgen.origins import Construction, Frame, choose_origins, record_origins
from dbpulse.metricdoc import END, LAYOUT_END, LAYOUT_START, START, render_table, splice


def test_render_table_names_types_and_labels() -> None:
    """Counters get their exposed _total name, labels come from samples, rows are sorted."""
    counter = CounterMetricFamily("pg_x", "x | things", labels=["datname"])
    counter.add_metric(["a"], 1)
    gauge = GaugeMetricFamily("pg_a", "a gauge")
    gauge.add_metric([], 2)
    table = render_table([counter, gauge], "T")
    lines = table.splitlines()
    assert lines[-2] == "| `pg_a` | gauge | — | a gauge |"
    assert lines[-1] == "| `pg_x_total` | counter | datname | x \\| things |"


def test_splice_replaces_only_between_markers() -> None:
    """Only the text between the markers changes."""
    readme = f"before\n{START}\nold\n{END}\nafter\n"
    assert splice(readme, "new\n") == f"before\n{START}\nnew\n{END}\nafter\n"


def test_splice_takes_other_markers() -> None:
    """The layout markers select their own block and leave the metric block alone."""
    readme = f"{START}\nm\n{END}\n{LAYOUT_START}\nold\n{LAYOUT_END}\n"
    spliced = splice(readme, "new\n", LAYOUT_START, LAYOUT_END)
    assert spliced == f"{START}\nm\n{END}\n{LAYOUT_START}\nnew\n{LAYOUT_END}\n"


def test_render_table_links_each_family_to_its_source() -> None:
    """With sources, a second column links the module under exporter/dbpulse/."""
    gauge = GaugeMetricFamily("pg_a", "a gauge")
    table = render_table([gauge], "T", {"pg_a": "sidecar/collectors/a.py"})
    header, _, row = table.splitlines()[-3:]
    assert header == "| metric | source | type | labels | meaning |"
    assert row == (
        "| `pg_a` | [sidecar/collectors/a.py](exporter/dbpulse/sidecar/collectors/a.py)"
        " | gauge | — | a gauge |"
    )


def test_render_table_refuses_a_family_without_source() -> None:
    """A family nobody was seen building is an error, not a blank cell."""
    with pytest.raises(LookupError, match="pg_b"):
        render_table([GaugeMetricFamily("pg_b", "b")], "T", {})


def test_choose_origins_skips_frames_that_were_handed_the_name() -> None:
    """A helper given the name is skipped; the first construction of a name wins."""
    helper, namer, runtime = (
        Frame("sidecar/families.py", passed_name=True),
        Frame("sidecar/collectors/locks.py", passed_name=False),
        Frame("sidecar/poller.py", passed_name=False),
    )
    copier = Frame("sidecar/merge.py", passed_name=False)
    built = [
        Construction("pg_locks_count", (helper, namer, runtime)),
        Construction("pg_locks_count", (copier, runtime)),
        Construction("pg_unbuilt", ()),
    ]
    assert choose_origins(built) == {"pg_locks_count": "sidecar/collectors/locks.py"}


def test_choose_origins_prefers_the_recording_thread() -> None:
    """A copy made meanwhile by another thread does not take the family's credit."""
    elsewhere = Construction("pg_up", (Frame("sidecar/merge.py", passed_name=False),), False)
    here = Construction("pg_up", (Frame("sidecar/snapshot.py", passed_name=False),))
    assert choose_origins([elsewhere, here]) == {"pg_up": "sidecar/snapshot.py"}


HELPERS = """
from prometheus_client.core import GaugeMetricFamily

def gauge(name, doc):
    return GaugeMetricFamily(name, doc)

def from_specs(specs):
    return [GaugeMetricFamily(name, doc) for name, doc in specs]

def with_prefix(prefix, columns):
    return [GaugeMetricFamily(f"{prefix}_{c}", c) for c in columns]

def merge(families):
    merged = {}
    for family in families:
        merged[family.name] = GaugeMetricFamily(family.name, family.documentation)
    return list(merged.values())
"""

COLLECTOR = """
from prometheus_client import Counter
import helpers

SPECS = [("pg_spec_a", "a"), ("pg_spec_b", "b")]

def build():
    return [helpers.gauge("pg_named", "n"), *helpers.from_specs(SPECS),
            *helpers.with_prefix("pg_stat_progress_vacuum", ["ratio"])]

def declare(registry):
    return Counter("db_client_things", "things", registry=registry)

def serve(families):
    return helpers.merge(families)
"""


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_record_origins_credits_the_module_that_names_the_family(tmp_path: Path) -> None:
    """Families built through another module's helpers are credited to the caller; copies never."""
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "collector.py").write_text(COLLECTOR)
    helpers = _load(tmp_path / "helpers.py")
    collector = _load(tmp_path / "collector.py")
    try:
        registry = CollectorRegistry()
        with record_origins(tmp_path) as built:
            serving = helpers.merge([GaugeMetricFamily("pg_named", "built outside")])
            families = collector.build()
            collector.declare(registry).inc()
            rendered = list(registry.collect())  # prometheus_client copies: not credited
            copies = collector.serve(families)  # a merge copies: not credited either
        origins = choose_origins(built)
    finally:
        sys.modules.pop("helpers", None)
        sys.modules.pop("collector", None)
    names = {f.name for f in families} | {f.name for f in rendered}
    assert {f.name for f in copies} | {f.name for f in serving} <= names
    assert names == {
        "pg_named",
        "pg_spec_a",
        "pg_spec_b",
        "pg_stat_progress_vacuum_ratio",
        "db_client_things",
    }
    assert origins == dict.fromkeys(names, "collector.py")


def test_record_origins_restores_the_constructors(tmp_path: Path) -> None:
    """After the block, building a family records nothing and behaves as before."""
    with record_origins(tmp_path) as built:
        pass
    family = GaugeMetricFamily("pg_after", "after")
    assert built == []
    assert family.name == "pg_after"


def test_read_module_takes_docstring_paragraph_and_notes() -> None:
    """The summary is the docstring's first paragraph; layout-note lines are joined."""
    text = '"""First line\nwraps here.\n\nSecond paragraph."""\n# layout-note: one\n# layout-note: two\n'
    module = read_module(text, "exporter/dbpulse/m.py")
    assert module.summary == "First line\nwraps here."
    assert module.note == "one two"
    assert module.lines == 6


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_layout_flags_a_long_module_without_a_note(tmp_path: Path) -> None:
    """At the limit without a note: flagged and marked; with a note: shown, not flagged."""
    body = "x = 1\n" * (LIMIT - 1)
    _tree(
        tmp_path,
        {
            "exporter/dbpulse/small.py": '"""Small | piped."""\n',
            "exporter/dbpulse/big.py": '"""Big."""\n' + body,
            "exporter/dbpulse/sub/noted.py": '"""Noted."""\n# layout-note: one table\n' + body,
            "benchmarks/bench.py": '"""Bench."""\n',
            "exporter/alias/__init__.py": '"""Alias."""\n',
            "tests/unit/test_a.py": '"""A."""\n',
            "tests/unit/__pycache__/junk.py": "",
        },
    )
    assert [m.path for m in missing_notes(tmp_path)] == ["exporter/dbpulse/big.py"]
    table = render_layout(tmp_path)
    assert f"| [`big.py`](exporter/dbpulse/big.py) | Big. | {MISSING} |" in table
    assert "| [`small.py`](exporter/dbpulse/small.py) | Small \\| piped. | |" in table
    assert "| [`sub/noted.py`](exporter/dbpulse/sub/noted.py) | Noted. | one table |" in table
    assert "| [`benchmarks/bench.py`](benchmarks/bench.py) | Bench. | |" in table
    assert "| [`exporter/alias/__init__.py`](exporter/alias/__init__.py) | Alias. | |" in table
    assert table.count("big.py") == 2  # listed once, in the package table (name and link)
    assert "| [`tests/unit/`](tests/unit) | — (1 modules) | |" in table
    assert "junk" not in table
