"""A point in time that a check must finish by, shared by every step of that check."""

from __future__ import annotations

import time


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._end - time.monotonic())

    def cap(self, seconds: float) -> float:
        """`seconds`, or what is left if that is less; a small floor keeps socket timeouts valid."""
        return max(0.001, min(seconds, self.remaining()))

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._end
