"""Statement text without literals, for both modes: normalise, fingerprint, scrub.

One place decides what in a statement is a literal or a comment: PostgreSQL text is cut
by PostgreSQL's own lexer (libpg_query's scanner, through pglast), other dialects'
(in-process only) by a simple tokenizer. Both fail closed: from the first point they
cannot read on (a statement cut inside a literal), nothing more is kept.

- :func:`normalize`: one line, every constant and bind parameter ``?``, comments gone,
  IN lists and multi-row VALUES collapsed (fingerprints, span and log text);
- :func:`fingerprint`: that text plus the operation and main table (metric labels);
- :func:`scrub`: PostgreSQL text with its layout, strings ``'?'`` and numbers ``?``,
  comments gone, cut to a length (the sidecar's ``/debug/statements``);
- :func:`strip_comments` and :func:`comments`: comments out, or only them (a
  ``traceparent`` comment is read from these, then dropped with the rest).

Results are cached per statement text (bounded LRU), so the lexer runs once per
distinct statement, never per execution.
"""

from __future__ import annotations

from dbpulse.sql.fingerprint import OPERATIONS, Fingerprint, fingerprint
from dbpulse.sql.text import POSTGRESQL, comments, normalize, scrub, strip_comments

__all__ = [
    "OPERATIONS",
    "POSTGRESQL",
    "Fingerprint",
    "comments",
    "fingerprint",
    "normalize",
    "scrub",
    "strip_comments",
]
