"""Unit tests for the statements collector's selection: top-N, holds and the series budget."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dbpulse.sidecar.collectors.statements_families import FAMILIES
from dbpulse.sidecar.collectors.statements_select import select, statement_capacity


def _k(queryid: int) -> tuple[int, int, int]:
    return (1, 10, queryid)


def test_top_n_only_when_nothing_is_held() -> None:
    """Without a previous state the selection is exactly the top-N by rank."""
    sel = select([_k(1), _k(2), _k(3)], {}, 100.0, top_n=2, capacity=10, hold_seconds=60)
    assert sel.keys == [_k(1), _k(2)]
    assert sel.in_top == {_k(1), _k(2)}
    assert sel.last_in_top == {_k(1): 100.0, _k(2): 100.0}


def test_statement_that_leaves_the_top_is_held_then_released() -> None:
    """A statement that drops out of the top-N stays hold_seconds after it last ranked there."""
    first = select([_k(1), _k(2)], {}, 100.0, top_n=1, capacity=10, hold_seconds=60)
    assert first.keys == [_k(1)]
    # 2 overtakes 1: both exported, 1 only because it is held.
    second = select([_k(2), _k(1)], first.last_in_top, 130.0, top_n=1, capacity=10, hold_seconds=60)
    assert second.keys == [_k(2), _k(1)]
    assert second.in_top == {_k(2)}
    assert second.last_in_top[_k(1)] == 100.0
    # Still held just before the hold expires, gone right after.
    third = select([_k(2), _k(1)], second.last_in_top, 159.0, top_n=1, capacity=10, hold_seconds=60)
    assert _k(1) in third.keys
    fourth = select([_k(2), _k(1)], third.last_in_top, 160.0, top_n=1, capacity=10, hold_seconds=60)
    assert fourth.keys == [_k(2)]
    assert _k(1) not in fourth.last_in_top


def test_oscillating_statements_do_not_flap() -> None:
    """Two statements swapping places every poll stay exported on every poll."""
    state: dict[tuple[int, int, int], float] = {}
    for poll in range(10):
        ranked = [_k(1), _k(2)] if poll % 2 == 0 else [_k(2), _k(1)]
        sel = select(ranked, state, 100.0 + 15 * poll, top_n=1, capacity=10, hold_seconds=60)
        state = sel.last_in_top
        if poll > 0:
            assert set(sel.keys) == {_k(1), _k(2)}


def test_budget_caps_held_statements_but_never_the_current_top() -> None:
    """When the budget is tight the current top-N wins and held statements fill what is left."""
    state = {_k(7): 90.0, _k(8): 95.0, _k(9): 99.0}
    ranked = [_k(1), _k(2), _k(7), _k(8), _k(9)]
    sel = select(ranked, state, 100.0, top_n=2, capacity=3, hold_seconds=60)
    assert sel.keys == [_k(1), _k(2), _k(7)]
    assert sel.dropped_held == 2
    assert set(sel.last_in_top) == {_k(1), _k(2), _k(7)}


def test_top_n_larger_than_budget_is_capped() -> None:
    """top_n beyond the budget exports only what fits."""
    ranked = [_k(i) for i in range(10)]
    sel = select(ranked, {}, 0.0, top_n=10, capacity=4, hold_seconds=60)
    assert sel.keys == ranked[:4]


def test_vanished_statement_is_forgotten() -> None:
    """A held statement that left pg_stat_statements (reset or evicted) is dropped."""
    sel = select([_k(1)], {_k(5): 99.0}, 100.0, top_n=1, capacity=10, hold_seconds=60)
    assert sel.keys == [_k(1)]
    assert _k(5) not in sel.last_in_top


def test_capacity_counts_every_family_and_the_totals() -> None:
    """8 series per statement + 2 per database stay within max_series (0 when none fit)."""
    assert len(FAMILIES) == 8
    expected = {
        (10, 0): 1,
        (10, 1): 1,
        (10, 3): 0,
        (10, 50): 0,
        (100, 0): 12,
        (100, 1): 12,
        (100, 3): 11,
        (100, 50): 0,
        (2000, 0): 250,
        (2000, 1): 249,
        (2000, 3): 249,
        (2000, 50): 237,
        (2001, 0): 250,
        (2001, 1): 249,
        (2001, 3): 249,
        (2001, 50): 237,
    }
    for (max_series, databases), want in expected.items():
        cap = statement_capacity(max_series, databases)
        assert cap == want, (max_series, databases)
        if 2 * databases <= max_series:
            assert cap * 8 + 2 * databases <= max_series
            assert (cap + 1) * 8 + 2 * databases > max_series
        else:
            assert cap == 0


@settings(max_examples=200, deadline=None)
@given(
    polls=st.lists(st.permutations(list(range(8))), min_size=1, max_size=12),
    top_n=st.integers(1, 8),
    capacity=st.integers(0, 10),
    hold=st.sampled_from([0.0, 15.0, 45.0, 1000.0]),
)
def test_selection_invariants(
    polls: list[list[int]], top_n: int, capacity: int, hold: float
) -> None:
    """Over any ranking history: within budget, current top always in, holds honoured when room."""
    state: dict[tuple[int, int, int], float] = {}
    for i, order in enumerate(polls):
        now = 15.0 * i
        ranked = [_k(q) for q in order]
        sel = select(ranked, state, now, top_n=top_n, capacity=capacity, hold_seconds=hold)
        n = min(top_n, capacity)
        assert len(sel.keys) <= capacity
        assert len(set(sel.keys)) == len(sel.keys)
        assert sel.keys[:n] == ranked[:n]
        eligible = [k for k in ranked[n:] if k in state and now - state[k] < hold]
        if len(eligible) <= capacity - n:
            assert set(eligible) <= set(sel.keys)
        assert set(sel.last_in_top) == set(sel.keys)
        state = sel.last_in_top
