"""The regression judge (pure): baseline, recent window, thresholds, resets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dbpulse.plans.regressions import Counters, RegressionRules, Track, observe

RULES = RegressionRules(factor=2.0, clear_factor=1.5, min_calls=10, recent_window=300)
KEY = (1, 2, 3)


def row(calls: float, seconds: float) -> Counters:
    return Counters(key=KEY, datname="app", user="web", calls=calls, seconds=seconds)


def test_first_sighting_seeds_the_baseline_and_judges_nothing() -> None:
    """A statement seen for the first time takes its totals as baseline, no verdict."""
    tracks, found = observe(None, [row(100, 1.0)], 0.0, RULES)
    assert found == []
    assert tracks[KEY].base_calls == 100
    assert tracks[KEY].base_seconds == 1.0


def test_slower_recent_calls_are_a_regression_with_the_right_ratio() -> None:
    """Calls 5x slower than the baseline give ratio 5 and a new regression."""
    tracks, _ = observe(None, [row(100, 1.0)], 0.0, RULES)  # 10 ms per call
    tracks, found = observe(tracks, [row(120, 1.0 + 20 * 0.05)], 60.0, RULES)  # 50 ms
    assert len(found) == 1
    assert abs(found[0].ratio - 5.0) < 1e-9
    assert found[0].new
    assert found[0].since == 60.0
    assert abs(found[0].baseline_seconds_per_call - 0.01) < 1e-12


def test_too_few_calls_or_too_little_extra_time_is_not_a_regression() -> None:
    """Below min_calls, or below min_extra_seconds per call, nothing is reported."""
    tracks, _ = observe(None, [row(100, 1.0)], 0.0, RULES)
    _, few = observe(tracks, [row(105, 1.0 + 5 * 0.05)], 60.0, RULES)
    assert few == []
    tiny = RegressionRules(min_calls=10, min_extra_seconds=0.001)
    tracks, _ = observe(None, [row(1000, 0.01)], 0.0, tiny)  # 10 us per call
    _, fast = observe(tracks, [row(1100, 0.01 + 100 * 50e-6)], 60.0, tiny)  # 50 us
    assert fast == []


def test_a_regression_clears_only_below_the_clear_factor() -> None:
    """Once regressed, a ratio between clear_factor and factor keeps it; below clears."""
    tracks, _ = observe(None, [row(100, 1.0)], 0.0, RULES)
    tracks, found = observe(tracks, [row(120, 1.0 + 20 * 0.03)], 10.0, RULES)  # 3x
    assert found
    assert found[0].new
    # The window now holds 20 calls at 30 ms and 80 calls at 17 ms: about 1.9x.
    tracks, still = observe(tracks, [row(200, 1.6 + 80 * 0.017)], 20.0, RULES)
    assert still
    assert not still[0].new
    assert 1.5 < still[0].ratio < 2.0
    # The slow polls leave the window; only calls at the baseline's pace remain.
    _, cleared = observe(tracks, [row(300, 2.96 + 100 * 0.01)], 400.0, RULES)
    assert cleared == []


def test_counters_going_backwards_start_the_statement_over() -> None:
    """pg_stat_statements_reset (counters smaller than before) resets the track."""
    tracks, _ = observe(None, [row(100, 1.0)], 0.0, RULES)
    tracks, _ = observe(tracks, [row(150, 3.0)], 60.0, RULES)
    tracks, found = observe(tracks, [row(30, 3.0)], 120.0, RULES)
    assert found == []
    assert tracks[KEY].window == ()
    assert tracks[KEY].base_calls == 30


def test_statements_no_longer_listed_are_forgotten() -> None:
    """A statement evicted from pg_stat_statements leaves the state."""
    tracks, _ = observe(None, [row(100, 1.0)], 0.0, RULES)
    tracks, _ = observe(tracks, [], 60.0, RULES)
    assert tracks == {}


def test_old_window_entries_fold_into_a_decayed_baseline() -> None:
    """An entry older than the window moves into the baseline, older calls weighing less."""
    rules = RegressionRules(recent_window=100, baseline_half_life=100)
    tracks, _ = observe(None, [row(100, 1.0)], 0.0, rules)
    tracks, _ = observe(tracks, [row(200, 3.0)], 100.0, rules)
    tracks, _ = observe(tracks, [row(200, 3.0)], 250.0, rules)
    track: Track = tracks[KEY]
    assert track.window == ()
    # The seed (100 calls at t=0) weighs half at t=100, when the new entry folds in.
    assert abs(track.base_calls - 150.0) < 1e-9
    assert abs(track.base_seconds - 2.5) < 1e-9


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.floats(0, 1, allow_nan=False)), min_size=1, max_size=30
    )
)
def test_ratio_is_recent_over_baseline_for_any_history(steps: list[tuple[int, float]]) -> None:
    """Whatever the history, a reported ratio equals recent / baseline time per call and
    is at least clear_factor."""
    calls, seconds, now = 10.0, 0.1, 0.0
    tracks, _ = observe(None, [row(calls, seconds)], now, RULES)
    for n, per_call in steps:
        calls += n
        seconds += n * per_call
        now += 30.0
        tracks, found = observe(tracks, [row(calls, seconds)], now, RULES)
        for r in found:
            expected = r.recent_seconds_per_call / r.baseline_seconds_per_call
            assert abs(r.ratio - expected) < 1e-9 * max(1.0, expected)
            assert r.ratio >= RULES.clear_factor
