"""/metrics bodies: prometheus_client's encoders, encoded once per snapshot change.

A scrape of an unchanged snapshot costs a dictionary lookup plus the encoding of the
small live registry. ``Refresher`` re-encodes in the background a moment after each
change, so scrapes rarely encode the big part themselves. The body is the cached
part followed by the live part:

- text format 0.0.4: two runs of families simply concatenate;
- OpenMetrics: the cached part is stored without its ``# EOF`` line, so the body ends
  with the live part's single ``# EOF``;
- gzip: the cached part is deflated once and the compressor is kept, flushed with
  ``Z_SYNC_FLUSH`` (byte-aligned, stream still open). Each gzip scrape copies that
  compressor (``zlib`` copies are cheap), feeds it the live part and finishes it, so the
  response is ONE gzip member with a correct CRC and length over the whole body, valid
  for every decoder (not a multi-member stream, which some clients stop reading after
  the first member).

Requests with ``name[]`` filters (sample names, as prometheus_client's
``restricted_registry``) are encoded per request: rare, and usually small.
"""

from __future__ import annotations

import copy
import threading
import zlib
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from dbpulse.http.barecounter import text_encoder
from dbpulse.http.endpoints import Endpoints
from dbpulse.logging import get_logger

EOF = b"# EOF\n"
# Accept headers are client input and choose_encoder folds their version and escaping
# into the content type, our cache key: bound the number of kept encodings.
MAX_ENTRIES = 4
_EMPTY = CollectorRegistry(auto_describe=False)

Encoder = Callable[[Collector], bytes]


@dataclass(frozen=True)
class Body:
    content_type: str
    chunks: Sequence[bytes]
    gzipped: bool

    @property
    def length(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


class _Encoded:
    """One encoding of the cached registry; its gzip form is made on first demand."""

    def __init__(
        self, generation: Hashable, data: bytes, encoder: Encoder, *, openmetrics: bool
    ) -> None:
        self.generation = generation
        self.data = data
        self.encoder = encoder  # to make the next one in the same format
        self.openmetrics = openmetrics
        self._gzip: tuple[bytes, zlib._Compress] | None = None
        self._lock = threading.Lock()

    @property
    def gzip_made(self) -> bool:
        return self._gzip is not None

    def gzip_prefix(self) -> tuple[bytes, zlib._Compress]:
        with self._lock:
            if self._gzip is None:
                compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
                prefix = compressor.compress(self.data) + compressor.flush(zlib.Z_SYNC_FLUSH)
                self._gzip = (prefix, compressor)
            return self._gzip


class Exposition:
    """Renders /metrics for the endpoints' registries (read at each call)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self._endpoints = endpoints
        self._lock = threading.Lock()
        self._cache: dict[str, _Encoded] = {}

    def refresh(self) -> int:
        """Re-encode, off the scrape path, the formats scrapes have used; returns how many."""
        generation_of = self._endpoints.generation
        if generation_of is None:
            return 0
        generation = generation_of()  # before encoding, as in _cached
        with self._lock:
            stale = [(key, e) for key, e in self._cache.items() if e.generation != generation]
        for key, old in stale:
            data = _encode(old.encoder, self._endpoints.registry, openmetrics=old.openmetrics)
            fresh = _Encoded(generation, data, old.encoder, openmetrics=old.openmetrics)
            if old.gzip_made:
                fresh.gzip_prefix()
            with self._lock:
                if self._cache.get(key) is old:  # a scrape may have encoded it meanwhile
                    self._cache[key] = fresh
        return len(stale)

    def render(self, accept: str, *, gzip: bool, names: list[str] | None = None) -> Body:
        encoder, content_type = choose_encoder(accept)
        openmetrics = content_type.startswith("application/openmetrics-text")
        if not openmetrics:  # postgres_exporter's counters keep their names (barecounter.py)
            encoder = text_encoder(encoder)
        endpoints = self._endpoints
        live: Collector | None = endpoints.live_registry
        if names:
            registry: Collector = _restrict(endpoints.registry, names)
            live = _restrict(live, names) if live is not None else None
            data = _encode(encoder, registry, openmetrics=openmetrics)
            cached = _Encoded(None, data, encoder, openmetrics=openmetrics)
        else:
            cached = self._cached(encoder, content_type, openmetrics=openmetrics)
        # OpenMetrics needs exactly one "# EOF", at the very end: the live part's.
        tail = encoder(live if live is not None else _EMPTY) if openmetrics or live else b""
        if not gzip:
            return Body(content_type, (cached.data, tail), gzipped=False)
        prefix, compressor = cached.gzip_prefix()
        finish = compressor.copy()
        return Body(content_type, (prefix, finish.compress(tail) + finish.flush()), gzipped=True)

    def _cached(self, encoder: Encoder, content_type: str, *, openmetrics: bool) -> _Encoded:
        endpoints = self._endpoints
        if endpoints.generation is None:
            data = _encode(encoder, endpoints.registry, openmetrics=openmetrics)
            return _Encoded(None, data, encoder, openmetrics=openmetrics)
        # Read the generation BEFORE encoding: a change racing the encoding then only
        # makes the next scrape encode again, never keeps an old body.
        generation = endpoints.generation()
        # One lock: when the snapshot changes, concurrent scrapes wait for one encoding
        # instead of each doing it.
        with self._lock:
            entry = self._cache.get(content_type)
            if entry is None or entry.generation != generation:
                if entry is None and len(self._cache) >= MAX_ENTRIES:
                    self._cache.clear()
                data = _encode(encoder, endpoints.registry, openmetrics=openmetrics)
                entry = _Encoded(generation, data, encoder, openmetrics=openmetrics)
                self._cache[content_type] = entry
            return entry


class Refresher:
    """A thread calling ``Exposition.refresh`` every ``every`` seconds.

    With it, a scrape after a poll finds the new body already encoded (at a 15 s
    interval a lone Prometheus would otherwise pay for each encoding itself).
    """

    # Each collector's result is a change, and a poll's collectors finish one after
    # another: at most one encoding per turn, however many landed in it.
    def __init__(self, exposition: Exposition, every: float = 0.2) -> None:
        self._exposition = exposition
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dbpulse-exposition", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._exposition.refresh()
            # A collector failing here fails the next scrape too, visibly; this thread lives.
            except Exception:  # noqa: BLE001
                get_logger().exception("re-encoding /metrics failed")


def _encode(encoder: Encoder, registry: Collector, *, openmetrics: bool) -> bytes:
    data = encoder(registry)
    return data.removesuffix(EOF) if openmetrics else data


def _restrict(source: Collector, names: list[str]) -> Collector:
    return _Restricted(source, frozenset(names))


class _Restricted:
    """``name[]``: the samples whose names are listed, as ``restricted_registry`` picks them.

    Done here because ``CollectorRegistry.restricted_registry`` skips collectors that
    describe no names (the sidecar's snapshot and its cached and live parts) unless their
    registry was built with ``support_collectors_without_names``, which we do not own.
    """

    def __init__(self, source: Collector, names: frozenset[str]) -> None:
        self._source = source
        self._names = names

    def collect(self) -> Iterator[Metric]:
        for family in self._source.collect():
            samples = [s for s in family.samples if s.name in self._names]
            if samples:
                kept = copy.copy(family)  # keeps the class: a BareCounter stays one
                kept.samples = samples
                yield kept
