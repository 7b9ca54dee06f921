"""Property: no generated PostgreSQL constant or comment survives any rendering, cut or whole."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from dbpulse.sidecar.collectors.statements import scrub_text
from dbpulse.sidecar.scrub import literal_free
from dbpulse.sql import fingerprint, normalize, scrub
from tests.unit.sql.literals import MARK, constant, statement

# What a leak looks like: the marker, or a run of digits/hex that only constants hold
# (the code between them has none; $n placeholders are one digit).
_LEAK = re.compile(rf"{MARK}|\d{{3,}}|[0-9a-f]{{6,}}|1011001110", re.IGNORECASE)


def _outputs(sql: str) -> dict[str, str]:
    return {
        "normalize": normalize(sql),
        "fingerprint": fingerprint(sql).text,
        "scrub": scrub(sql),
        "scrub_text": scrub_text(sql, 10_000),
        "literal_free": literal_free(sql),
    }


def _leaks(sql: str) -> dict[str, str]:
    return {name: out for name, out in _outputs(sql).items() if _LEAK.search(out)}


@given(statement())
def test_no_literal_survives_any_rendering(sql: str) -> None:
    """Generated statements with constants of every syntax and comments: no marker in any output."""
    assert _leaks(sql) == {}


@given(statement(), st.data())
def test_no_literal_survives_a_cut_statement(sql: str, data: st.DataObject) -> None:
    """Cut anywhere (as track_activity_query_size cuts): still no marker in any output."""
    cut = data.draw(st.integers(0, len(sql)))
    assert _leaks(sql[:cut]) == {}


@given(constant(), constant())
def test_two_constants_in_a_row_are_two_placeholders(first: str, second: str) -> None:
    """A constant never swallows or exposes its neighbour (N'C:\\' then another literal)."""
    one = r"(?:(?:DATE|INTERVAL|int8) )?\?(?: UESCAPE \?)?"
    assert re.fullmatch(f"SELECT {one}, {one}", normalize(f"SELECT {first}, {second}"))
