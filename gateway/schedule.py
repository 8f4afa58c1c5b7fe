"""Schedule: parse, validate, explain, next_times(after, count), H hashing, DST rules.

Semantics are Debian/Vixie cron's (see docs in `Schedule`); croniter only finds the next
matching naive wall time, and `gateway.schedule_dst` maps wall times to instants.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from functools import cache
from functools import lru_cache
from itertools import islice
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError
from zoneinfo import available_timezones

from cron_descriptor import Options
from cron_descriptor import get_description
from croniter import CroniterBadDateError
from croniter import croniter

from gateway.errors import InvalidSchedule
from gateway.schedule_dst import fixed_time_fires
from gateway.schedule_dst import is_repeated
from gateway.schedule_dst import real_time_fires
from gateway.schedule_fields import check_days_exist
from gateway.schedule_fields import parse_fields

MAX_COUNT = 1000
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*$")
_NOT_ZONES = ("localtime", "factory", "posixrules")
_PROBE_START = datetime(2000, 1, 1)
_TICK = timedelta(microseconds=1)


class Schedule:
    """A cron expression in an IANA time zone, with Debian/Vixie cron semantics.

    Five fields (minute hour day-of-month month day-of-week) or six with a leading seconds
    field; names, lists, ranges, steps, `@daily`-style macros, `L`, `W`, `#`, and `H` hashed
    from `name`. A job whose seconds, minute and hour fields do not start with `*` is
    *fixed-time*: a skipped wall time fires once at the DST jump, a repeated one fires once
    in the first pass. Other jobs follow real time.

    >>> s = Schedule("30 2 * * 1", tz="Europe/Berlin")
    >>> s.next_time(datetime(2026, 10, 25, tzinfo=ZoneInfo("UTC"))).isoformat()
    '2026-10-26T02:30:00+01:00'
    >>> s.explain()
    'At 02:30, only on Monday (Europe/Berlin)'
    """

    def __init__(self, expr: str, tz: str = "UTC", name: str | None = None) -> None:
        self.expr = expr
        self.tz = tz
        self.name = name
        if name is not None and not isinstance(name, str):
            raise InvalidSchedule("name: a job name must be a string", field="name")
        self.zone = validate_timezone(tz)
        parsed = parse_fields(expr, name)
        self.fields = parsed.fields
        self.has_seconds = parsed.has_seconds
        self.fixed_time = parsed.fixed_time
        check_days_exist(parsed, expr)
        self._cron = croniter(
            parsed.croniter_expr,
            _PROBE_START,
            ret_type=datetime,
            day_or=parsed.day_or,
            second_at_beginning=True,
        )
        if _wall_next(self._cron, _PROBE_START) is None:
            raise InvalidSchedule(
                f"day-of-month/day-of-week: never fires, no matching day in 50 years (in '{expr}')",
                field="schedule",
            )

    def __repr__(self) -> str:
        return f"Schedule({self.expr!r}, tz={self.tz!r}, name={self.name!r})"

    def next_times(self, after: datetime, count: int = 1) -> list[datetime]:
        """Return up to `count` fire times strictly after the aware `after`, in the job's zone.

        Fewer than `count` come back only when the calendar ends (year 9999).
        """
        if not isinstance(after, datetime) or after.utcoffset() is None:
            raise ValueError("after must be an aware datetime")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            raise ValueError(f"count must be an integer from 1 to {MAX_COUNT}")
        cron = copy.copy(self._cron)  # croniter keeps state; one copy per call is thread-safe

        def wall_next(wall: datetime) -> datetime | None:
            return _wall_next(cron, wall)

        walk = fixed_time_fires if self.fixed_time else real_time_fires
        return list(islice(walk(wall_next, self.zone, after), count))

    def next_time(self, after: datetime) -> datetime:
        """Return the first fire time strictly after the aware `after`."""
        times = self.next_times(after, 1)
        if not times:
            raise ValueError(f"{self.expr!r} does not fire after {after.isoformat()}")
        return times[0]

    def explain(self) -> str:
        """Return the schedule in plain English with its zone, e.g. 'At 02:30 (UTC)'."""
        fields = self.fields if self.has_seconds else self.fields[1:]
        options = Options(use_24hour_time_format=True, locale_code="en_US")
        try:
            text = get_description(" ".join(fields), options)
        except Exception:  # cron_descriptor is only prose: never fail a valid schedule on it
            text = " ".join(fields)
        return f"{text} ({self.tz})"

    def dst_notes(self, after: datetime, count: int = 1) -> list[tuple[datetime, str | None]]:
        """Return the next fire times, each with a note when a DST change moved or doubled it."""
        return [(t, self._dst_note(t)) for t in self.next_times(after, count)]

    def _dst_note(self, fire: datetime) -> str | None:
        """Return why `fire` is special under DST, or None if it is an ordinary fire."""
        wall = fire.replace(tzinfo=None)
        before = (fire - timedelta(seconds=1)).astimezone(self.zone)
        if before.utcoffset() != fire.utcoffset() and not self._matches(wall):
            return "moved: its wall time was skipped when clocks went forward"
        if not is_repeated(wall, self.zone):
            return None
        if self.fixed_time:
            return "once: this wall time repeats when clocks go back; it runs in the first pass"
        if fire.fold:
            return "again: second pass of the hour repeated when clocks went back"
        return "first pass of an hour that repeats when clocks go back"

    def _matches(self, wall: datetime) -> bool:
        """Return True if the naive wall time matches the expression."""
        return _wall_next(copy.copy(self._cron), wall - _TICK) == wall


def cached_schedule(expr: str, tz: str, name: str | None) -> Schedule:
    """Return the (immutable, thread-safe) Schedule, parsed once per process.

    The name only matters to `H`, so jobs that share an expression without one share its
    Schedule: ten thousand jobs on sixty expressions make sixty entries, not a cache that
    thrashes. Raises InvalidSchedule as Schedule does.
    """
    return _cached(expr, tz, _hashed_name(expr, name))


def _hashed_name(expr: str, name: str | None) -> str | None:
    """The name where it matters (an `H` field), else None: one cache entry per expression."""
    return name if "h" in expr.lower() else None


@lru_cache(maxsize=4096)
def _cached(expr: str, tz: str, name: str | None) -> Schedule:
    return Schedule(expr, tz, name=name)


def cached_next_time(expr: str, tz: str, name: str | None, after: datetime) -> datetime | None:
    """Return the first fire time strictly after the aware `after`, or None if the calendar
    ends first; remembered per (schedule, after), so a sync that gives 100,000 jobs on sixty
    expressions their first slot computes sixty (croniter: about 0.1 ms each)."""
    times = remembered_next_times(cached_schedule(expr, tz, name))(after, 1)
    return times[0] if times else None


def remembered_next_times(schedule: Schedule) -> Callable[[datetime, int], list[datetime]]:
    """Return `schedule.next_times`, remembered per (after, count): the jobs of a burst share
    an expression and a slot, so claiming a thousand of them walks croniter once, not a
    thousand times (about 50 µs each). Only short walks are kept: a catch-up scan asks for up
    to a thousand slots, which would make the cache large."""

    def next_times(after: datetime, count: int = 1) -> list[datetime]:
        if count > _REMEMBERED_COUNT or after.utcoffset() is None:
            return schedule.next_times(after, count)  # (a naive `after` raises there)
        # In UTC: aware times equal as instants hash alike, but a fold=1 wall time in a zone
        # compares equal to its fold=0 twin, which is another instant.
        return list(_times_cached(schedule, after.astimezone(UTC), count))

    return next_times


_REMEMBERED_COUNT = 4


@lru_cache(maxsize=2048)
def _times_cached(schedule: Schedule, after: datetime, count: int) -> tuple[datetime, ...]:
    return tuple(schedule.next_times(after, count))


def validate_timezone(tz: str) -> ZoneInfo:
    """Return the ZoneInfo for the IANA name `tz`, or raise InvalidSchedule(field="tz")."""
    if not isinstance(tz, str) or not tz:
        raise InvalidSchedule("tz: a time zone is required, e.g. 'Europe/Berlin'", field="tz")
    if len(tz) > 64 or not _ZONE_NAME.match(tz) or tz.lower() in _NOT_ZONES:
        raise InvalidSchedule(f"tz: '{tz[:64]}' is not a valid IANA time zone", field="tz")
    if tz.split("/")[0] in ("posix", "right") or tz not in _zone_names():
        raise InvalidSchedule(f"tz: '{tz}' is not a known IANA time zone", field="tz")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise InvalidSchedule(f"tz: '{tz}' is not a known IANA time zone", field="tz") from e


@cache
def _zone_names() -> frozenset[str]:
    """Return the IANA zone names this machine knows (read once)."""
    return frozenset(available_timezones() | {"UTC"})


def _wall_next(cron: croniter, wall: datetime) -> datetime | None:
    """Return croniter's first naive match strictly after the naive `wall`, or None."""
    try:
        match: datetime = cron.get_next(start_time=wall)
    except (CroniterBadDateError, OverflowError, ValueError):
        return None
    return match
