"""The real server agrees with dbpulse.sql on where constants are, and its kept texts get scrubbed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbpulse.localpg import LocalPostgres
from dbpulse.sidecar.collectors.statements import scrub_text
from dbpulse.sidecar.scrub import literal_free
from dbpulse.sql import normalize, scrub
from tests.unit.sql.literals import MARK, dollar_string, escape_string, secret, unicode_string

SERVER = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@pytest.fixture(scope="module")
def conn(pg: LocalPostgres) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(pg.dsn, autocommit=True) as c:
        yield c


def _standard(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# String constants the server can evaluate (typed ones like DATE '..' need valid values).
_STRINGS = st.one_of(
    secret().map(_standard),
    secret().map(lambda s: "N" + _standard(s)),
    escape_string(),
    unicode_string(),
    dollar_string(),
)


@SERVER
@given(first=_STRINGS, second=_STRINGS)
def test_server_sees_the_constants_dbpulse_replaces(
    conn: psycopg.Connection[tuple[object, ...]], first: str, second: str
) -> None:
    """PostgreSQL reads two generated string constants as two values holding the marker; dbpulse keeps neither."""
    sql = f"SELECT {first} AS a, {second} AS b"
    row = conn.execute(sql).fetchone()
    assert row is not None
    assert len(row) == 2
    assert all(MARK in str(value) for value in row)
    one = r"\?(?: UESCAPE \?)?"
    assert re.fullmatch(f"SELECT {one} AS a, {one} AS b", normalize(sql))
    assert MARK not in scrub(sql)


UTILITY = [
    "SET statement_timeout = 987654",
    "CALL dbpulse_sql_proc(4111111111111112)",
    "EXPLAIN SELECT * FROM pg_class WHERE reltuples > 4111111111111114",
    "ALTER ROLE dbpulse_sql_role PASSWORD 'utility-secret-77'",
    "SELECT /* commentsecret=hunter2comment */ 1",
    "SELECT N'C:\\data\\' AS a, 'after-backslash-secret' AS b",
]
_SECRETS = ["987654", "4111111111111112", "4111111111111114", "utility-secret-77", "hunter2"]


def test_texts_the_server_keeps_are_scrubbed(pg: LocalPostgres) -> None:
    """pg_stat_statements keeps utility statements' constants; scrub_text and literal_free drop them."""
    db = f"sql_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    try:
        with psycopg.connect(pg.dsn_for(db), autocommit=True) as c:
            c.execute("CREATE PROCEDURE dbpulse_sql_proc(n int8) LANGUAGE sql AS $$ SELECT $$")
            c.execute("CREATE ROLE dbpulse_sql_role")
            try:
                for statement in UTILITY:
                    c.execute(statement)
            finally:
                c.execute("DROP ROLE dbpulse_sql_role")
        with psycopg.connect(pg.dsn) as admin:  # the extension lives in "postgres"
            rows = admin.execute(
                "SELECT query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                " WHERE d.datname = %s",
                (db,),
            ).fetchall()
        texts = [str(r[0]) for r in rows]
        kept = "\n".join(texts)
        # The server really kept them: otherwise the check below would prove nothing.
        for value in ("987654", "utility-secret-77", "4111111111111112", "4111111111111114"):
            assert value in kept
        for text in texts:
            for out in (scrub_text(text, 10_000), literal_free(text)):
                assert not [s for s in _SECRETS if s in out], (text, out)
                assert "after-backslash-secret" not in out
    finally:
        with psycopg.connect(pg.dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
