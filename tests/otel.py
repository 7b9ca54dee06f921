"""Typed access to recorded OpenTelemetry spans (the SDK types these fields Optional)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan


def attrs(item: ReadableSpan | Event) -> Mapping[str, Any]:
    """A finished span's or event's attributes; a test failure if it has none."""
    assert item.attributes is not None
    return item.attributes


def times(span: ReadableSpan) -> tuple[int, int]:
    """A finished span's (start, end) in nanoseconds."""
    assert span.start_time is not None
    assert span.end_time is not None
    return span.start_time, span.end_time
