"""Statement text of other dialects (SQLite, MySQL, ...) cut into pieces (pure).

Used in-process only, for engines that are not PostgreSQL, where the server's own lexer
does not apply. It knows what the common dialects agree on, plus the few rules where
they differ and that decide where a literal ends:

- backslashes in ``'..'``: an escape in MySQL/MariaDB, an ordinary character in SQLite
  and SQL Server; for any other dialect a string holding a backslash is not guessed at,
  the text is cut there;
- ``".."`` is a string in MySQL/MariaDB and a quoted identifier elsewhere (SQLite's
  legacy fallback, reading an unknown ``"name"`` as a string, is not followed:
  SQLAlchemy quotes names that way and never strings);
- ``[..]`` is a quoted identifier in SQLite and SQL Server;
- ``#`` starts a comment in MySQL/MariaDB.

It fails closed like the PostgreSQL path: an unterminated string, identifier or comment
ends the statement with :attr:`Kind.CUT`, and nothing after it is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from dbpulse.sql.pieces import Kind, Piece, Pieces

__all__ = ["simple_pieces"]


@dataclass(frozen=True)
class _Rules:
    backslash: bool | None  # escapes in '..'; None: unknown, cut at a backslash
    double_quote_string: bool = False
    brackets: bool = False
    hash_comment: bool = False


_DIALECTS = {
    "sqlite": _Rules(backslash=False, brackets=True),
    "mssql": _Rules(backslash=False, brackets=True),
    "mysql": _Rules(backslash=True, double_quote_string=True, hash_comment=True),
    "mariadb": _Rules(backslash=True, double_quote_string=True, hash_comment=True),
}
_OTHER = _Rules(backslash=None)


def _quoted(q: str, backslash: bool | None) -> str:
    """A complete quoted run: doubled quotes inside; backslash escapes when the dialect has them."""
    if backslash is None:
        return rf"{q}(?:[^{q}\\]|{q}{q})*{q}"  # no backslash at all: see the module note
    if backslash:
        return rf"{q}(?:[^{q}\\]|\\.|{q}{q})*{q}"
    return rf"{q}(?:[^{q}]|{q}{q})*{q}"


@lru_cache(maxsize=8)
def _pattern(rules: _Rules) -> re.Pattern[str]:
    single = _quoted("'", rules.backslash)
    strings = [rf"(?<![\w$])[NnXxBbEe]?{single}"]
    idents = [_quoted("`", False)]
    if rules.double_quote_string:
        strings.append(_quoted('"', rules.backslash))
    else:
        idents.append(_quoted('"', False))
    comment = r"--[^\n]*|/\*.*?\*/" + (r"|\#[^\n]*" if rules.hash_comment else "")
    code = [
        r"\s+",
        # SQLAlchemy's not yet expanded IN list, before [..] identifiers.
        r"\(?__\[POSTCOMPILE_[^\]]*\]\)?",
        r"[^\W\d][\w$]*",
    ]
    if rules.brackets:
        idents.append(r"\[[^\]]*\]")
    opener = r"""['"`]|/\*""" + (r"|\[" if rules.brackets else "")
    return re.compile(
        rf"""
        (?P<comment>{comment})
      | (?P<string>{"|".join(strings)})
      | (?P<ident>{"|".join(idents)})
      | (?P<code>{"|".join(code)})
      | (?P<param>\?\d*|(?<![:\w]):[^\W\d]\w*|[@$][^\W\d]\w*|\$\d+|%\([^)]*\)s|%s)
        # a number runs on into any letters glued to it: 12abc is withheld whole
      | (?P<number>0[xX][0-9A-Fa-f]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\w*)
      | (?P<cut>{opener})
      | (?P<punct>.)
        """,
        re.VERBOSE | re.DOTALL,
    )


_KIND = {
    "comment": Kind.COMMENT,
    "string": Kind.STRING,
    "ident": Kind.IDENT,
    "param": Kind.PARAM,
    "number": Kind.NUMBER,
}


def simple_pieces(sql: str, dialect: str) -> Pieces:
    """``sql`` as pieces by the simple tokenizer; ends in CUT where it could not go on."""
    pattern = _pattern(_DIALECTS.get(dialect, _OTHER))
    out: list[Piece] = []
    code: list[str] = []
    pos = 0
    while pos < len(sql):
        m = pattern.match(sql, pos)
        if m is None or m.lastgroup == "cut":
            break
        pos = m.end()
        kind = _KIND.get(m.lastgroup or "")
        if kind is None:
            code.append(m.group())
            continue
        if code:
            out.append((Kind.CODE, "".join(code)))
            code = []
        out.append((kind, m.group()))
    if code:
        out.append((Kind.CODE, "".join(code)))
    if pos < len(sql):
        out.append((Kind.CUT, ""))
    return tuple(out)
