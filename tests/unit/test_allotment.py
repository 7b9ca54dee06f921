"""Splitting a target's series budget among its discovered databases (max-min fair)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dbpulse.sidecar.allotment import Wants, split, water_fill
from dbpulse.sidecar.base import Allotment


def test_water_fill_gives_the_modest_what_they_want_and_shares_the_rest() -> None:
    """Wanting less than an equal share gets it; the others split what remains equally."""
    assert water_fill(1200, [0, 100, 2000, 2000]) == [0, 100, 550, 550]
    assert water_fill(10, [5, 5]) == [5, 5]
    assert water_fill(0, [3]) == [0]


def test_first_round_is_an_equal_split() -> None:
    """Before any database was polled (no wants known) each gets an equal part."""
    parts = split(20, 1200, {"a": None, "b": None, "c": None})
    assert {p.max_series for p in parts.values()} == {400}
    assert sum(p.top_n for p in parts.values()) <= 20


def test_a_database_without_tables_leaves_its_part_to_the_others() -> None:
    """An empty database (the postgres maintenance db) gets nothing; the rest share it all."""
    wants = {"postgres": Wants(0, 0), "app_a": Wants(20, 660), "app_b": Wants(20, 660)}
    parts = split(20, 1200, wants)
    assert parts["postgres"] == Allotment(top_n=0, max_series=0)
    assert parts["app_a"] == Allotment(top_n=10, max_series=600)
    assert parts["app_b"] == Allotment(top_n=10, max_series=600)


def test_unwanted_series_become_room_to_hold_tables() -> None:
    """When all wants fit, the spare series go to the databases that want any."""
    parts = split(20, 1200, {"a": Wants(2, 66), "b": Wants(5, 165), "empty": Wants(0, 0)})
    assert parts["empty"].max_series == 0
    assert parts["a"].max_series > 66
    assert parts["b"].max_series > 165
    assert parts["a"].max_series + parts["b"].max_series == 1200


@settings(max_examples=300, deadline=None)
@given(
    top_n=st.integers(1, 100),
    max_series=st.integers(30, 5000),
    wants=st.dictionaries(
        st.text("abcdef", min_size=1, max_size=3),
        st.none() | st.builds(Wants, st.integers(0, 200), st.integers(0, 10000)),
        min_size=1,
        max_size=20,
    ),
)
def test_allotments_never_exceed_the_target_budget(
    top_n: int, max_series: int, wants: dict[str, Wants | None]
) -> None:
    """Whatever the databases want, their parts add up to at most top_n and max_series."""
    parts = split(top_n, max_series, wants)
    assert set(parts) == set(wants)
    assert sum(p.top_n for p in parts.values()) <= top_n
    assert sum(p.max_series for p in parts.values()) <= max_series
    assert all(p.top_n >= 0 and p.max_series >= 0 for p in parts.values())
