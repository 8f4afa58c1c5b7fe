"""Pure planning: which due slots of one job to run and which to record missed (DESIGN §4).

Nothing here reads a clock or touches the database: the loop passes `now`, the job's stored
`next_run_at` and its schedule's `next_times`, and executes the returned `Plan`.

Bounds: the due slots are listed one by one up to `max_scan` (default 10,000). Beyond that
(a per-second job down for a week) the planner jumps: it finds the first slot after `now` with
one call, the last slot before a boundary by bisection (about 40 calls), and *estimates* how
many slots lie in the part it did not list, from the mean interval of the listed ones. Such a
folded record says `exact=False`. Up to `max_scan` slots every count is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from gateway.scheduler.policy import MisfirePolicy
from gateway.scheduler.policy import OverlapDecision
from gateway.scheduler.policy import OverlapMode

NextTimes = Callable[[datetime, int], list[datetime]]
"""`next_times(after, count)`: up to `count` aware slots strictly after `after`, ascending."""

_TICK = timedelta(microseconds=1)
_MAX_BATCH = 1000  # Schedule.next_times takes at most 1000 per call


@dataclass(frozen=True)
class MissedSlots:
    """One *missed* row: `count` slots from `first` to `last` (equal when count is 1)."""

    first: datetime
    last: datetime
    count: int
    exact: bool = True


@dataclass(frozen=True)
class Plan:
    """What to do now: claim and call `run` (oldest first), record `missed`, store `next_run_at`.

    `next_run_at` is the first slot not handled by this plan; it may still be <= now when
    `run` was cut at `max_run_slots`, so the loop simply plans again. None: the job is finished.
    """

    run: list[datetime]
    missed: list[MissedSlots]
    next_run_at: datetime | None

    @property
    def finished(self) -> bool:
        """Return True if no slot follows this plan (max_runs reached or schedule ended)."""
        return self.next_run_at is None


def plan_due(
    policy: MisfirePolicy,
    next_times: NextTimes,
    next_run_at: datetime,
    now: datetime,
    *,
    max_missed_rows: int = 100,
    max_run_slots: int = 100,
    max_scan: int = 10_000,
) -> Plan:
    """Return the plan for a job whose earliest unclaimed slot is `next_run_at`, at `now`.

    Slots later than `now - grace` are on time. `skip` runs only the newest due slot and only
    if it is on time; `once` runs the newest due slot if it is within the catch-up window (or
    on time); `all` runs every due slot within it, oldest first, at most `max_run_slots` per
    plan. Every other due slot is missed: the oldest `max_missed_rows` get a row each, the
    rest are folded into one row with a count. All datetimes returned are in UTC.
    """
    _require_aware(next_run_at=next_run_at, now=now)
    if max_missed_rows < 0 or max_run_slots < 1 or max_scan < 1:
        raise ValueError("plan_due: max_missed_rows >= 0, max_run_slots >= 1, max_scan >= 1")
    first, now = next_run_at.astimezone(UTC), now.astimezone(UTC)
    if now < first:
        return Plan(run=[], missed=[], next_run_at=first)
    oldest_runnable = now - _lateness_allowed(policy)
    runnable_from = oldest_runnable if policy.mode == "all" else None
    due, upcoming, complete = _scan_due(
        next_times, first, now, max_scan, runnable_from, max_run_slots
    )
    if complete:
        return _plan_listed(policy, due, upcoming, oldest_runnable, max_missed_rows, max_run_slots)
    upcoming = _first_after(next_times, now)
    newest = _last_before(next_times, due[-1], upcoming or now + _TICK)
    if policy.mode != "all":
        if newest < oldest_runnable:
            return Plan([], _fold(next_times, due, newest, max_missed_rows), upcoming)
        last_missed = _last_before(next_times, due[-1], newest)
        return Plan([newest], _fold(next_times, due, last_missed, max_missed_rows), upcoming)
    return _plan_all_unlisted(
        next_times, due, newest, upcoming, oldest_runnable, max_missed_rows, max_run_slots
    )


def decide_overlap(policy: OverlapMode, running: bool) -> OverlapDecision:
    """Return what to do with a new slot of a job that may still have a run going (DESIGN §4)."""
    if not running or policy == "allow":
        return "run"
    if policy == "forbid":
        return "skip"
    if policy == "replace":
        return "replace"
    raise ValueError(f"overlap: {policy!r} is not one of forbid, allow, replace")


def limit_runs(plan: Plan, run_count: int, max_runs: int | None) -> Plan:
    """Return `plan` trimmed so run_count never exceeds max_runs; finished plans have no next slot.

    Slots after the last allowed run are not expected any more, so they are neither run nor
    recorded missed. Missed slots are always older than planned runs, so they are kept.
    """
    if max_runs is None:
        return plan
    remaining = max_runs - run_count
    if remaining <= 0:
        return Plan(run=[], missed=[], next_run_at=None)
    if len(plan.run) < remaining:
        return plan
    return replace(plan, run=plan.run[:remaining], next_run_at=None)


def should_auto_pause(consecutive_failures: int, threshold: int | None) -> bool:
    """Return True if a job with this many consecutive failures must be paused (None: never)."""
    return threshold is not None and threshold > 0 and consecutive_failures >= threshold


def _lateness_allowed(policy: MisfirePolicy) -> timedelta:
    """Return how late a slot may be and still run under `policy`."""
    if policy.mode == "skip":
        return policy.grace
    return max(policy.catchup_window, policy.grace)


def _plan_listed(
    policy: MisfirePolicy,
    due: list[datetime],
    upcoming: datetime | None,
    oldest_runnable: datetime,
    max_missed_rows: int,
    max_run_slots: int,
) -> Plan:
    """Return the plan when every due slot is listed in `due` (the usual, exact case)."""
    if policy.mode != "all":
        if due[-1] < oldest_runnable:
            return Plan([], _fold_listed(due, max_missed_rows), upcoming)
        return Plan([due[-1]], _fold_listed(due[:-1], max_missed_rows), upcoming)
    missed = [slot for slot in due if slot < oldest_runnable]
    runnable = due[len(missed) :]
    run, rest = runnable[:max_run_slots], runnable[max_run_slots:]
    return Plan(run, _fold_listed(missed, max_missed_rows), rest[0] if rest else upcoming)


def _plan_all_unlisted(
    next_times: NextTimes,
    due: list[datetime],
    newest: datetime,
    upcoming: datetime | None,
    oldest_runnable: datetime,
    max_missed_rows: int,
    max_run_slots: int,
) -> Plan:
    """Return the `all` plan when there were too many due slots to list them all."""
    if newest < oldest_runnable:
        return Plan([], _fold(next_times, due, newest, max_missed_rows), upcoming)
    missed = [slot for slot in due if slot < oldest_runnable]
    if len(missed) < len(due):
        first_runnable = due[len(missed)]
        missed_rows = _fold_listed(missed, max_missed_rows)
    else:
        first_runnable = _first_after(next_times, oldest_runnable - _TICK) or newest
        last_missed = _last_before(next_times, due[-1], first_runnable)
        missed_rows = _fold(next_times, due, last_missed, max_missed_rows)
    run: list[datetime] = []
    for slot in _slots_from(next_times, first_runnable):
        if slot > newest or len(run) == max_run_slots:
            return Plan(run, missed_rows, slot if slot <= newest else upcoming)
        run.append(slot)
    return Plan(run, missed_rows, upcoming)


def _fold_listed(slots: list[datetime], cap: int) -> list[MissedSlots]:
    """Return one row per slot for the oldest `cap` slots and one exact folded row for the rest."""
    rows = [MissedSlots(slot, slot, 1) for slot in slots[:cap]]
    rest = slots[cap:]
    if rest:
        rows.append(MissedSlots(rest[0], rest[-1], len(rest)))
    return rows


def _fold(
    next_times: NextTimes, listed: list[datetime], last: datetime, cap: int
) -> list[MissedSlots]:
    """Return the rows for `listed` plus the unlisted slots after it up to `last` (estimated)."""
    if last == listed[-1]:
        return _fold_listed(listed, cap)
    rows = _fold_listed(listed, cap)
    unlisted = _estimate_count(listed, last)
    if len(listed) > cap:
        folded = rows.pop()
        return [*rows, MissedSlots(folded.first, last, folded.count + unlisted, exact=False)]
    first_unlisted = _first_after(next_times, listed[-1]) or last
    return [*rows, MissedSlots(first_unlisted, last, unlisted, exact=False)]


def _estimate_count(listed: list[datetime], last: datetime) -> int:
    """Return about how many slots lie in (listed[-1], last], from the mean listed interval."""
    if len(listed) < 2:
        return 1
    mean = (listed[-1] - listed[0]) / (len(listed) - 1)
    return max(1, round((last - listed[-1]) / mean))


def _scan_due(
    next_times: NextTimes,
    first: datetime,
    now: datetime,
    limit: int,
    runnable_from: datetime | None = None,
    runnable_limit: int = 0,
) -> tuple[list[datetime], datetime | None, bool]:
    """Return the due slots from `first`, the slot that follows them, and whether none is left out.

    Listing stops after `limit` slots (incomplete: the following slot is then unknown, None),
    at the first slot after `now`, or, when `runnable_from` is given, once `runnable_limit`
    slots at or after it are listed: the following slot is then due but not listed, so `all`
    never lists more than one batch of runs. None as the following slot of a complete listing
    means the schedule ended.
    """
    due = [first]
    runnable = 1 if runnable_from is not None and first >= runnable_from else 0
    for slot in _slots_from(next_times, first, include_first=False):
        if slot > now or (runnable_from is not None and runnable == runnable_limit):
            return due, slot, True
        if len(due) == limit:
            return due, None, False
        due.append(slot)
        runnable += 1 if runnable_from is not None and slot >= runnable_from else 0
    return due, None, True


def _slots_from(
    next_times: NextTimes, first: datetime, include_first: bool = True
) -> Iterator[datetime]:
    """Yield `first` (a slot) and the slots after it, in UTC, asking for doubling batches.

    The first batch has one slot, so the usual case (one due slot) costs one call.
    """
    if include_first:
        yield first
    after, batch = first, 1
    while True:
        slots = [slot.astimezone(UTC) for slot in next_times(after, batch)]
        yield from slots
        if len(slots) < batch:
            return
        after, batch = slots[-1], min(batch * 2, _MAX_BATCH)


def _first_after(next_times: NextTimes, after: datetime) -> datetime | None:
    """Return the first slot strictly after `after`, in UTC, or None if the schedule ended."""
    slots = next_times(after, 1)
    return slots[0].astimezone(UTC) if slots else None


def _last_before(next_times: NextTimes, known: datetime, stop: datetime) -> datetime:
    """Return the latest slot before `stop`, given a slot `known` before it (bisection).

    Invariant: `low` is a slot before `stop` and no slot lies in (high, stop). Datetimes have
    microsecond resolution, so this ends in about log2(span in µs) calls.
    """
    low, high = known, stop - _TICK
    while high - low > _TICK:
        middle = low + (high - low) / 2
        found = _first_after(next_times, middle)
        if found is not None and found < stop:
            low = found
        else:
            high = middle
    found = _first_after(next_times, low)
    return found if found is not None and found < stop else low


def _require_aware(**values: datetime) -> None:
    """Raise ValueError naming the first naive datetime among `values`."""
    for name, value in values.items():
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name}: {value.isoformat()} is naive; pass an aware datetime")
