"""Map naive wall-clock cron matches to real instants under Debian/Vixie cron's DST rules.

A *fixed-time* job (seconds, minute and hour fields not starting with `*`) fires once for a
wall time that a spring-forward skips (at the transition instant) and once, in the first pass,
for a wall time that a fall-back repeats. Every other job follows real time: skipped wall times
never happen and repeated ones happen twice, in chronological order.

Everything here is pure: `wall_next(naive)` returns the first matching naive wall time strictly
after `naive`, or None when there is none.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from zoneinfo import ZoneInfo

WallNext = Callable[[datetime], datetime | None]

_TICK = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
# Transitions of real zones are months apart; a day step cannot jump over two of them.
_PROBE = timedelta(days=1)


def fixed_time_fires(wall_next: WallNext, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Yield the fire instants (aware, in `zone`) of a fixed-time job strictly after `after`."""
    wall = _wall(after, zone)
    last = after
    while (match := wall_next(wall)) is not None:
        instant, gap_end = _fixed_instant(match, zone)
        # In a gap every skipped match maps to the same transition instant: jump past them all.
        wall = gap_end - _TICK if gap_end is not None else match
        if instant > last:
            last = instant
            yield instant


def real_time_fires(wall_next: WallNext, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Yield the fire instants (aware, in `zone`) of a real-time job strictly after `after`."""
    start = after.astimezone(UTC)
    wall = _wall(start, zone)
    while (match := wall_next(wall)) is not None:
        offset = _offset(zone, start)
        candidate = (match - offset).replace(tzinfo=UTC)
        change = next_transition(zone, start, candidate)
        if change is None:
            start = candidate
            wall = match
            yield candidate.astimezone(zone)
        else:
            # The match lies beyond this offset's segment: restart at-or-after the change.
            start = change
            wall = _wall(change, zone) - _TICK


def next_transition(zone: ZoneInfo, start: datetime, limit: datetime) -> datetime | None:
    """Return the first instant in (start, limit] where `zone`'s UTC offset changes, or None."""
    offset = _offset(zone, start)
    low = start
    while low < limit:
        high = min(low + _PROBE, limit)
        if _offset(zone, high) != offset:
            return _bisect(zone, low, high, offset)
        low = high
    return None


def is_skipped(wall: datetime, zone: ZoneInfo) -> bool:
    """Return True if the naive wall time `wall` does not exist in `zone` (a DST gap)."""
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall


def is_repeated(wall: datetime, zone: ZoneInfo) -> bool:
    """Return True if the naive wall time `wall` happens twice in `zone` (a DST overlap)."""
    return wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(
        tzinfo=zone, fold=1
    ).utcoffset() and not is_skipped(wall, zone)


def _fixed_instant(wall: datetime, zone: ZoneInfo) -> tuple[datetime, datetime | None]:
    """Return the instant for `wall` (first pass if repeated) and, in a gap, the gap's end wall."""
    if not is_skipped(wall, zone):
        return wall.replace(tzinfo=zone, fold=0), None
    before = wall.replace(tzinfo=zone, fold=0).utcoffset()
    assert before is not None
    # fold=0 reads a skipped wall time with the offset from before the jump; that instant
    # lies after the transition, so the transition is within the preceding day.
    probe = (wall - before).replace(tzinfo=UTC)
    change = next_transition(zone, probe - _PROBE, probe)
    assert change is not None
    return change.astimezone(zone), _wall(change, zone)


def _bisect(zone: ZoneInfo, low: datetime, high: datetime, offset: timedelta) -> datetime:
    """Return the first whole second in (low, high] whose offset differs from `offset`."""
    low = low.replace(microsecond=0)
    while high - low > _SECOND:
        middle = (low + (high - low) // 2).replace(microsecond=0)
        if _offset(zone, middle) == offset:
            low = middle
        else:
            high = middle
    return low + _SECOND


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    """Return `zone`'s UTC offset at the aware `instant`."""
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """Return the naive wall time of the aware `instant` in `zone`."""
    return instant.astimezone(zone).replace(tzinfo=None)
