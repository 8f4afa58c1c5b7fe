"""Fakes we own, small and typed: FakeClock (time that moves only when a test says so)."""

from __future__ import annotations

import threading
from datetime import UTC
from datetime import datetime
from datetime import timedelta


class FakeClock:
    """A Clock whose time moves only by advance(), set() and wait(); wait() never sleeps.

    `monotonic()` moves with advance() and wait() but not with set(), like a real system
    whose wall clock is stepped (NTP, an operator) while monotonic time goes on.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"start: {start.isoformat()} is naive; pass an aware datetime")
        self._now = start.astimezone(UTC)
        self._monotonic = 1000.0
        self._lock = threading.Lock()
        self.waits: list[float] = []

    def now(self) -> datetime:
        """Return the fake current time, aware, in UTC."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Return fake monotonic seconds."""
        with self._lock:
            return self._monotonic

    def advance(self, **delta: float) -> datetime:
        """Move time forward by timedelta(**delta) and return the new now."""
        step = timedelta(**delta)
        if step < timedelta(0):
            raise ValueError(f"advance: {step} is negative; use set() to step the clock back")
        with self._lock:
            self._now += step
            self._monotonic += step.total_seconds()
            return self._now

    def set(self, dt: datetime) -> None:
        """Step the wall clock to `dt` (forwards or backwards); monotonic time is unchanged."""
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError(f"set: {dt.isoformat()} is naive; pass an aware datetime")
        with self._lock:
            self._now = dt.astimezone(UTC)

    def wait(self, seconds: float, wake: threading.Event) -> None:
        """Record the wait and move time forward by `seconds`, or not at all if `wake` is set."""
        self.waits.append(seconds)
        if not wake.is_set():
            self.advance(seconds=max(0.0, seconds))
