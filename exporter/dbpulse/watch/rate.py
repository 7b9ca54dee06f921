"""Progress rate and time left from timed samples of a counter moving toward a target (pure)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Estimate:
    rate: float | None  # units per second toward the target; None until it can be known
    eta_seconds: float | None  # None when unknown (no progress yet, or target reached)
    fraction: float | None  # share done, 0..1, when a total is known


@dataclass
class RateWindow:
    """Recent (time, value) samples of one counter; the rate is measured over ``window``.

    The counter moves toward ``target`` (blocks_done up to blocks_total, or remaining rows
    down to 0). A sample moving away from the target means the counter restarted (a new
    phase reuses it), so the window starts over rather than report a negative rate.
    """

    window: float = 30.0
    samples: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, now: float, value: float, target: float) -> None:
        if self.samples:
            last_value = self.samples[-1][1]
            if abs(target - value) > abs(target - last_value):
                self.samples.clear()
        self.samples.append((now, value))
        # Keep one sample older than the window so the rate spans the whole window.
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()

    def estimate(self, target: float, total: float | None = None) -> Estimate:
        fraction = None
        if self.samples and total:
            value = self.samples[-1][1]
            done = value if target == total else total - value
            fraction = min(1.0, max(0.0, done / total))
        return estimate(list(self.samples), target, fraction)


def estimate(
    samples: list[tuple[float, float]], target: float, fraction: float | None = None
) -> Estimate:
    """Rate over the first and last sample, and the time to reach ``target`` at that rate."""
    if len(samples) < 2:
        return Estimate(None, None, fraction)
    (t0, v0), (t1, v1) = samples[0], samples[-1]
    elapsed = t1 - t0
    if elapsed <= 0:
        return Estimate(None, None, fraction)
    rate = abs(v1 - v0) / elapsed
    left = abs(target - v1)
    if left == 0:
        return Estimate(rate, 0.0, fraction)
    if rate == 0:
        return Estimate(0.0, None, fraction)
    return Estimate(rate, left / rate, fraction)


def format_duration(seconds: float | None) -> str:
    """'42s', '3m05s', '2h07m'; '?' when unknown."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"


def format_rate(rate: float | None, unit: str) -> str:
    if rate is None:
        return "?"
    if rate >= 100:
        return f"{rate:,.0f} {unit}/s"
    return f"{rate:.1f} {unit}/s"
