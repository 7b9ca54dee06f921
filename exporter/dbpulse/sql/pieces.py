"""The lexers' common output: a statement cut into pieces of a few kinds (pure).

Both lexers (PostgreSQL's own, via pglast, and the simple one for other dialects) turn
a statement into this one shape, so that every rendering (normalise, scrub, strip
comments) is written once and cannot treat a literal differently per dialect.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Kind", "Piece", "Pieces"]


class Kind(Enum):
    """What a piece of statement text is, as far as privacy goes."""

    CODE = "code"  # keywords, names, operators, punctuation and the whitespace between
    STRING = "string"  # any quoted constant: '', E'', N'', B'', X'', U&'', $$..$$
    NUMBER = "number"  # integer and float constants
    PARAM = "param"  # a bind parameter ($1, ?, :name, %(name)s)
    COMMENT = "comment"  # -- and /* */ comments
    IDENT = "ident"  # a quoted identifier, kept verbatim ("Users", `x`, [y])
    CUT = "cut"  # the lexer could not go on from here: the rest of the text is withheld


Piece = tuple[Kind, str]
Pieces = tuple[Piece, ...]
