"""W3C ``traceparent`` in SQL comments (sqlcommenter style): format and parse, pure.

The application side prepends ``/*traceparent='00-<trace>-<span>-<flags>'*/`` to a
statement; the sidecar finds it again in ``pg_stat_activity.query`` (or in
``application_name``) and makes its own span a child of that span. Only the
``traceparent`` value is ever extracted: the pattern matches 55 fixed hex characters,
so nothing else of the statement (its literals) can come through.
"""

from __future__ import annotations

import re

from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "SQL_APP_PATTERN",
    "SQL_PATTERN",
    "comment_for",
    "context_from",
    "find_traceparent",
    "format_traceparent",
    "parse_traceparent",
]

_VALUE = r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}"
_PATTERN = re.compile(rf"traceparent='?({_VALUE})")
# The same pattern as a PostgreSQL string literal for ``substring(text from pattern)``,
# which returns the parenthesised group: the database hands back the traceparent and
# nothing else of the statement.
SQL_PATTERN = "'" + rf"traceparent='?({_VALUE})".replace("'", "''") + "'"
# application_name holds at most 63 bytes, so there the bare 55-character value counts
# (e.g. SET application_name = '00-...-01', or a prefix of up to 8 characters).
SQL_APP_PATTERN = f"'({_VALUE})'"

# Parsing and formatting are OpenTelemetry's; only finding the value in SQL text is ours.
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACEPARENT = "traceparent"


def format_traceparent(ctx: SpanContext) -> str:
    """The W3C traceparent value of ``ctx``, written by OpenTelemetry's propagator ('' when
    ``ctx`` is invalid: the propagator writes nothing then)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, set_span_in_context(NonRecordingSpan(ctx)))
    return carrier.get(_TRACEPARENT, "")


def comment_for(ctx: SpanContext) -> str:
    """The comment to prepend to a statement ('' when ``ctx`` is not a valid span)."""
    if not ctx.is_valid:
        return ""
    return f"/*traceparent='{format_traceparent(ctx)}'*/ "


def find_traceparent(text: str | None) -> str | None:
    """The first traceparent value in ``text`` (a statement or application_name)."""
    if not text:
        return None
    found = _PATTERN.search(text)
    return found.group(1) if found else None


def context_from(value: str | None) -> Context | None:
    """An OpenTelemetry Context whose current span is the traceparent's, for ``parent=``;
    None when absent or invalid. OpenTelemetry's propagator parses it (W3C rules: a later
    version's extra fields are accepted, version ff and all-zero ids are not)."""
    if not value:
        return None
    ctx = _PROPAGATOR.extract({_TRACEPARENT: value})
    return ctx if get_current_span(ctx).get_span_context().is_valid else None


def parse_traceparent(value: str | None) -> SpanContext | None:
    """A remote SpanContext from a traceparent value; None when absent or invalid."""
    ctx = context_from(value)
    return None if ctx is None else get_current_span(ctx).get_span_context()
