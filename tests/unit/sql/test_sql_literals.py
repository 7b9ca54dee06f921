"""dbpulse.sql: every PostgreSQL constant and comment kind, utility statements, cut texts."""

from __future__ import annotations

import pytest

from dbpulse.sql import comments, fingerprint, normalize, scrub, strip_comments
from dbpulse.sql.pieces import Kind
from dbpulse.sql.text import pieces


@pytest.mark.parametrize(
    ("sql", "normalized", "scrubbed"),
    [
        ("SELECT 'it''s' AS a", "SELECT ? AS a", "SELECT '?' AS a"),
        ("SELECT E'x\\'secret'", "SELECT ?", "SELECT '?'"),
        ("SELECT e'a\\\\', 'secret'", "SELECT ?, ?", "SELECT '?', '?'"),
        ("SELECT N'C:\\data\\', 'secret'", "SELECT ?, ?", "SELECT '?', '?'"),
        ("SELECT n'secret'", "SELECT ?", "SELECT '?'"),
        ("SELECT 'C:\\dir\\', 'secret'", "SELECT ?, ?", "SELECT '?', '?'"),
        ("SELECT B'1010', b'0101'", "SELECT ?, ?", "SELECT '?', '?'"),
        ("SELECT X'DEADBEEF', x'cafe'", "SELECT ?, ?", "SELECT '?', '?'"),
        ("SELECT U&'d\\0061t\\+000061'", "SELECT ?", "SELECT '?'"),
        ("SELECT U&'d!0061t' UESCAPE '!'", "SELECT ? UESCAPE ?", "SELECT '?' UESCAPE '?'"),
        ("SELECT $$it's secret$$", "SELECT ?", "SELECT '?'"),
        ("SELECT $tag$a $$ b $tag$, $q$secret$q$", "SELECT ?, ?", "SELECT '?', '?'"),
        ("SELECT 42, -7, 1.5, .5, 1e10, 2.5E-3", "SELECT ?, -?, ?, ?, ?, ?", None),
        ("SELECT 0x1F, 0o17, 0b101, 1_000_000", "SELECT ?, ?, ?, ?", "SELECT ?, ?, ?, ?"),
        ("SELECT DATE '2024-01-01', INTERVAL '1 day'", "SELECT DATE ?, INTERVAL ?", None),
        ("SELECT 'a' 'b'", "SELECT ? ?", "SELECT '?' '?'"),
    ],
)
def test_every_constant_kind_is_a_placeholder(
    sql: str, normalized: str, scrubbed: str | None
) -> None:
    """Each PostgreSQL constant syntax ends where the server ends it and becomes a placeholder."""
    assert normalize(sql) == normalized
    if scrubbed is not None:
        assert scrub(sql) == scrubbed
    assert "secret" not in normalize(sql) + scrub(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 /* commentsecret=hunter2comment */",
        "SELECT 1 -- commentsecret=hunter2comment",
        "SELECT /* outer /* commentsecret=hunter2comment */ still */ 1",
        "/* a */ /* b /* c /* commentsecret=hunter2comment */ */ */ SELECT 1",
        "SELECT 1 --commentsecret=hunter2comment\n",
        "SELECT/*commentsecret=hunter2comment*/1",
    ],
)
def test_every_comment_kind_is_dropped(sql: str) -> None:
    """-- and (nested) /* */ comments are gone from every rendering."""
    for out in (normalize(sql), scrub(sql), strip_comments(sql), fingerprint(sql).text):
        assert "hunter2" not in out
        assert "still" not in out
    assert normalize(sql) == "SELECT ?"
    assert any("hunter2" in c for c in comments(sql))


def test_comment_markers_inside_literals_are_not_comments() -> None:
    """'--' and '/*' inside a string are part of the string, not a comment start."""
    sql = "SELECT '-- no', $$/* no$$, \"a--b\" FROM t -- yes"
    assert comments(sql) == ("-- yes",)
    assert normalize(sql) == 'SELECT ?, ?, "a--b" FROM t'


@pytest.mark.parametrize(
    ("sql", "normalized", "scrubbed"),
    [
        ("SET statement_timeout = 987654", "SET statement_timeout = ?", None),
        ("CALL proc(4111111111111112)", "CALL proc(?)", "CALL proc(?)"),
        (
            "EXPLAIN SELECT * FROM t WHERE id = 4111111111111114",
            "EXPLAIN SELECT * FROM t WHERE id = ?",
            None,
        ),
        ("ALTER ROLE x PASSWORD 'secret'", "ALTER ROLE x PASSWORD ?", None),
        ("SET search_path = 'secret', public", "SET search_path = ?, public", None),
        ("COPY t FROM '/secret/path.csv'", "COPY t FROM ?", None),
        ("DO $body$ BEGIN PERFORM 'secret'; END $body$", "DO ?", "DO '?'"),
    ],
)
def test_utility_statements_lose_their_constants(
    sql: str, normalized: str, scrubbed: str | None
) -> None:
    """SET, CALL, EXPLAIN, ALTER ROLE, COPY and DO keep no constant, in either rendering."""
    assert normalize(sql) == normalized
    out = scrub(sql)
    if scrubbed is not None:
        assert out == scrubbed
    for leaked in ("987654", "4111111111111112", "4111111111111114", "secret"):
        assert leaked not in out


@pytest.mark.parametrize(
    ("sql", "kept"),
    [
        ("SELECT a FROM t WHERE b = 'secret-lit", "SELECT a FROM t WHERE b = ?"),
        ("SELECT E'x\\'secret", "SELECT ?"),
        ("SELECT 1 WHERE a = $$secret-literal", "SELECT ? WHERE a = ?"),
        ("SELECT $q$secret$$ still secret", "SELECT ?"),
        ("SELECT 1 /* secret /* nested */", "SELECT ? ?"),
        ('SELECT "secret', "SELECT ?"),
        ("SELECT 12secret, 'x'", "SELECT ?"),
        ("SELECT 1, 'a' || 'b\x00secret'", "SELECT ?, ? || ?"),
        ("SELECT 1 \x00 'secret'", "SELECT ? ?"),
    ],
)
def test_unreadable_text_fails_closed(sql: str, kept: str) -> None:
    """From the first point the lexer cannot read (cut literal, NUL, junk), nothing is kept."""
    assert normalize(sql) == kept
    assert "secret" not in scrub(sql)
    assert pieces(sql)[-1] == (Kind.CUT, "")


def test_scrub_keeps_layout_and_server_placeholders() -> None:
    """scrub() keeps whitespace, $n placeholders, names and casts; truncates after scrubbing."""
    sql = 'SELECT $1::int,\n  "Odd""Name"  FROM t WHERE x = \'secret\''
    assert scrub(sql) == 'SELECT $1::int,\n  "Odd""Name"  FROM t WHERE x = \'?\''
    assert scrub("SELECT 'secret-secret-secret'", 10) == "SELECT '?'"
    assert scrub("SELECT 'secret-secret-secret', 1", 10) == "SELECT '?\u2026"


def test_driver_parameters_become_placeholders() -> None:
    """pyformat, format, numeric, named and qmark parameters all normalise to '?'."""
    sql = "SELECT %(a)s, %s, $1, :name, ?, x::int FROM t WHERE y IN (__[POSTCOMPILE_y])"
    assert normalize(sql) == "SELECT ?, ?, ?, ?, ?, x::int FROM t WHERE y IN (?)"


def test_non_ascii_text_keeps_its_positions() -> None:
    """Multi-byte characters (and a lone surrogate) do not shift where literals are cut."""
    assert normalize("SELECT 'é😀' AS café, '😀secret'") == "SELECT ? AS café, ?"
    assert normalize("SELECT '\ud800secret' AS a") == "SELECT ? AS a"


@pytest.mark.parametrize(
    ("dialect", "sql", "normalized"),
    [
        (
            "sqlite",
            "SELECT 'C:\\', \"t\".x FROM [t] WHERE a = ?1",
            'SELECT ?, "t".x FROM [t] WHERE a = ?',
        ),
        ("sqlite", "SELECT X'ff', 12, :a, @b, $c -- secret", "SELECT ?, ?, ?, ?, ?"),
        ("mysql", "SELECT 'a\\'secret', \"secret\" FROM `t` # secret", "SELECT ?, ? FROM `t`"),
        ("oracle", "SELECT 'C:\\' || 'secret' FROM t", "SELECT ?"),
        ("sqlite", "SELECT 'secret", "SELECT ?"),
        ("sqlite", "SELECT 1 /* secret", "SELECT ? ?"),
        ("mssql", "SELECT [secret", "SELECT ?"),
    ],
)
def test_other_dialects_use_the_simple_tokenizer(dialect: str, sql: str, normalized: str) -> None:
    """Non-PostgreSQL text: its own quoting rules; a backslash it cannot place cuts the text."""
    assert normalize(sql, dialect) == normalized
    assert "secret" not in fingerprint(sql, dialect).text


def test_normalize_is_idempotent_on_its_output() -> None:
    """A normalised text (the sidecar fingerprints those) normalises to itself."""
    text = normalize("SELECT a, 'x' FROM t WHERE b IN (1, 2) AND c = $1 -- z")
    assert normalize(text) == text == "SELECT a, ? FROM t WHERE b IN (?) AND c = ?"
