"""Exponential backoff between reconnect attempts (pure: the clock is passed in)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    """1 s after the first failure, doubling per failure up to 30 s; reset by a success."""

    initial: float = 1.0
    maximum: float = 30.0
    failures: int = 0
    next_attempt: float = 0.0

    def failed(self, now: float) -> float:
        delay = float(min(self.maximum, self.initial * (2.0**self.failures)))
        self.failures += 1
        self.next_attempt = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.next_attempt = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_attempt
