"""Fingerprinting is pure: parameterized text, operation and main table, no literals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbpulse.inprocess.fingerprint import OPERATIONS, fingerprint, normalize, strip_comments


@pytest.mark.parametrize(
    ("sql", "operation", "collection"),
    [
        ("SELECT users.id FROM users WHERE users.id = %(id_1)s", "SELECT", "users"),
        ("select * from public.orders o join items i on i.o = o.id", "SELECT", "public.orders"),
        ('SELECT * FROM "Public"."Users"', "SELECT", "Public.Users"),
        ("SELECT * FROM (SELECT * FROM inner_t) AS anon_1", "SELECT", "inner_t"),
        ("SELECT 1", "SELECT", ""),
        ("SELECT pg_sleep(0.5)", "SELECT", ""),
        ("INSERT INTO posts (a) VALUES (1)", "INSERT", "posts"),
        ("UPDATE ONLY accounts SET v = :v WHERE id = :id", "UPDATE", "accounts"),
        ("DELETE FROM ONLY t WHERE id = $1", "DELETE", "t"),
        ("WITH x AS (SELECT * FROM a) UPDATE b SET c = 1 FROM x", "UPDATE", "b"),
        ("WITH RECURSIVE r(n) AS (SELECT 1) SELECT n FROM r", "SELECT", "r"),
        ("CREATE UNIQUE INDEX CONCURRENTLY ix ON public.t (a)", "CREATE INDEX", "public.t"),
        ("CREATE TABLE IF NOT EXISTS t2 (id int)", "CREATE TABLE", "t2"),
        ("DROP TABLE IF EXISTS bar", "DROP TABLE", "bar"),
        ("ALTER TABLE IF EXISTS ONLY foo ADD COLUMN x int", "ALTER TABLE", "foo"),
        ("TRUNCATE TABLE logs", "TRUNCATE", "logs"),
        ("SAVEPOINT sa_savepoint_1", "SAVEPOINT", ""),
        ("START TRANSACTION", "BEGIN", ""),
        ("frobnicate the database", "OTHER", ""),
        ("", "OTHER", ""),
    ],
)
def test_operation_and_collection(sql: str, operation: str, collection: str) -> None:
    """Each statement shape yields the verb and the first table as written."""
    fp = fingerprint(sql)
    assert (fp.operation, fp.collection) == (operation, collection)
    assert fp.operation in OPERATIONS


def test_literals_never_survive() -> None:
    """Strings, numbers, dollar quotes and every parameter style become '?'."""
    sql = (
        "SELECT * FROM t WHERE name = 'O''Brien' AND n = 42 AND f = 1.5e3 "
        "AND s = $$secret;$$ AND e = E'x\\'y' AND a = %(a)s AND b = :b AND c = $1 AND d = %s"
    )
    text = normalize(sql)
    for leaked in ("Brien", "42", "1.5", "secret", "x\\", ":b", "%(a)s", "$1", "%s"):
        assert leaked not in text
    assert text.count("?") == 9


def test_in_lists_and_values_collapse() -> None:
    """IN lists of any length and multi-row VALUES give one fingerprint."""
    assert normalize("SELECT * FROM t WHERE id IN (1, 2, 3)") == normalize(
        "SELECT * FROM t WHERE id IN (4)"
    )
    assert normalize("SELECT * FROM t WHERE id IN (__[POSTCOMPILE_id_1])") == (
        "SELECT * FROM t WHERE id IN (?)"
    )
    assert normalize("INSERT INTO t (a, b) VALUES (1, 2), (3, 4), (5, 6)") == (
        "INSERT INTO t (a, b) VALUES (?, ?)"
    )


def test_comments_are_stripped_first() -> None:
    """Comments go (they may carry request ids), comment-like text in strings stays."""
    assert strip_comments("select '--x' -- y\nfrom t /* z */") == "select '--x'  \nfrom t  "
    fp = fingerprint("/* user=alice@example.com */ SELECT * FROM t -- trace 123\n")
    assert "alice" not in fp.text
    assert "123" not in fp.text
    assert fp.collection == "t"


def test_identifiers_with_digits_are_kept() -> None:
    """Numbers inside identifiers (anon_1, t2) are not literals."""
    assert normalize("SELECT anon_1.x FROM t2 AS anon_1") == "SELECT anon_1.x FROM t2 AS anon_1"


def test_casts_are_not_parameters() -> None:
    """PostgreSQL ``::type`` casts are not taken for ``:name`` bind parameters."""
    assert normalize("SELECT x::int FROM t") == "SELECT x::int FROM t"


def test_fingerprints_are_cached() -> None:
    """The same string returns the same object (an LRU hit)."""
    assert fingerprint("SELECT * FROM cached_t") is fingerprint("SELECT * FROM cached_t")


@given(
    number=st.integers(min_value=0, max_value=10**15) | st.floats(0, 1e9, allow_nan=False),
    value=st.text(st.characters(exclude_characters="\x00"), max_size=30),
)
def test_any_literal_becomes_a_placeholder(number: float, value: str) -> None:
    """Whatever the literal (quotes, comment markers, newlines inside), the text is the same."""
    quoted = "'" + value.replace("'", "''") + "'"
    sql = f"SELECT * FROM t WHERE a = {number} AND b = {quoted} -- tail"
    assert normalize(sql) == "SELECT * FROM t WHERE a = ? AND b = ?"
