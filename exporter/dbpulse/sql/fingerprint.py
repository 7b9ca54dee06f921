"""SQL fingerprints: parameterized text, operation name and main table (pure).

A fingerprint is what dbpulse puts in labels and logs instead of the SQL a driver saw, so
it must never carry a literal: its text is :func:`dbpulse.sql.text.normalize`'s (the
lexer's constants, comments and bind parameters gone, IN lists and multi-row VALUES
collapsed to one element). Operation and table are read from that text, which holds no
literal any more. The result is cached by statement string because the same few hundred
statements repeat millions of times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from dbpulse.sql.text import POSTGRESQL, normalize

__all__ = ["OPERATIONS", "Fingerprint", "fingerprint"]

# Operation names are a label: anything outside this set is reported as OTHER so a
# parser surprise can never mint new series.
OPERATIONS = frozenset(
    {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "COPY",
        "TRUNCATE",
        "CALL",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "SET",
        "SHOW",
        "RESET",
        "EXPLAIN",
        "VACUUM",
        "ANALYZE",
        "LOCK",
        "LISTEN",
        "NOTIFY",
        "PREPARE",
        "EXECUTE",
        "DEALLOCATE",
        "DISCARD",
        "CREATE TABLE",
        "CREATE INDEX",
        "CREATE VIEW",
        "CREATE SCHEMA",
        "CREATE SEQUENCE",
        "CREATE EXTENSION",
        "CREATE DATABASE",
        "CREATE TYPE",
        "CREATE FUNCTION",
        "CREATE TRIGGER",
        "DROP TABLE",
        "DROP INDEX",
        "DROP VIEW",
        "DROP SCHEMA",
        "DROP SEQUENCE",
        "DROP EXTENSION",
        "DROP DATABASE",
        "DROP TYPE",
        "DROP FUNCTION",
        "DROP TRIGGER",
        "ALTER TABLE",
        "ALTER INDEX",
        "ALTER SEQUENCE",
        "OTHER",
    }
)
_DDL_VERBS = frozenset({"CREATE", "DROP", "ALTER"})
_DDL_SKIP = frozenset(
    {"UNIQUE", "OR", "REPLACE", "TEMP", "TEMPORARY", "UNLOGGED", "GLOBAL", "LOCAL"}
)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a statement is, without its values."""

    text: str
    operation: str
    collection: str


_NAME_PART = r'(?:"(?:[^"]|"")*"|[A-Za-z_][\w$]*)'
_WORD = re.compile(rf"{_NAME_PART}(?:\.{_NAME_PART})*|\(|\)")


def _words(text: str) -> list[tuple[str, int]]:
    """Top-level-aware token list: (token, paren depth) for words and parens."""
    tokens: list[tuple[str, int]] = []
    depth = 0
    for m in _WORD.finditer(text):
        tok = m.group(0)
        if tok == "(":
            tokens.append((tok, depth))
            depth += 1
        elif tok == ")":
            depth = max(0, depth - 1)
            tokens.append((tok, depth))
        else:
            tokens.append((tok, depth))
    return tokens


def _ident(token: str) -> str:
    """A table name as written, quotes removed (``"Foo".bar`` -> ``Foo.bar``)."""
    if '"' not in token:
        return token
    parts = re.findall(r'"((?:[^"]|"")*)"|([^."]+)', token)
    return ".".join((q.replace('""', '"') if q else p) for q, p in parts)


def _is_name(token: str) -> bool:
    return token not in ("(", ")") and token.upper() not in _NOT_NAMES


_NOT_NAMES = frozenset(
    {"ONLY", "LATERAL", "IF", "EXISTS", "NOT", "TABLE", "SELECT", "VALUES", "WITH", "ON"}
)


def _name_after(tokens: list[tuple[str, int]], i: int) -> str:
    """The first table name at or after ``tokens[i]``, skipping ONLY / IF EXISTS."""
    while i < len(tokens):
        tok = tokens[i][0]
        if tok == "(":
            return ""
        if _is_name(tok):
            return _ident(tok)
        i += 1
    return ""


def _collection(op: str, tokens: list[tuple[str, int]], start: int) -> str:  # noqa: PLR0911 - one return per statement shape reads clearer than a table
    upper = [t.upper() for t, _ in tokens]
    depth0 = tokens[start][1] if start < len(tokens) else 0
    if op == "SELECT":
        # The first FROM at the statement's own level names the main table; when that
        # FROM is a subquery, the first FROM inside it is the next best answer.
        for want_top in (True, False):
            for i in range(start, len(tokens)):
                if upper[i] == "FROM" and (not want_top or tokens[i][1] == depth0):
                    name = _name_after(tokens, i + 1)
                    if name:
                        return name
        return ""
    keyword = {
        "INSERT": "INTO",
        "MERGE": "INTO",
        "DELETE": "FROM",
        "CREATE INDEX": "ON",
    }.get(op)
    if keyword is not None:
        for i in range(start, len(tokens)):
            if upper[i] == keyword:
                return _name_after(tokens, i + 1)
        return ""
    if op in ("UPDATE", "TRUNCATE", "COPY", "LOCK", "VACUUM", "ANALYZE"):
        return _name_after(tokens, start + 1)
    if " " in op:  # CREATE TABLE x, DROP TABLE IF EXISTS x, ALTER TABLE ONLY x
        for i in range(start + 1, len(tokens)):
            if upper[i] == op.split(" ", 1)[1]:
                return _name_after(tokens, i + 1)
    return ""


def _operation(tokens: list[tuple[str, int]]) -> tuple[str, int]:  # noqa: PLR0911 - one return per verb family
    """The statement's verb and the index of its token; WITH resolves to the main verb."""
    if not tokens:
        return "OTHER", 0
    first = tokens[0][0].upper()
    if first == "WITH":
        # CTE bodies sit inside parentheses, so the main statement's verb is the first
        # of these at depth 0 after the WITH.
        for i in range(1, len(tokens)):
            tok, depth = tokens[i]
            if depth == 0 and tok.upper() in ("SELECT", "INSERT", "UPDATE", "DELETE", "MERGE"):
                return tok.upper(), i
        return "SELECT", 0
    if first in _DDL_VERBS:
        for i in range(1, min(len(tokens), 6)):
            word = tokens[i][0].upper()
            if word in _DDL_SKIP:
                continue
            op = f"{first} {word}"
            return (op if op in OPERATIONS else "OTHER"), 0
        return "OTHER", 0
    if first in ("START", "END"):
        return ("BEGIN" if first == "START" else "COMMIT"), 0
    if first == "ABORT":
        return "ROLLBACK", 0
    if first == "(":
        for i, (tok, _depth) in enumerate(tokens):
            if tok.upper() == "SELECT":
                return "SELECT", i
    return (first if first in OPERATIONS else "OTHER"), 0


@lru_cache(maxsize=4096)
def fingerprint(sql: str, dialect: str = POSTGRESQL) -> Fingerprint:
    """Fingerprint one statement of ``dialect`` (SQLAlchemy's name; cached: bounded LRU)."""
    text = normalize(sql, dialect)
    tokens = _words(text)
    op, at = _operation(tokens)
    return Fingerprint(text=text, operation=op, collection=_collection(op, tokens, at))
