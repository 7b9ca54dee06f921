"""PostgreSQL statement text cut into pieces by PostgreSQL's own lexer (pure).

``pglast.parser.scan`` is libpg_query's binding of the server's scanner (scan.l), so a
literal ends exactly where the server ends it: ``E''`` takes backslash escapes and
``N''``/``''`` do not (``N'C:\\data\\'`` is one whole literal), ``U&''`` and its
``UESCAPE``, ``B''``/``X''``, ``$tag$..$tag$`` and nested ``/* /* */ */`` comments
included. It reports constants, parameters and comments as tokens; this module only
maps its token names onto :class:`Kind` and keeps the whitespace between tokens.

What it does not do, added here: it stops at the first error (a statement cut inside a
literal, as ``pg_stat_activity`` cuts at ``track_activity_query_size``) and returns
nothing, so the longest prefix it can scan is scanned again and the rest becomes one
:attr:`Kind.CUT`; it stops silently at a NUL byte, so any text it skipped that is not
whitespace is cut as well. Nothing after the first point it cannot read is ever kept.
"""

from __future__ import annotations

import re

from pglast.parser import ParseError, Token, scan

from dbpulse.sql.pieces import Kind, Piece, Pieces

__all__ = ["pg_pieces"]

_KINDS = {
    "SCONST": Kind.STRING,  # '', E'', $$..$$, $tag$..$tag$ (and the N of N'' just before)
    "USCONST": Kind.STRING,  # U&''
    "BCONST": Kind.STRING,  # B''
    "XCONST": Kind.STRING,  # X''
    "ICONST": Kind.NUMBER,
    "FCONST": Kind.NUMBER,
    "PARAM": Kind.PARAM,  # $1
    "C_COMMENT": Kind.COMMENT,
    "SQL_COMMENT": Kind.COMMENT,
    "UIDENT": Kind.IDENT,  # U&"..."
}
# The scanner's own whitespace (scan.l: space [ \t\n\r\f\v]); anything else it skipped
# is text it never read (after a NUL byte).
_GAP = re.compile(r"[ \t\n\r\f\v]*")
# A lone surrogate cannot be encoded to UTF-8 for the scanner; U+FFFD takes its place
# (one character for one, so positions still match the original text).
_SURROGATE = re.compile("[\ud800-\udfff]")
# Each retry scans a strictly shorter prefix; a few are plenty (one in practice).
_MAX_RETRIES = 8


def _scan(sql: str) -> tuple[list[Token], int]:
    """Tokens of the longest prefix the scanner accepts, and that prefix's length."""
    end = len(sql)
    for _ in range(_MAX_RETRIES):
        try:
            return scan(sql[:end]), end
        except ParseError as err:
            at = err.args[1] if len(err.args) > 1 else None
            if not isinstance(at, int) or not 0 <= at < end:
                return [], 0  # an error we cannot place: withhold everything
            end = at
        except Exception:  # noqa: BLE001 - whatever else the binding raises: fail closed
            return [], 0
    return [], 0


def _kind(name: str, text: str) -> Kind:
    kind = _KINDS.get(name)
    if kind is not None:
        return kind
    if name == "IDENT" and text.startswith('"'):
        return Kind.IDENT
    return Kind.CODE


def pg_pieces(sql: str) -> Pieces:
    """``sql`` as pieces, by PostgreSQL's scanner; ends in CUT where it could not go on."""
    tokens, scanned = _scan(sql if sql.isascii() else _SURROGATE.sub("\ufffd", sql))
    out: list[Piece] = []
    code: list[str] = []
    pos = 0
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not _GAP.fullmatch(sql, pos, tok.start):
            break  # defensive: the scanner never skips text in front of a token
        if tok.start > pos:
            code.append(sql[pos : tok.start])
        end = tok.end + 1
        kind = _kind(tok.name, sql[tok.start : end])
        if (
            tok.name == "NCHAR"
            and end - tok.start == 1
            and i + 1 < len(tokens)
            and tokens[i + 1].start == end
            and tokens[i + 1].name == "SCONST"
        ):
            # N'..' comes as the keyword NCHAR ("N") and the string: one literal.
            i += 1
            end = tokens[i].end + 1
            kind = Kind.STRING
        pos = end
        i += 1
        if kind is Kind.CODE:
            code.append(sql[tok.start : end])
            continue
        if code:
            out.append((Kind.CODE, "".join(code)))
            code = []
        out.append((kind, sql[tok.start : end]))
    if i == len(tokens):
        space = _GAP.match(sql, pos, scanned)  # the whitespace up to the end or the cut
        if space is not None and space.end() > pos:
            code.append(space.group())
            pos = space.end()
    if code:
        out.append((Kind.CODE, "".join(code)))
    if pos < len(sql):  # text the scanner did not read (or could not place): withheld
        out.append((Kind.CUT, ""))
    return tuple(out)
