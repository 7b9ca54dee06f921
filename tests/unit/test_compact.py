"""Compacted families share label dicts and strings yet expose exactly the same text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.sidecar.compact import compact


def _families() -> list[Metric]:
    calls = CounterMetricFamily("pg_calls", "calls", labels=["datname", "queryid"])
    secs = CounterMetricFamily("pg_seconds", "seconds", labels=["datname", "queryid"])
    for qid in ("1", "2"):
        calls.add_metric(["app", qid], 3.0)
        secs.add_metric(["app", qid], 0.5)
    up = GaugeMetricFamily("pg_up", "up", labels=["target"])
    up.add_metric(["a"], 1.0)
    return [calls, secs, up]


class _Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _text(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return generate_latest(registry)


def test_compacted_families_render_identically() -> None:
    """Compaction changes no byte of the exposition."""
    assert _text(compact(_families())) == _text(_families())


def test_equal_label_sets_share_one_dict() -> None:
    """The same statement's labels in two families are one dict object, distinct sets are not."""
    calls, secs, _ = compact(_families())
    assert calls.samples[0].labels is secs.samples[0].labels
    assert calls.samples[0].labels is not calls.samples[1].labels
    assert calls.samples[0].labels == {"datname": "app", "queryid": "1"}
