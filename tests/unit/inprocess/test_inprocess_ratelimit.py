"""WarningLimiter: one warning per pattern per interval, with the count left out."""

from __future__ import annotations

from dbpulse.inprocess.ratelimit import WarningLimiter
from tests.clock import ManualClock


def test_one_per_key_per_interval_then_the_suppressed_count() -> None:
    """Within the interval a key is admitted once; the next admission reports how many were left out."""
    clock = ManualClock()
    limiter = WarningLimiter(60.0, clock=clock)
    assert limiter.admit("User.posts") == 0
    assert [limiter.admit("User.posts") for _ in range(3)] == [None, None, None]
    clock.advance(59.9)
    assert limiter.admit("User.posts") is None
    clock.advance(0.2)
    assert limiter.admit("User.posts") == 4
    assert limiter.admit("User.posts") is None


def test_keys_are_limited_independently() -> None:
    """Another pattern (another relationship or engine's key) is not held back by the first."""
    clock = ManualClock()
    limiter = WarningLimiter(60.0, clock=clock)
    assert limiter.admit(("lazy load", "User.posts")) == 0
    assert limiter.admit(("lazy load", "Post.author")) == 0
    assert limiter.admit(("lazy load", "User.posts")) is None


def test_zero_interval_admits_everything() -> None:
    """log_interval_seconds=0 logs every occurrence."""
    limiter = WarningLimiter(0.0, clock=ManualClock())
    assert [limiter.admit("k") for _ in range(3)] == [0, 0, 0]
