"""The sidecar's two SQL-text scrubbers, in one place so they can be replaced together.

``scrub_text`` serves ``/debug/statements``; ``literal_free`` serves slow-query spans.
Both are thin entry points: callers depend on their names and signatures only.
"""

from __future__ import annotations

import re

from dbpulse.inprocess.fingerprint import normalize

__all__ = ["TEXT_MAX", "literal_free", "scrub_text"]

# Quoted literals ('..', E'..', B'..', X'..', U&'..'), dollar-quoted strings, and a
# literal cut off by truncation. Parameters ($1) are not touched.
_LITERAL = re.compile(
    # E'' strings take backslash escapes (E'x\'y' is one literal); tried first.
    r"(?<!\w)[Ee]'(?:[^'\\]|\\.|'')*'"
    r"|(?<!\w)[Ee]'(?:[^'\\]|\\.|'')*$"
    r"|(?:(?<!\w)(?:[EeBbXxNn]|[Uu]&))?'(?:[^']|'')*'"
    r"|\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$"
    r"|(?:(?<!\w)(?:[EeBbXxNn]|[Uu]&))?'[^']*$"
    r"|\$(?:[A-Za-z_]\w*)?\$.*$",
    re.DOTALL,
)


def scrub_text(text: str, max_length: int) -> str:
    """Replace literals with '?' and truncate; for the debug view only."""
    scrubbed = _LITERAL.sub("'?'", text)
    if len(scrubbed) > max_length:
        return scrubbed[: max(0, max_length - 1)] + "\u2026"
    return scrubbed


TEXT_MAX = 2000
# After normalize() every complete literal is '?': a quote or dollar quote still left
# opens a literal the server's cut (track_activity_query_size) left unterminated.
_UNTERMINATED = re.compile(r"'|\$(?:[A-Za-z_]\w*)?\$")


def literal_free(raw: str | None) -> str:
    """The statement with every literal and comment gone, at most TEXT_MAX characters.

    Everything from an unterminated literal on is dropped (a quoted identifier holding
    a quote goes too: losing some text is better than keeping a literal).
    """
    if not raw:
        return ""
    text = normalize(raw)
    cut = _UNTERMINATED.search(text)
    if cut is not None:
        text = text[: cut.start()] + "?"
    return text[:TEXT_MAX]
