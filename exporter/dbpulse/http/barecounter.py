"""Counters named without ``_total``, as postgres_exporter exposes them, in both formats.

postgres_exporter's ``pg_stat_database_xact_commit`` is a counter whose sample has no
``_total`` suffix, served in text format 0.0.4 only, so Prometheus stores
``pg_stat_database_xact_commit`` with type counter. prometheus_client cannot say that:
its ``CounterMetricFamily`` appends ``_total`` to every sample, and its text encoder
appends ``_total`` to the counter's ``# TYPE`` line even when the samples lack it (the
samples would then be stored with no type at all). So:

- a ``BareCounter`` is a counter whose samples carry exactly the family's name;
- OpenMetrics renders it as is (``# TYPE x counter`` + ``x{...}``), which Prometheus'
  OpenMetrics parser stores as ``x``, type counter (checked against Prometheus 2.42);
- ``text_encoder`` wraps a text 0.0.4 encoder so that the ``# HELP``/``# TYPE`` lines of
  a ``BareCounter`` name the family as its samples do (``# TYPE x counter``).

Dropping ``_total`` from a dbpulse counter is only ever done to keep postgres_exporter's
name (its users' dashboards and alerts query that name).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

Encoder = Callable[[Collector], bytes]
_TYPE_GAUGE = re.compile(rb"^# TYPE (\S+) gauge\n", re.MULTILINE)


class PlainFamily(Metric):
    """A family of any type whose samples carry exactly its name (no suffix)."""

    def __init__(self, name: str, documentation: str, typ: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, typ)
        self._labelnames = tuple(labels)

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        self.add_sample(self.name, dict(zip(self._labelnames, labels, strict=True)), value)


class BareCounter(PlainFamily):
    """A counter family whose samples are named ``name`` (no ``_total``)."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, "counter", labels)


class _AsGauges:
    """The source's families, each ``BareCounter`` as a gauge copy (names recorded)."""

    def __init__(self, source: Collector) -> None:
        self._source = source
        self.bare: list[str] = []

    def collect(self) -> Iterator[Metric]:
        for metric in self._source.collect():
            if isinstance(metric, BareCounter):
                self.bare.append(metric.name)
                copy = Metric(metric.name, metric.documentation, "gauge")
                copy.samples = metric.samples
                yield copy
            else:
                yield metric


def text_encoder(encoder: Encoder) -> Encoder:
    """``encoder`` (text 0.0.4) with each ``BareCounter`` typed counter under its own name."""

    def encode(registry: Collector) -> bytes:
        view = _AsGauges(registry)
        data = encoder(view)
        if not view.bare:
            return data
        bare = {name.encode() for name in view.bare}
        # One pass over the body, whatever the number of such families.
        return _TYPE_GAUGE.sub(
            lambda m: b"# TYPE %s counter\n" % m[1] if m[1] in bare else m[0], data
        )

    return encode
