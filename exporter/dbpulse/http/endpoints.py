"""What the HTTP server serves: the registries behind /metrics, the other endpoints' callables."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


@dataclass
class Endpoints:
    """The server reads these attributes at each request, so they may be set after start.

    ``registry`` is encoded once per ``generation()`` value and the encoding reused while
    that value stays the same (``generation=None``: encoded at every scrape). Families whose
    value moves on its own (process CPU, snapshot age) belong in ``live_registry``, encoded
    at every scrape and appended to the cached part; keep it small, and never put one
    family in both (the body would name it twice).
    """

    registry: CollectorRegistry
    readiness: Callable[[], tuple[bool, str]] | None = None
    debug: Callable[[str], object] | None = None
    debug_names: Callable[[], list[str]] | None = None
    # /probe?target=NAME: query parameters in, (status, body, content type) out.
    probe: Callable[[dict[str, list[str]]], tuple[int, bytes, str]] | None = None
    live_registry: CollectorRegistry | None = None
    generation: Callable[[], Hashable] | None = None


class FamilySubset:
    """A collector exposing only the families of another whose names ``keep`` accepts.

    Splits one source (a sidecar snapshot) into the cacheable part and the live part
    without the source knowing about caching.
    """

    def __init__(self, source: Collector, keep: Callable[[str], bool]) -> None:
        self._source = source
        self._keep = keep

    def describe(self) -> list[Metric]:
        return []  # never collect at registration: the source may not be ready yet

    def collect(self) -> Iterator[Metric]:
        return (family for family in self._source.collect() if self._keep(family.name))


def split_live(
    source: Collector, live_names: Iterable[str], *, live_from: Collector | None = None
) -> tuple[CollectorRegistry, CollectorRegistry]:
    """Two registries: ``source``'s families not in ``live_names``, and those in it.

    ``live_from`` (default ``source``) is where the live families are read at each
    scrape: pass the one small collector that has them rather than a whole registry.
    """
    names = frozenset(live_names)
    cached = CollectorRegistry(auto_describe=False)
    cached.register(FamilySubset(source, lambda name: name not in names))
    live = CollectorRegistry(auto_describe=False)
    live.register(FamilySubset(live_from or source, names.__contains__))
    return cached, live
