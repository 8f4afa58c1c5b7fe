"""Planner: misfire, catch-up, folding, overlap, max_runs, auto-pause. Plain datetimes, no DB."""

from __future__ import annotations

from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from gateway.scheduler.planner import MissedSlots
from gateway.scheduler.planner import NextTimes
from gateway.scheduler.planner import Plan
from gateway.scheduler.planner import decide_overlap
from gateway.scheduler.planner import limit_runs
from gateway.scheduler.planner import plan_due
from gateway.scheduler.planner import should_auto_pause
from gateway.scheduler.policy import MisfireMode
from gateway.scheduler.policy import MisfirePolicy
from gateway.scheduler.policy import OverlapDecision
from gateway.scheduler.policy import OverlapMode
from tests.fakes import FakeClock

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


class Every:
    """A DST-free fake schedule: every `seconds` from T0, counting next_times calls."""

    def __init__(self, seconds: float) -> None:
        self.step = timedelta(seconds=seconds)
        self.calls = 0

    def __call__(self, after: datetime, count: int) -> list[datetime]:
        self.calls += 1
        k = (after - T0) // self.step + 1
        return [T0 + self.step * (k + i) for i in range(count)]


def daily_at(hour: int, tz: str) -> NextTimes:
    """Return a real daily cadence: every day at `hour`:00 local time in `tz`."""
    zone = ZoneInfo(tz)

    def next_times(after: datetime, count: int) -> list[datetime]:
        day = after.astimezone(zone).date()
        slots: list[datetime] = []
        while len(slots) < count:
            slot = datetime.combine(day, time(hour), tzinfo=zone)
            if slot > after:
                slots.append(slot.astimezone(UTC))
            day += timedelta(days=1)
        return slots

    return next_times


def ending_at(last: datetime, step: Every) -> NextTimes:
    """Return `step`'s slots, but none after `last` (a schedule that ends)."""
    return lambda after, count: [s for s in step(after, count) if s <= last]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def at(m: float) -> datetime:
    """Return T0 plus `m` minutes."""
    return T0 + minutes(m)


def singles(*ms: float) -> list[MissedSlots]:
    return [MissedSlots(at(m), at(m), 1) for m in ms]


ONCE = MisfirePolicy()
SKIP = MisfirePolicy(mode="skip")
ALL = MisfirePolicy(mode="all")


# -- on time ----------------------------------------------------------------------------------


def test_nothing_is_due_before_next_run_at() -> None:
    plan = plan_due(ONCE, Every(60), at(1), at(0.5))
    assert plan == Plan(run=[], missed=[], next_run_at=at(1))


@pytest.mark.parametrize("mode", ["skip", "once", "all"])
def test_an_on_time_slot_runs_and_the_next_slot_follows(mode: MisfireMode) -> None:
    plan = plan_due(MisfirePolicy(mode=mode), Every(60), at(1), at(1) + timedelta(seconds=0.2))
    assert plan == Plan(run=[at(1)], missed=[], next_run_at=at(2))


def test_the_usual_case_costs_one_next_times_call() -> None:
    schedule = Every(60)
    plan_due(ONCE, schedule, at(1), at(1))
    assert schedule.calls == 1


def test_a_slot_within_grace_is_on_time_even_for_skip() -> None:
    plan = plan_due(SKIP, Every(60), at(1), at(1) + timedelta(seconds=5))
    assert plan.run == [at(1)]


def test_a_slot_later_than_grace_is_a_misfire_for_skip() -> None:
    plan = plan_due(SKIP, Every(60), at(1), at(1) + timedelta(seconds=6))
    assert plan == Plan(run=[], missed=singles(1), next_run_at=at(2))


def test_the_fake_clock_drives_the_planner_like_the_loop_would() -> None:
    clock = FakeClock(at(0))
    next_run_at = at(1)
    ran: list[datetime] = []
    for _ in range(5):
        clock.advance(seconds=61)
        plan = plan_due(ONCE, Every(60), next_run_at, clock.now())
        ran += plan.run
        assert plan.missed == [] and plan.next_run_at is not None
        next_run_at = plan.next_run_at
    assert ran == [at(1), at(2), at(3), at(4), at(5)]


# -- misfires: ten one-minute slots at minutes 1..10 came due while the gateway was down ------

MISFIRE_TABLE = [
    # (policy, now, run, missed)
    (SKIP, at(10), [at(10)], singles(1, 2, 3, 4, 5, 6, 7, 8, 9)),
    (SKIP, at(10.5), [], singles(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)),
    (ONCE, at(10.5), [at(10)], singles(1, 2, 3, 4, 5, 6, 7, 8, 9)),
    (MisfirePolicy(catchup_window=timedelta(0)), at(10.5), [], singles(*range(1, 11))),
    (ALL, at(10.5), [at(m) for m in range(1, 11)], []),
    (
        MisfirePolicy(mode="all", catchup_window=minutes(4)),
        at(10.5),
        [at(7), at(8), at(9), at(10)],
        singles(1, 2, 3, 4, 5, 6),
    ),
    (
        MisfirePolicy(mode="all", catchup_window=timedelta(0)),
        at(10),
        [at(10)],
        singles(*range(1, 10)),
    ),
]


@pytest.mark.parametrize(("policy", "now", "run", "missed"), MISFIRE_TABLE)
def test_misfire_policy_table(
    policy: MisfirePolicy, now: datetime, run: list[datetime], missed: list[MissedSlots]
) -> None:
    plan = plan_due(policy, Every(60), at(1), now)
    assert (plan.run, plan.missed) == (run, missed)
    assert plan.next_run_at == at(int(now.minute - T0.minute) + 1)


def test_once_runs_the_newest_missed_slot_and_records_the_rest_missed() -> None:
    plan = plan_due(ONCE, Every(60), at(1), at(30))
    assert plan.run == [at(30)]
    assert plan.missed == singles(*range(1, 30))


def test_once_runs_nothing_when_the_newest_slot_is_outside_the_catchup_window() -> None:
    plan = plan_due(ONCE, Every(3600 * 6), at(360), at(360 + 61))
    assert plan == Plan(run=[], missed=singles(360), next_run_at=at(720))


def test_all_runs_missed_slots_oldest_first_and_cuts_the_batch_at_max_run_slots() -> None:
    plan = plan_due(ALL, Every(60), at(1), at(10), max_run_slots=4)
    assert plan == Plan(run=[at(1), at(2), at(3), at(4)], missed=[], next_run_at=at(5))
    rest = plan_due(ALL, Every(60), at(5), at(10), max_run_slots=4)
    assert rest.run == [at(5), at(6), at(7), at(8)] and rest.next_run_at == at(9)


# -- folding ----------------------------------------------------------------------------------


def test_missed_slots_beyond_the_cap_are_folded_into_one_exact_row() -> None:
    plan = plan_due(SKIP, Every(60), at(1), at(500.5), max_missed_rows=100)
    assert plan.missed[:100] == singles(*range(1, 101))
    assert plan.missed[100:] == [MissedSlots(at(101), at(500), 400)]
    assert len(plan.missed) == 101 and plan.next_run_at == at(501)


def test_a_cap_of_zero_folds_every_missed_slot_into_one_row() -> None:
    plan = plan_due(SKIP, Every(60), at(1), at(3.5), max_missed_rows=0)
    assert plan.missed == [MissedSlots(at(1), at(3), 3)]


def test_a_daily_job_down_three_years_folds_beyond_the_cap_exactly() -> None:
    berlin_noon = daily_at(12, "Europe/Berlin")
    first = datetime(2021, 1, 1, 11, 0, tzinfo=UTC)  # 12:00 CET
    now = datetime(2024, 1, 1, 11, 30, tzinfo=UTC)
    plan = plan_due(ONCE, berlin_noon, first, now)
    assert plan.run == [datetime(2024, 1, 1, 11, 0, tzinfo=UTC)]  # 30 min late: within 1 h
    plan = plan_due(ONCE, berlin_noon, first, now + timedelta(hours=1))
    assert plan.run == [] and len(plan.missed) == 101
    folded = plan.missed[-1]
    assert folded.count == (date(2024, 1, 1) - date(2021, 4, 11)).days + 1
    assert folded.first == datetime(2021, 4, 11, 10, 0, tzinfo=UTC)  # 12:00 CEST
    assert folded.last == datetime(2024, 1, 1, 11, 0, tzinfo=UTC) and folded.exact
    assert plan.next_run_at == datetime(2024, 1, 2, 11, 0, tzinfo=UTC)


def test_a_daily_job_beyond_max_scan_gets_an_estimated_count_across_dst() -> None:
    berlin_noon = daily_at(12, "Europe/Berlin")
    first = datetime(2021, 1, 1, 11, 0, tzinfo=UTC)
    now = datetime(2024, 1, 1, 13, 0, tzinfo=UTC)
    plan = plan_due(SKIP, berlin_noon, first, now, max_missed_rows=10, max_scan=50)
    folded = plan.missed[-1]
    assert len(plan.missed) == 11 and not folded.exact
    assert folded.first == datetime(2021, 1, 11, 11, 0, tzinfo=UTC)
    assert folded.last == datetime(2024, 1, 1, 11, 0, tzinfo=UTC)
    assert abs(folded.count - (date(2024, 1, 1) - date(2021, 1, 11)).days - 1) <= 1


def test_a_per_second_job_down_a_week_is_planned_in_bounded_calls_under_once() -> None:
    schedule = Every(1)
    now = T0 + timedelta(days=7, seconds=0.5)
    plan = plan_due(ONCE, schedule, T0 + timedelta(seconds=1), now)
    newest = T0 + timedelta(days=7)
    assert plan.run == [newest] and plan.next_run_at == newest + timedelta(seconds=1)
    assert len(plan.missed) == 101
    folded = plan.missed[-1]
    assert folded.first == T0 + timedelta(seconds=101) and folded.last == newest - timedelta(
        seconds=1
    )
    assert folded.count == 7 * 86400 - 101 and not folded.exact
    assert schedule.calls < 200


def test_a_per_second_job_down_a_week_runs_the_last_hour_in_batches_under_all() -> None:
    schedule = Every(1)
    now = T0 + timedelta(days=7)
    plan = plan_due(ALL, schedule, T0 + timedelta(seconds=1), now)
    window_start = now - timedelta(hours=1)
    assert plan.run == [window_start + timedelta(seconds=i) for i in range(100)]
    assert plan.next_run_at == window_start + timedelta(seconds=100)
    folded = plan.missed[-1]
    assert folded.last == window_start - timedelta(seconds=1)
    assert folded.count + 100 == 7 * 86400 - 3600 - 1
    assert schedule.calls < 200


def test_all_with_many_listed_runnable_slots_still_batches() -> None:
    plan = plan_due(ALL, Every(1), T0, T0 + timedelta(seconds=20), max_scan=5, max_run_slots=3)
    assert plan.run == [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    assert plan.missed == [] and plan.next_run_at == T0 + timedelta(seconds=3)


# -- edges ------------------------------------------------------------------------------------


def test_plans_are_in_utc_whatever_zone_the_inputs_use() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    plan = plan_due(ONCE, Every(60), at(1).astimezone(tokyo), at(1).astimezone(tokyo))
    assert plan.run[0].tzinfo is UTC and plan.next_run_at == at(2)


def test_a_naive_now_is_rejected_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="now: .* naive"):
        plan_due(ONCE, Every(60), at(1), datetime(2024, 3, 1, 12, 5))


def test_a_schedule_that_ends_leaves_no_next_run() -> None:
    plan = plan_due(SKIP, ending_at(at(3), Every(60)), at(1), at(10))
    assert plan == Plan(run=[], missed=singles(1, 2, 3), next_run_at=None)
    assert plan.finished


# -- overlap, max_runs, auto-pause ------------------------------------------------------------

OVERLAP_TABLE: list[tuple[OverlapMode, bool, OverlapDecision]] = [
    ("forbid", False, "run"),
    ("forbid", True, "skip"),
    ("allow", False, "run"),
    ("allow", True, "run"),
    ("replace", False, "run"),
    ("replace", True, "replace"),
]


@pytest.mark.parametrize(("policy", "running", "decision"), OVERLAP_TABLE)
def test_overlap_table(policy: OverlapMode, running: bool, decision: OverlapDecision) -> None:
    assert decide_overlap(policy, running) == decision


def test_an_unknown_overlap_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="overlap"):
        decide_overlap("sometimes", True)  # type: ignore[arg-type]


FOUR_RUNS = Plan(run=[at(1), at(2), at(3), at(4)], missed=singles(0), next_run_at=at(5))


@pytest.mark.parametrize(
    ("run_count", "max_runs", "expected"),
    [
        (0, None, FOUR_RUNS),
        (0, 10, FOUR_RUNS),
        (6, 10, Plan(run=[at(1), at(2), at(3), at(4)], missed=singles(0), next_run_at=None)),
        (8, 10, Plan(run=[at(1), at(2)], missed=singles(0), next_run_at=None)),
        (10, 10, Plan(run=[], missed=[], next_run_at=None)),
        (12, 10, Plan(run=[], missed=[], next_run_at=None)),
    ],
)
def test_limit_runs_never_lets_run_count_pass_max_runs(
    run_count: int, max_runs: int | None, expected: Plan
) -> None:
    assert limit_runs(FOUR_RUNS, run_count, max_runs) == expected


@pytest.mark.parametrize(
    ("failures", "threshold", "pause"),
    [
        (0, None, False),
        (100, None, False),
        (2, 3, False),
        (3, 3, True),
        (4, 3, True),
        (5, 0, False),
    ],
)
def test_auto_pause_table(failures: int, threshold: int | None, pause: bool) -> None:
    assert should_auto_pause(failures, threshold) is pause


# -- the guarantee: every due slot ends in exactly one row ------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    mode=st.sampled_from(["skip", "once", "all"]),
    step=st.integers(min_value=1, max_value=7200),
    outage=st.integers(min_value=0, max_value=400_000),
    window=st.integers(min_value=0, max_value=7200),
    cap=st.integers(min_value=0, max_value=150),
)
def test_every_due_slot_is_run_or_missed_exactly_once(
    mode: MisfireMode, step: int, outage: int, window: int, cap: int
) -> None:
    schedule = Every(step)
    policy = MisfirePolicy(mode=mode, catchup_window=timedelta(seconds=window))
    now = T0 + timedelta(seconds=outage)
    next_run_at: datetime | None = T0
    accounted = 0
    while next_run_at is not None and next_run_at <= now:
        plan = plan_due(policy, schedule, next_run_at, now, max_missed_rows=cap)
        assert plan.run == sorted(plan.run) and all(next_run_at <= s <= now for s in plan.run)
        assert len(plan.missed) <= cap + 1
        assert all(row.exact for row in plan.missed) or outage // step >= 10_000
        accounted += len(plan.run) + sum(row.count for row in plan.missed)
        next_run_at = plan.next_run_at
    assert accounted == outage // step + 1
    assert next_run_at == T0 + timedelta(seconds=step * (outage // step + 1))
