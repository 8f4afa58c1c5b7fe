"""Pure alert rules: from a job's expectations, its recent runs and `now`, which conditions open
or close. No I/O and no clock: the evaluator passes everything in.

A condition (failure, late, too_fast, too_slow, too_often) opens once and stays open until it
ends, so a job that keeps failing gives one alert, not one per run. A success that ends a
failure or a lateness gives one recovery alert.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from gateway.errors import GatewayError
from gateway.schedule import Schedule
from gateway.schedule import cached_schedule
from gateway.schedule import remembered_next_times

FAILED = ("error", "timeout", "abandoned")
COUNTED = (*FAILED, "success")  # skipped, canceled and missed runs say nothing either way
PACED_TRIGGERS = ("schedule", "external")  # manual, retry and backfill runs may come any time
EARLY_TOLERANCE = timedelta(seconds=60)  # a run this early still belongs to its slot
_Hold = Callable[[str, bool, str], None]  # judge's `hold(kind, holds, message)`


@dataclass(frozen=True)
class Expectation:
    """What is expected of a job: when it should succeed, and how long a run may take."""

    name: str
    schedule: str | None
    tz: str = "UTC"
    expect_every: timedelta | None = None  # None: from the schedule
    grace: timedelta = timedelta(minutes=5)
    min_duration_ms: int | None = None
    max_duration_ms: int | None = None
    watched: bool = True  # the dead-man's switch applies (enabled or watch-only)
    since: datetime | None = None  # when watching began: the base before any success


@dataclass(frozen=True)
class RunFact:
    """One finished run, as the rules need it."""

    status: str
    trigger: str
    started_at: datetime | None
    duration_ms: int | None = None
    error: str | None = None
    scheduled_for: datetime | None = None  # the slot, for runs the gateway sent on schedule


@dataclass(frozen=True)
class Notice:
    kind: str
    message: str


@dataclass(frozen=True)
class Verdict:
    opened: tuple[Notice, ...] = ()  # conditions that start now: one alert each
    closed: tuple[str, ...] = ()  # kinds whose condition ended
    notices: tuple[Notice, ...] = ()  # one-off alerts: recovery
    late_at: datetime | None = None  # when the job turns late unless it succeeds; None: n/a


def judge(
    job: Expectation,
    runs: Sequence[RunFact],
    last_success_at: datetime | None,
    open_kinds: frozenset[str],
    now: datetime,
) -> Verdict:
    """Return what changes for `job` now. `runs` are its newest finished runs, oldest first."""
    opened: list[Notice] = []
    closed: list[str] = []

    def hold(kind: str, holds: bool, message: str) -> None:
        if holds and kind not in open_kinds:
            opened.append(Notice(kind, message))
        elif not holds and kind in open_kinds:
            closed.append(kind)

    counted = [r for r in runs if r.status in COUNTED]
    last = counted[-1] if counted else None
    if last is not None:
        hold("failure", last.status in FAILED, _failure_message(job, last, counted))
    late_at = late_deadline(job, last_success_at)
    is_late = late_at is not None and now >= late_at
    hold("late", is_late, _late_message(job, last_success_at, late_at))
    _durations(job, runs, hold)
    _pace(job, runs, hold)
    notices: list[Notice] = []
    if last is not None and last.status == "success" and {"failure", "late"} & set(closed):
        notices.append(Notice("recovery", f"{job.name} recovered: it succeeded again"))
    return Verdict(tuple(opened), tuple(closed), tuple(notices), None if is_late else late_at)


def late_deadline(job: Expectation, last_success_at: datetime | None) -> datetime | None:
    """Return when the job is late without a new success: the next expected time + grace."""
    base = last_success_at or job.since
    if not job.watched or base is None:
        return None
    if job.expect_every is not None:
        return base + job.expect_every + job.grace
    slot = _next_slot(job, base)
    return None if slot is None else slot[0] + job.grace


def _next_slot(job: Expectation, after: datetime) -> tuple[datetime, timedelta] | None:
    """Return the first fire time after the slot `after` belongs to (a run may start a little
    early), and how early a run may be: a minute, or half the interval if that is shorter."""
    schedule = _schedule(job)
    if schedule is None:
        return None
    following = _following(schedule, after)
    if len(following) < 2:
        return (following[0], timedelta(0)) if following else None
    tolerance = min(EARLY_TOLERANCE, (following[1] - following[0]) / 2)
    if following[0] - after > tolerance:
        return following[0], tolerance
    return following[1], tolerance  # `after` was an early start of following[0]


def _following(schedule: Schedule, after: datetime) -> list[datetime]:
    """The two fire times after `after` (jobs made together share their first judgement)."""
    return remembered_next_times(schedule)(after, 2)


def _schedule(job: Expectation) -> Schedule | None:
    if job.schedule is None:
        return None
    try:
        return cached_schedule(job.schedule, job.tz, job.name)
    except GatewayError:  # an invalid stored schedule pauses the job elsewhere; expect nothing
        return None


def _durations(job: Expectation, runs: Sequence[RunFact], hold: _Hold) -> None:
    """too_fast / too_slow: the newest successful run's duration against the job's bounds."""
    timed = [r for r in runs if r.status == "success" and r.duration_ms is not None]
    if not timed:
        return
    ms = timed[-1].duration_ms or 0
    if job.min_duration_ms is not None:
        hold(
            "too_fast",
            ms < job.min_duration_ms,
            f"{job.name} finished in {ms} ms, under its minimum of {job.min_duration_ms} ms",
        )
    if job.max_duration_ms is not None:
        hold(
            "too_slow",
            ms > job.max_duration_ms,
            f"{job.name} took {ms} ms, over its maximum of {job.max_duration_ms} ms",
        )


def _pace(job: Expectation, runs: Sequence[RunFact], hold: _Hold) -> None:
    """too_often: the two newest paced runs came within one slot of the schedule.

    A run the gateway sent counts at its slot, not at its start: a late start is not a
    second run of the slot before it.
    """
    paced = (r for r in runs if r.trigger in PACED_TRIGGERS and r.status in COUNTED)
    starts = sorted(at for r in paced if (at := r.scheduled_for or r.started_at) is not None)
    if len(starts) < 2:
        return
    previous, newest = starts[-2], starts[-1]
    slot = _next_slot(job, previous)
    if slot is None:
        return
    allowed, tolerance = slot
    too_soon = newest + tolerance < allowed
    hold(
        "too_often",
        too_soon,
        f"{job.name} ran at {previous.isoformat()} and again at {newest.isoformat()}, "
        f"more often than its schedule {job.schedule!r} allows",
    )


def _failure_message(job: Expectation, last: RunFact, counted: Sequence[RunFact]) -> str:
    why = f": {last.error[:300]}" if last.error else ""
    if len(counted) == 1:
        return f"{job.name} failed on its first run ({last.status}){why}"
    return f"{job.name} failed ({last.status}){why}"


def _late_message(
    job: Expectation, last_success_at: datetime | None, late_at: datetime | None
) -> str:
    since = last_success_at.isoformat() if last_success_at else "never"
    due = (late_at - job.grace).isoformat() if late_at else "?"
    return f"{job.name} has not succeeded since {since}; a success was expected by {due}"
