"""Reaper: find runs whose gateway or worker died, judged on this process's monotonic clock.

A heartbeat is a timestamp written by another process, perhaps on another host: comparing it
with our wall clock breaks when either clock is stepped (NTP, an operator, a VM resumed). So
the reaper watches each pulse change: a run is dead when its pulse has not moved for the
lease, measured in monotonic seconds here. A pulse seen for the first time (a gateway that
just started or took over) is credited with its wall-clock age, up to the lease, so the runs of
a dead gateway are still reaped without waiting a second lease.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from datetime import timedelta

from gateway.store.claims import Pulse


class Reaper:
    """Remember when each pulse last moved; say which runs stopped beating."""

    def __init__(self, gateway_lease: timedelta, run_lease: timedelta) -> None:
        self.gateway_lease = gateway_lease
        self.run_lease = run_lease
        self._moved: dict[str, tuple[datetime | None, float]] = {}  # key -> (beat, since)

    def dead(self, pulses: Iterable[Pulse], now: datetime, mono: float) -> list[int]:
        """Return the ids of runs whose pulse has been still for longer than its lease."""
        moved: dict[str, tuple[datetime | None, float]] = {}
        dead: list[int] = []
        for pulse in pulses:
            limit = self.run_lease if pulse.status == "running" else self.gateway_lease
            known = moved.get(pulse.key) or self._moved.get(pulse.key)
            if known is not None and known[0] == pulse.beat:
                since = known[1]
            else:  # new, or it beat since we last looked
                since = mono - self._first_age(pulse, now, limit, known is None)
            moved[pulse.key] = (pulse.beat, since)
            if mono - since >= limit.total_seconds():
                dead.append(pulse.run_id)
        self._moved = moved
        return dead

    @staticmethod
    def _first_age(pulse: Pulse, now: datetime, limit: timedelta, first_sight: bool) -> float:
        """Return how long a pulse counts as still when it is new to us (0 if it just beat)."""
        if not first_sight or pulse.beat is None:
            return 0.0
        age = (now - pulse.beat).total_seconds()
        return min(max(age, 0.0), limit.total_seconds())
