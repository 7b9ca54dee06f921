"""No literal reaches any output, end to end (issue 13.3).

Statements carrying constants of every PostgreSQL syntax run for real through an
instrumented engine while a sidecar polls the same database; then every output is read:
dbpulse's logs (structlog and stdlib, both modes), the sidecar's ``/metrics`` and every
``/debug/*`` view over HTTP, the in-process registry, the sidecar's spans (slow queries,
blocking, index builds) and the in-process statement and slow-query spans.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbpulse import query_counter
from dbpulse.inprocess.scope import scope
from tests.integration.literal_outputs import Outputs, outputs
from tests.unit.sql.literals import MARK, comment, dollar_string, escape_string, secret
from tests.unit.sql.literals import unicode_string as unicode_escape_string

SLEEP = "pg_sleep(0.5)"  # longer than the sidecar's slow threshold: seen as a slow query
SETUP = [
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "CREATE TABLE t (id int8)",
    "INSERT INTO t VALUES (1)",
    "CREATE PROCEDURE proc(n int8) LANGUAGE sql AS $$ SELECT pg_sleep(0.5) $$",
    "CREATE PROCEDURE lit_proc(s text) LANGUAGE sql AS $$ SELECT pg_sleep(0.5) $$",
]


@pytest.fixture
def rig(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Outputs]:
    """Both modes on a fresh database holding pg_stat_statements and the procedures used."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for sql in SETUP:
            conn.execute(sql)
    with outputs(fresh_db, monkeypatch) as found:
        yield found


CUT = "cutsecret-" * 120  # 1200 bytes: spans the 1024-byte cut
# The statements issue 13 names, each kept by pg_stat_statements with its constants.
ISSUE = [
    "CALL proc(4111111111111112)",
    "SET statement_timeout = 987654",
    f"SET statement_timeout = 987654; SELECT {SLEEP}",
    "EXPLAIN SELECT * FROM t WHERE id = 4111111111111114",
    f"EXPLAIN ANALYZE SELECT {SLEEP}, * FROM t WHERE id <> 4111111111111114",
    f"SELECT /* commentsecret=hunter2comment */ {SLEEP}",
    f"SELECT {SLEEP}, N'C:\\data\\' AS a, 'after-backslash-secret' AS b",
    # pg_stat_activity cuts a statement at track_activity_query_size (1024 bytes): here
    # inside a string constant, then inside a comment; the unterminated rest must go too.
    # (New query shapes: the sidecar names them from pg_stat_activity, not from
    # pg_stat_statements' text of an earlier statement with the same query_id.)
    f"SELECT {SLEEP} AS cut_in_string, '{CUT}'",
    f"SELECT {SLEEP}, 1 IN (2, 3) AS cut_in_comment /* {CUT} */",
]
ISSUE_SECRETS = [
    *["4111111111111112", "987654", "4111111111111114", "hunter2", "after-backslash"],
    "cutsecret",
]


def _digits_apart(value: str) -> str:
    """``value`` as a pattern not inside a longer number (987654 in a timestamp is chance)."""
    return rf"(?<![0-9]){re.escape(value)}(?![0-9])"


def _leaks(found: dict[str, str], secrets: list[str]) -> list[tuple[str, str]]:
    return [
        (out, s)
        for out, text in found.items()
        for s in secrets
        if re.search(_digits_apart(s), text, re.IGNORECASE)
    ]


def test_the_statements_issue_13_names_leak_nowhere(rig: Outputs) -> None:
    """CALL, SET, EXPLAIN, a comment and N'..\\' followed by a literal: no constant in any output."""
    for sql in ISSUE:
        rig.run(sql)
    assert rig.errors == []
    found = rig.texts()
    assert _leaks(found, ISSUE_SECRETS) == []
    # Each statement really reached the outputs checked (as placeholders).
    assert {"statements", "activity", "locks", "blocking", "progress"} <= set(rig.debug_names())
    assert "CALL proc(?)" in found["/debug/statements"]
    assert "SET statement_timeout = ?" in found["/debug/statements"]
    assert "EXPLAIN SELECT * FROM t WHERE id = ?" in found["/debug/statements"]
    assert "N'C:" not in found["logs"]
    assert found["logs"].count('"slow query"') >= len(ISSUE)
    for span_name in ("CALL", "EXPLAIN", "SELECT"):
        assert span_name in found["sidecar spans"]
    assert "SELECT pg_sleep(?), ? AS a, ? AS b" in found["sidecar spans"]
    assert "SELECT pg_sleep(?), ? AS a, ? AS b" in found["in-process spans"]
    assert "trace_id=" in found["in-process openmetrics"]  # slow observations' exemplars
    # The cut texts were read from pg_stat_activity: the cut-off rest is one placeholder.
    assert "SELECT pg_sleep(?) AS cut_in_string, ?\n" in found["sidecar spans"]
    assert "AS cut_in_comment ?\n" in found["sidecar spans"]


def test_blocking_and_index_build_texts_leak_nowhere(fresh_db: str, rig: Outputs) -> None:
    """A lock holder and waiter, and an index build waiting on a snapshot, all with constants."""
    secrets = ["4111111111111113", "4111111111111115", "4111111111111116"]
    with psycopg.connect(fresh_db) as holder:
        holder.execute("UPDATE t SET id = id WHERE id <> 4111111111111113")

        def release_once_seen() -> None:
            if rig.sidecar.snapshot.debug("locks")["waiting_sessions"]:
                holder.rollback()

        rig.run("UPDATE t SET id = id WHERE id <> 4111111111111115", on_poll=release_once_seen)
        holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        holder.execute("SELECT 1")  # an old snapshot: the index build waits for it

        rounds: list[bool] = []

        def build_seen() -> None:
            # Released one round of polls after the build is in the progress view, so the
            # progress collector has certainly seen it waiting.
            if rounds:
                holder.commit()
                return
            with psycopg.connect(fresh_db, autocommit=True) as watcher:
                row = watcher.execute("SELECT count(*) FROM pg_stat_progress_create_index")
                if (row.fetchone() or (0,))[0]:
                    rounds.append(True)

        rig.run(
            "CREATE INDEX CONCURRENTLY t_idx ON t (id) WHERE id <> 4111111111111116",
            autocommit=True,
            on_poll=build_seen,
        )
    assert rig.errors == []
    found = rig.texts()
    assert _leaks(found, secrets) == []
    assert "blocking" in found["sidecar spans"]
    assert "CREATE INDEX CONCURRENTLY" in found["sidecar spans"]
    assert "UPDATE t SET id = id WHERE id <> ?" in found["in-process spans"]


def test_repeated_statements_and_query_counter_leak_nowhere(rig: Outputs) -> None:
    """An N+1 report (log line, span event) and query_counter's statements hold no constant."""
    sql = "SELECT id FROM t WHERE id <> 4111111111111117 AND 'nplusone-secret' <> ''"
    tracer = rig.app_provider.get_tracer("app")
    with (
        tracer.start_as_current_span("request"),
        scope(unit_of_work=True),
        query_counter() as counter,
        rig.engine.connect() as conn,
    ):
        for _ in range(6):  # past the default threshold of 5
            conn.exec_driver_sql(sql, execution_options={"no_parameters": True})
    rig.sidecar.poller.run_all_once()  # selects the statement
    rig.sidecar.poller.run_once("statements")  # reads its text
    found = rig.texts()
    found["query_counter"] = "\n".join(counter.statements)
    assert _leaks(found, ["4111111111111117", "nplusone-secret"]) == []
    assert '"N+1 query pattern"' in found["logs"]
    assert "db.n_plus_one" in found["in-process spans"]
    assert len(counter.statements) == 6


def test_a_rejected_statement_leaks_nowhere(rig: Outputs) -> None:
    """The server's error names the value (invalid input ... "failsecret"): no output repeats it."""
    # The cast fails after the sleep (a subquery is not folded), so the sidecar sees it run.
    rig.run(f"SELECT (SELECT 'failsecret-77' FROM {SLEEP})::int")
    assert [type(e).__name__ for e in rig.errors] == ["DataError"]
    assert "failsecret" in str(rig.errors[0])  # the application's exception does hold it
    found = rig.texts()
    assert _leaks(found, ["failsecret"]) == []
    assert "psycopg.errors.InvalidTextRepresentation" in found["in-process spans"]
    assert "SELECT (SELECT ? FROM pg_sleep(?))::int" in found["sidecar spans"]


# Constants PostgreSQL 15 reads as one constant (0x.., 0o.., 1_000 are PostgreSQL 16's).
NUMBERS = ["4111111111111112", "987654321", "31415.926535", "271828e10", "1.41421356E-7"]
BITS = ["B'1011001110001111'", "X'deadbeefcafe717a78'"]  # X'..' holds MARK's hex
STRINGS = st.one_of(
    secret().map(lambda s: "'" + s.replace("'", "''") + "'"),
    secret().map(lambda s: "N'" + s.replace("'", "''") + "'"),
    escape_string(),
    unicode_escape_string(),
    dollar_string(),
)
CONSTANTS = STRINGS | st.sampled_from(NUMBERS + BITS)
GAP = st.one_of(st.just(" "), comment().map(lambda c: f" {c} "))


@st.composite
def statement(draw: st.DrawFn) -> str:
    """A statement the server runs for at least SLEEP, its constants and comments generated."""
    kind = draw(st.sampled_from(["select", "call", "explain", "set"]))
    if kind == "call":
        return f"CALL{draw(GAP)}lit_proc({draw(STRINGS)}){draw(GAP)}"
    if kind == "set":
        number = draw(st.sampled_from(["987654321", "31415.926535"]))
        return f"SET statement_timeout ={draw(GAP)}{number}; SELECT{draw(GAP)}{SLEEP}"
    items = [draw(CONSTANTS) + draw(GAP) for _ in range(draw(st.integers(1, 3)))]
    head = "EXPLAIN ANALYZE SELECT" if kind == "explain" else "SELECT"
    return f"{head}{draw(GAP)}{SLEEP},{draw(GAP)}{', '.join(items)}"


# The marker as text, or with its x written as a U&'' escape (\0078, !0078, #0078), raw
# or JSON-escaped; and the numbers and bit strings above, which hold no marker.
LEAK = re.compile(
    "|".join([MARK, r"qz(?:\\{1,2}|!|#)0078", *map(_digits_apart, [*NUMBERS, "1011001110001111"])]),
    re.IGNORECASE,
)
# 25 keeps the module under a minute; DBPULSE_TEST_LITERAL_EXAMPLES sets a longer run.
EXAMPLES = int(os.environ.get("DBPULSE_TEST_LITERAL_EXAMPLES", "25"))
LIMITS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_generated_literals_leak_nowhere(rig: Outputs) -> None:
    """Statements with generated constants of every syntax and comments: the marker is in no output."""
    seen: list[str] = []

    @LIMITS
    @given(sql=statement())
    def run(sql: str) -> None:
        rig.errors.clear()
        rig.run(sql)
        assert rig.errors == [], (sql, rig.errors)
        found = rig.texts()
        leaks = {out: LEAK.findall(text) for out, text in found.items() if LEAK.search(text)}
        assert leaks == {}, sql
        seen.append(found["sidecar spans"])

    run()
    # The sidecar really saw generated statements as slow queries (not only the app did).
    assert sum(1 for spans in seen if spans) >= len(seen) // 2
