"""/metrics bodies: cached per generation, live part appended, one EOF, one valid gzip member."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Hashable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.http import Endpoints
from dbpulse.http.barecounter import BareCounter, PlainFamily
from dbpulse.http.exposition import MAX_ENTRIES, Exposition

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class Counting:
    """A collector that counts how often it is collected (an encoding collects once)."""

    def __init__(self, name: str, series: int = 3) -> None:
        self.name = name
        self.series = series
        self.collects = 0

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        self.collects += 1
        family = GaugeMetricFamily(self.name, "test family", labels=["i"])
        for i in range(self.series):
            family.add_metric([str(i)], float(i))
        yield family


class Generation:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> Hashable:
        return self.value


def _setup() -> tuple[Exposition, Counting, Counting, Generation]:
    cached, live = Counting("big_gauge", 500), Counting("live_gauge")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(cached)
    live_registry = CollectorRegistry(auto_describe=False)
    live_registry.register(live)
    generation = Generation()
    endpoints = Endpoints(registry=registry, live_registry=live_registry, generation=generation)
    return Exposition(endpoints), cached, live, generation


def _body(exposition: Exposition, accept: str = "", *, gz: bool = False) -> bytes:
    return b"".join(exposition.render(accept, gzip=gz).chunks)


def test_cached_part_is_encoded_once_per_generation() -> None:
    """Scrapes at one generation collect the cached registry once; a new generation re-encodes."""
    exposition, cached, live, generation = _setup()
    first = _body(exposition)
    second = _body(exposition)
    assert first == second
    assert cached.collects == 1
    assert live.collects == 2  # the live part is encoded at every scrape
    cached.series = 2
    assert _body(exposition) == first  # unchanged generation: the old encoding is still served
    generation.value = 1
    changed = _body(exposition)
    assert cached.collects == 2
    assert b'big_gauge{i="2"}' in first
    assert b'big_gauge{i="2"}' not in changed


def test_no_generation_encodes_every_scrape() -> None:
    """Without a generation callable every scrape collects the registry afresh."""
    counting = Counting("g")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(counting)
    exposition = Exposition(Endpoints(registry=registry))
    _body(exposition)
    _body(exposition)
    assert counting.collects == 2


def test_openmetrics_body_has_one_eof_at_the_end() -> None:
    """Cached plus live OpenMetrics parts make one body ending in a single '# EOF'."""
    exposition, *_ = _setup()
    body = exposition.render(OPENMETRICS, gzip=False)
    assert body.content_type.startswith("application/openmetrics-text")
    text = b"".join(body.chunks)
    assert text.count(b"# EOF") == 1
    assert text.endswith(b"# EOF\n")
    assert b"big_gauge" in text
    assert b"live_gauge" in text
    # And without a live registry the EOF is still there, once.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Counting("solo"))
    solo = b"".join(Exposition(Endpoints(registry=registry)).render(OPENMETRICS, gzip=False).chunks)
    assert solo.count(b"# EOF") == 1
    assert solo.endswith(b"# EOF\n")


def test_gzip_body_is_one_member_equal_to_the_plain_body() -> None:
    """The gzip body decodes to the plain body and is a single gzip member (no trailing data)."""
    exposition, cached, _, _ = _setup()
    for accept in ("", OPENMETRICS):
        plain = _body(exposition, accept)
        packed = exposition.render(accept, gzip=True)
        assert packed.gzipped
        data = b"".join(packed.chunks)
        assert gzip.decompress(data) == plain
        single = zlib.decompressobj(16 + zlib.MAX_WBITS)
        assert single.decompress(data) == plain
        assert single.eof
        assert single.unused_data == b""
        assert len(data) < len(plain)
    assert cached.collects == 2  # once per format, reused by the gzip scrapes


def test_name_filter_restricts_both_parts() -> None:
    """name[] keeps only the requested series, from the cached and the live registry alike."""
    exposition, *_ = _setup()
    body = b"".join(exposition.render("", gzip=False, names=["live_gauge"]).chunks)
    assert b"live_gauge" in body
    assert b"big_gauge" not in body
    body = b"".join(exposition.render("", gzip=False, names=["big_gauge"]).chunks)
    assert b"big_gauge" in body
    assert b"live_gauge" not in body


def test_client_chosen_content_types_do_not_grow_the_cache() -> None:
    """Accept headers with ever-new versions keep at most MAX_ENTRIES encodings."""
    exposition, *_ = _setup()
    for minor in range(3 * MAX_ENTRIES):
        body = exposition.render(f"application/openmetrics-text; version=1.{minor}.0", gzip=False)
        assert f"version=1.{minor}.0" in body.content_type
    assert len(exposition._cache) <= MAX_ENTRIES


def test_refresh_encodes_used_formats_after_a_change() -> None:
    """refresh() re-encodes off the scrape path after a change; the next scrape only looks up."""
    exposition, cached, _, generation = _setup()
    _body(exposition)  # plain text: used, so worth refreshing
    exposition.render("", gzip=True)
    assert cached.collects == 1
    assert exposition.refresh() == 0  # unchanged: nothing to do
    generation.value = 1
    assert exposition.refresh() == 1  # the one used format is re-encoded
    assert cached.collects == 2
    assert exposition.refresh() == 0  # nothing stale any more
    cached.series = 1
    plain = _body(exposition)
    packed = b"".join(exposition.render("", gzip=True).chunks)
    assert cached.collects == 2  # both scrapes were served from the refreshed entry
    assert gzip.decompress(packed) == plain
    assert b'big_gauge{i="499"}' in plain  # encoded at refresh, before series changed


class _Bare:
    """postgres_exporter-named families: a counter without _total, an untyped column."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        counter = BareCounter("pg_stat_database_xact_commit", "commits", ["datname"])
        counter.add_metric(["app"], 7.0)
        untyped = PlainFamily("pg_stat_database_sessions", "sessions", "unknown", ["datname"])
        untyped.add_metric(["app"], 2.0)
        yield counter
        yield untyped


def _bare_exposition() -> Exposition:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Bare())
    return Exposition(Endpoints(registry=registry))


def test_bare_counters_keep_their_names_in_every_format() -> None:
    """Text, OpenMetrics, gzip and name[] all serve the counter as postgres_exporter names it."""
    exposition = _bare_exposition()
    sample = b'pg_stat_database_xact_commit{datname="app"} 7.0\n'
    for accept, typ in (("", b"untyped"), (OPENMETRICS, b"unknown")):
        for gz in (False, True):
            raw = _body(exposition, accept, gz=gz)
            text = gzip.decompress(raw) if gz else raw
            assert b"# TYPE pg_stat_database_xact_commit counter\n" + sample in text
            assert b"# TYPE pg_stat_database_sessions " + typ + b"\n" in text
            assert b"_total" not in text
    only = b"".join(
        exposition.render("", gzip=False, names=["pg_stat_database_xact_commit"]).chunks
    )
    assert only == b"# HELP pg_stat_database_xact_commit commits\n" + (
        b"# TYPE pg_stat_database_xact_commit counter\n" + sample
    )
