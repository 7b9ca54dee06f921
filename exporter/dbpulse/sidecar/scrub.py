"""The sidecar's two SQL-text scrubbers: thin entry points onto ``dbpulse.sql``.

``scrub_text`` serves ``/debug/statements``; ``literal_free`` serves slow-query spans.
PostgreSQL's own lexer (pglast) decides what a constant or a comment is, so every
constant kind and every comment goes, utility statements (SET, CALL, EXPLAIN, ALTER
ROLE ... PASSWORD) included; text after a point the lexer cannot read (a statement the
server cut at track_activity_query_size) becomes one placeholder.
"""

from __future__ import annotations

from dbpulse.sql import normalize, scrub

__all__ = ["TEXT_MAX", "literal_free", "scrub_text"]

TEXT_MAX = 2000


def scrub_text(text: str, max_length: int) -> str:
    """Constants '?' (strings) or ? (numbers), comments gone, truncated; debug view only."""
    return scrub(text, max_length)


def literal_free(raw: str | None) -> str:
    """The statement on one line with every constant and comment gone, at most TEXT_MAX."""
    return normalize(raw)[:TEXT_MAX] if raw else ""
