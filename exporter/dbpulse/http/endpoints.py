"""What the HTTP server serves: the registries behind /metrics, the other endpoints' callables."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry


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
