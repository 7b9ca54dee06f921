"""Unit tests for the README metric-table generator."""

from __future__ import annotations

from dbpulse.metricdoc import END, START, render_table, splice
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


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
