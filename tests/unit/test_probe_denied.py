"""A probe's permission error becomes one line naming the grant that fixes it (pure)."""

from __future__ import annotations

import psycopg
import pytest

from dbpulse.sidecar.probes import denied


@pytest.mark.parametrize(
    ("message", "grant"),
    [
        ("permission denied for table orders", "GRANT SELECT ON orders TO dbpulse"),
        ("permission denied for view v_sales", "GRANT SELECT ON v_sales TO dbpulse"),
        ("permission denied for materialized view mv", "GRANT SELECT ON mv TO dbpulse"),
        ("permission denied for schema billing", "GRANT USAGE ON SCHEMA billing TO dbpulse"),
        ("permission denied for function f", "GRANT EXECUTE ON FUNCTION f TO dbpulse"),
        ("must be owner of x", "GRANT SELECT ON <each table it reads> TO dbpulse"),
    ],
)
def test_the_grant_follows_the_object_denied(message: str, grant: str) -> None:
    """Each kind of object PostgreSQL names gets its own GRANT; anything else a generic one."""
    line = denied("p", psycopg.errors.InsufficientPrivilege(message), "dbpulse")
    assert line == f"probe p: {message}; run {grant} (pg_monitor does not cover application tables)"
    assert "\n" not in line


def test_a_role_name_that_needs_quotes_is_quoted() -> None:
    """A mixed-case role is quoted as an identifier, so the GRANT can be pasted as it is."""
    exc = psycopg.errors.InsufficientPrivilege("permission denied for table t\nDETAIL: x")
    assert 'TO "Mon""itor" (' in denied("p", exc, 'Mon"itor')
