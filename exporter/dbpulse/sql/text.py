"""Normalise, scrub and strip statement text (pure; cached per statement text).

Every rendering walks the lexer's pieces (:mod:`dbpulse.sql.pieces`), so what counts as
a literal or a comment is decided once, by the lexer, never by a regular expression
over raw text. Constants and the unreadable rest of a statement (:attr:`Kind.CUT`)
always become a placeholder; comments are dropped. Regular expressions only run over
code pieces (bind parameter styles a driver adds, which no SQL lexer knows) and over
text that no longer holds any literal (collapsing IN lists).
"""

from __future__ import annotations

import re
from functools import lru_cache

from dbpulse.sql.pglexer import pg_pieces
from dbpulse.sql.pieces import Kind, Pieces
from dbpulse.sql.simplelexer import simple_pieces

__all__ = ["POSTGRESQL", "comments", "normalize", "pieces", "scrub", "strip_comments"]

# SQLAlchemy's dialect name; every other name takes the simple tokenizer.
POSTGRESQL = "postgresql"
# Results are small and statements repeat: a bounded LRU per function keeps the lexer
# off the per-statement path (a hit is one dict lookup).
_CACHE_SIZE = 4096

# Bind parameter styles of DB-API drivers (pyformat, format, named, qmark) and
# SQLAlchemy's not yet expanded IN list; only ever applied to code pieces (the lexers
# report numeric $1 themselves, and $ inside a name such as a$1 is part of the name).
_DRIVER_PARAM = re.compile(
    r"(?P<postcompile>\(?__\[POSTCOMPILE_[^\]]*\]\)?)"
    r"|(?:%\([^)]*\)s|%s|(?<![:\w$?]):[^\W\d][\w$]*)(?![\w$])|\?"
)
# SQL's whitespace only: str.split() would also split at U+0085 or U+00A0, which
# PostgreSQL reads as letters of a name (\x85$$ is one name; $$ alone opens a string).
_SPACE = re.compile(r"[ \t\n\r\f\v]+")
# After literals are '?', repeated list elements collapse: IN (?, ?, ?) -> IN (?),
# VALUES (?, ?), (?, ?) -> VALUES (?, ?).
_ROWS = re.compile(r"(\((?:\?\s*,\s*)*\?\))(?:\s*,\s*\((?:\?\s*,\s*)*\?\))+")
_IN_LIST = re.compile(r"\b(IN)\s*\(\s*\?(?:\s*,\s*\?)+\s*\)", re.IGNORECASE)
# What scrub() shows for a constant; other pieces as written.
_SCRUBBED = {Kind.STRING: "'?'", Kind.CUT: "'?'", Kind.NUMBER: "?"}


def pieces(sql: str, dialect: str = POSTGRESQL) -> Pieces:
    """``sql`` cut into pieces by PostgreSQL's lexer, or the simple one for other dialects."""
    return pg_pieces(sql) if dialect == POSTGRESQL else simple_pieces(sql, dialect)


def _driver_param(m: re.Match[str]) -> str:
    return "(?)" if m.lastgroup == "postcompile" else "?"


@lru_cache(maxsize=_CACHE_SIZE)
def normalize(sql: str, dialect: str = POSTGRESQL) -> str:
    """One-line SQL, comments gone, every constant and parameter ``?``, lists collapsed.

    A statement the lexer cannot read to its end ends in ``?`` where it stopped.
    """
    out: list[str] = []
    for kind, text in pieces(sql, dialect):
        if kind is Kind.CODE:
            out.append(_DRIVER_PARAM.sub(_driver_param, text))
        elif kind is Kind.IDENT:
            out.append(text)
        elif kind is Kind.COMMENT:
            out.append(" ")
        else:  # STRING, NUMBER, PARAM, CUT
            out.append("?")
    text = _SPACE.sub(" ", "".join(out)).strip(" ")
    text = _ROWS.sub(r"\1", text)
    return _IN_LIST.sub(r"\1 (?)", text)


@lru_cache(maxsize=_CACHE_SIZE)
def scrub(sql: str, max_length: int | None = None) -> str:
    """PostgreSQL text as written, but ``'?'`` for strings, ``?`` for numbers, no comments.

    For showing a statement whose constants the server may have kept (pg_stat_statements
    keeps a utility statement's): layout and ``$n`` placeholders stay. The rest of a
    statement the lexer cannot read becomes ``'?'``. Cut to ``max_length`` characters
    (the last one an ellipsis) after scrubbing, so a cut never reopens a literal.
    """
    out: list[str] = []
    after_comment = False
    for kind, raw in pieces(sql, POSTGRESQL):
        if kind is Kind.COMMENT:
            # A comment separates tokens: keep one space, never a run of them.
            if out and not out[-1][-1:].isspace():
                out.append(" ")
            after_comment = True
            continue
        text = _SCRUBBED.get(kind, raw)
        if kind is not Kind.CODE and text[:1] == "'" and out and out[-1][-1:] == "'":
            text = " " + text  # '?''?' would read as one string holding a quote
        if after_comment and (not out or out[-1][-1:].isspace()):
            text = text.lstrip(" \t")
        if text:
            after_comment = False
            out.append(text)
    scrubbed = "".join(out)
    if max_length is not None and len(scrubbed) > max_length:
        return scrubbed[: max(0, max_length - 1)] + "\u2026"
    return scrubbed


def strip_comments(sql: str, dialect: str = POSTGRESQL) -> str:
    """``sql`` with each comment replaced by a space, literals left as they are.

    Text the lexer cannot read (an unterminated comment or literal) is dropped.
    """
    return "".join(
        " " if kind is Kind.COMMENT else text
        for kind, text in pieces(sql, dialect)
        if kind is not Kind.CUT
    )


def comments(sql: str, dialect: str = POSTGRESQL) -> tuple[str, ...]:
    """The comments of ``sql`` as written, e.g. for a ``traceparent`` to be read from.

    Only real comments: a ``traceparent='...'`` inside a string literal is not one.
    """
    return tuple(text for kind, text in pieces(sql, dialect) if kind is Kind.COMMENT)
