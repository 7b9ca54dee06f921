"""Fuzz: arbitrary SQL-like text never breaks the scrubber, and its output holds no literal.

The oracle is PostgreSQL's own lexer run again over the output: whatever went in (cut
literals, stray quotes, NULs, unbalanced comments), what comes out scans as code and
placeholders only. ``DBPULSE_TEST_SQL_FUZZ_EXAMPLES`` sets the examples per test (default
300, a quick pass in the suite); the recorded long run is in benchmarks/README.md.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pglast.parser import scan

from dbpulse.sql import fingerprint, normalize, scrub
from dbpulse.sql.pieces import Kind
from dbpulse.sql.text import pieces
from tests.unit.sql.literals import statement

EXAMPLES = int(os.environ.get("DBPULSE_TEST_SQL_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])

_FRAGMENTS = st.sampled_from(
    [
        "'",
        "''",
        '"',
        "E'",
        "e'",
        "N'",
        "U&'",
        'U&"',
        "B'",
        "X'",
        " UESCAPE ",
        "\\",
        "\\'",
        "$",
        "$$",
        "$q$",
        "$1",
        "--",
        "/*",
        "*/",
        "\n",
        " ",
        "\x00",
        "::",
        ":a",
        "%s",
        "%(p)s",
        "?",
        "0x",
        "1e",
        "1_0",
        ".5",
        "42",
        "SELECT ",
        " FROM t ",
        "IN (",
        ")",
        ",",
        "é",
        "😀",
        "\ud800",
        "#",
        "`",
        "[",
        "]",
    ]
)
_SQLISH = st.lists(_FRAGMENTS | st.characters(), max_size=40).map("".join)
_CONSTANTS = {"SCONST", "USCONST", "BCONST", "XCONST", "ICONST", "FCONST"}
_COMMENTS = {"C_COMMENT", "SQL_COMMENT"}
_PLACEHOLDERS = re.compile(r"(?:[BbXxEeNn]|[Uu]&)?'\?'(?:\s*'\?')*")


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A generated statement with fragments inserted at random places."""
    sql = draw(statement())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(sql)))
        sql = sql[:at] + draw(_FRAGMENTS) + sql[at:]
    return sql


def _scan(text: str) -> list[tuple[str, str]]:
    """(token name, token text) by PostgreSQL's lexer; a lone surrogate (kept as written in
    a name) is swapped for U+FFFD first, as the module does, since UTF-8 cannot carry it."""
    safe = re.sub("[\ud800-\udfff]", "\ufffd", text)
    return [(tok.name, text[tok.start : tok.end + 1]) for tok in scan(safe)]


def _check_pg(sql: str) -> None:
    normalized = normalize(sql)
    for name, _ in _scan(normalized):
        assert name not in _CONSTANTS | _COMMENTS, (sql, normalized, name)
    assert normalize(normalized) == normalized
    scrubbed = scrub(sql)
    for name, text in _scan(scrubbed):
        assert name not in _COMMENTS, (sql, scrubbed, name)
        # Placeholders may re-lex as one constant ('?' '?' on two lines, or B'?' after a
        # name B): still nothing but placeholders.
        assert name not in _CONSTANTS or _PLACEHOLDERS.fullmatch(text), (sql, scrubbed, text)
    assert fingerprint(sql).text == normalized


@FUZZ
@given(_SQLISH)
def test_fuzz_postgresql_output_scans_without_literals(sql: str) -> None:
    """Arbitrary SQL-like text: normalize/scrub never raise and leave no constant or comment."""
    _check_pg(sql)


@FUZZ
@given(_mutated())
def test_fuzz_mutated_statements(sql: str) -> None:
    """Real statements with junk inserted anywhere: the same holds."""
    _check_pg(sql)


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "oracle"])
@FUZZ
@given(sql=_SQLISH)
def test_fuzz_other_dialects(dialect: str, sql: str) -> None:
    """The simple tokenizer: never raises, and its output re-lexes to code and '?' only."""
    out = normalize(sql, dialect)
    kinds = {kind for kind, _ in pieces(out, dialect)}
    assert kinds <= {Kind.CODE, Kind.IDENT, Kind.PARAM}, (sql, out)
