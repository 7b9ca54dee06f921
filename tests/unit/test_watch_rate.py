"""The pure progress math behind watch-migration's rate and time-left columns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbpulse.watch.rate import RateWindow, estimate, format_duration, format_rate


def test_counting_up_gives_rate_and_eta() -> None:
    """200 blocks in 2 s toward 1000: 100 blocks/s and 6 s left from 400."""
    result = estimate([(10.0, 200.0), (12.0, 400.0)], target=1000.0)
    assert result.rate == pytest.approx(100.0)
    assert result.eta_seconds == pytest.approx(6.0)


def test_counting_down_to_zero_gives_rate_and_eta() -> None:
    """Remaining rows 900 -> 600 in 3 s: 100 rows/s, 6 s to reach 0."""
    result = estimate([(0.0, 900.0), (3.0, 600.0)], target=0.0)
    assert result.rate == pytest.approx(100.0)
    assert result.eta_seconds == pytest.approx(6.0)


def test_unknown_until_two_samples_and_no_eta_without_progress() -> None:
    """One sample: nothing known; a stalled counter: rate 0 and no ETA (not infinity)."""
    assert estimate([(0.0, 5.0)], 10.0).rate is None
    stalled = estimate([(0.0, 5.0), (4.0, 5.0)], 10.0)
    assert stalled.rate == 0.0
    assert stalled.eta_seconds is None
    assert estimate([(1.0, 5.0), (1.0, 6.0)], 10.0).rate is None  # no time passed


def test_reaching_the_target_means_zero_left() -> None:
    """At the target the ETA is 0 whatever the rate."""
    assert estimate([(0.0, 0.0), (1.0, 10.0)], 10.0).eta_seconds == 0.0


def test_window_restarts_when_the_counter_resets() -> None:
    """A new phase resets blocks_done to 0: the window starts over, no negative rate."""
    window = RateWindow(window=60)
    window.add(0.0, 0.0, 100.0)
    window.add(1.0, 90.0, 100.0)
    window.add(2.0, 5.0, 100.0)  # counter restarted
    assert list(window.samples) == [(2.0, 5.0)]
    window.add(3.0, 15.0, 100.0)
    assert window.estimate(100.0).rate == pytest.approx(10.0)


def test_window_measures_recent_progress_only() -> None:
    """Old fast progress leaves the window: the rate reflects the last ~window seconds."""
    window = RateWindow(window=10)
    window.add(0.0, 0.0, 10_000.0)
    window.add(1.0, 1000.0, 10_000.0)  # a fast start
    for t in range(2, 40):
        window.add(float(t), 1000.0 + (t - 1) * 10.0, 10_000.0)
    assert window.estimate(10_000.0).rate == pytest.approx(10.0)


def test_fraction_counts_up_and_down() -> None:
    """The done share is value/total counting up, (total - remaining)/total counting down."""
    up = RateWindow()
    up.add(0.0, 25.0, 100.0)
    assert up.estimate(100.0, 100.0).fraction == pytest.approx(0.25)
    down = RateWindow()
    down.add(0.0, 25.0, 0.0)
    assert down.estimate(0.0, 100.0).fraction == pytest.approx(0.75)


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=2, max_size=20),
    st.floats(min_value=0, max_value=1e6),
)
def test_estimates_are_never_negative(values: list[float], target: float) -> None:
    """Whatever the samples, rate and ETA are None or non-negative."""
    window = RateWindow(window=5)
    for i, value in enumerate(values):
        window.add(float(i), value, target)
    result = window.estimate(target)
    assert result.rate is None or result.rate >= 0
    assert result.eta_seconds is None or result.eta_seconds >= 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (0.4, "0s"), (42, "42s"), (185, "3m05s"), (7620, "2h07m")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    """Durations read as s, m+s, or h+m; unknown as '?'."""
    assert format_duration(seconds) == text


def test_format_rate() -> None:
    """Small rates keep a decimal, large ones get thousands separators."""
    assert format_rate(None, "rows") == "?"
    assert format_rate(2.25, "rows") == "2.2 rows/s"
    assert format_rate(12345.6, "blocks") == "12,346 blocks/s"
