"""Clock protocol and SystemClock: the one place that reads the wall clock."""

from __future__ import annotations

import threading
import time
from datetime import UTC
from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current time, aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Return seconds from an arbitrary start that never go backwards (for durations)."""
        ...

    def wait(self, seconds: float, wake: threading.Event) -> None:
        """Sleep up to `seconds`, or return early when `wake` is set."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, wake: threading.Event) -> None:
        wake.wait(max(0.0, seconds))


SYSTEM_CLOCK: Clock = SystemClock()
