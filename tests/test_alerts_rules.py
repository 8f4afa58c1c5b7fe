"""The pure alert rules: state changes from run history and `now` (a FakeClock), no database."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from gateway.alerts.rules import Expectation
from gateway.alerts.rules import RunFact
from gateway.alerts.rules import Verdict
from gateway.alerts.rules import judge
from gateway.alerts.rules import late_deadline
from tests.fakes import FakeClock

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
HOURLY = Expectation("report", "0 * * * *", grace=timedelta(minutes=5), since=START)


def run(status: str, at: datetime, trigger: str = "schedule", ms: int = 1000) -> RunFact:
    return RunFact(status, trigger, at, ms, "RuntimeError: no" if status == "error" else None)


class Job:
    """Applies verdicts the way the store does: open kinds kept between judgements."""

    def __init__(self, expectation: Expectation, clock: FakeClock) -> None:
        self.expectation, self.clock = expectation, clock
        self.runs: list[RunFact] = []
        self.open: set[str] = set()
        self.sent: list[str] = []

    def ran(self, status: str, **kw: object) -> Verdict:
        self.runs.append(run(status, self.clock.now(), **kw))  # type: ignore[arg-type]
        return self.judge()

    def judge(self) -> Verdict:
        successes = [r.started_at for r in self.runs if r.status == "success"]
        verdict = judge(
            self.expectation,
            self.runs[-20:],
            successes[-1] if successes else None,
            frozenset(self.open),
            self.clock.now(),
        )
        self.open |= {n.kind for n in verdict.opened}
        self.open -= set(verdict.closed)
        self.sent += [n.kind for n in (*verdict.opened, *verdict.notices)]
        return verdict


def test_a_first_run_that_fails_alerts_once_however_often_it_fails_again() -> None:
    job = Job(HOURLY, FakeClock(START))
    verdict = job.ran("error")
    assert [n.kind for n in verdict.opened] == ["failure"]
    assert "first run" in verdict.opened[0].message and "RuntimeError" in verdict.opened[0].message
    for _ in range(5):
        job.clock.advance(hours=1)
        job.ran("error")
    assert job.sent == ["failure", "late"]  # no success by 10:05 either: late, once


def test_a_failure_after_a_success_then_a_recovery() -> None:
    job = Job(HOURLY, FakeClock(START))
    assert job.ran("success") == Verdict(late_at=START + timedelta(hours=1, minutes=5))
    job.clock.advance(hours=1)
    job.ran("timeout")
    job.clock.advance(hours=1)
    verdict = job.ran("success")
    assert verdict.closed == ("failure",)
    assert [n.kind for n in verdict.notices] == ["recovery"]
    assert job.sent == ["failure", "recovery"]
    assert job.open == set()


def test_skipped_and_canceled_runs_neither_fail_nor_recover() -> None:
    job = Job(HOURLY, FakeClock(START))
    job.ran("error")
    job.clock.advance(hours=1)
    job.ran("skipped")
    job.ran("canceled")
    assert job.open == {"failure"} and job.sent == ["failure"]


def test_the_dead_mans_switch_fires_after_the_next_slot_plus_grace_then_recovers() -> None:
    clock = FakeClock(START)
    job = Job(HOURLY, clock)
    job.ran("success")  # 09:00; the 10:00 run must succeed by 10:05
    clock.advance(hours=1, minutes=4, seconds=59)
    assert job.judge().opened == ()
    clock.advance(seconds=1)
    verdict = job.judge()
    assert [n.kind for n in verdict.opened] == ["late"] and verdict.late_at is None
    assert "expected by 2026-11-23T10:00:00+00:00" in verdict.opened[0].message
    clock.advance(hours=3)
    assert job.judge().opened == ()  # still late: no second alert
    verdict = job.ran("success")
    assert verdict.closed == ("late",) and [n.kind for n in verdict.notices] == ["recovery"]
    assert job.sent == ["late", "recovery"]


def test_an_early_external_call_still_counts_for_its_slot() -> None:
    # system cron's clock runs 20 s ahead: the 10:00 call arrives at 09:59:40
    early = START + timedelta(minutes=59, seconds=40)
    assert late_deadline(HOURLY, early) == START + timedelta(hours=2, minutes=5)


def test_a_job_never_run_is_late_from_when_it_was_created() -> None:
    created = START + timedelta(minutes=30)
    job = Job(HOURLY.__class__(**{**HOURLY.__dict__, "since": created}), FakeClock(created))
    assert job.judge().late_at == START + timedelta(hours=1, minutes=5)


def test_expect_every_overrides_the_schedule_and_works_without_one() -> None:
    daily = Expectation("backup", None, expect_every=timedelta(days=1), grace=timedelta(hours=1))
    assert late_deadline(daily, START) == START + timedelta(days=1, hours=1)
    unwatched = Expectation("adhoc", None)
    assert late_deadline(unwatched, START) is None


def test_a_paused_job_is_not_late_and_its_lateness_closes_silently() -> None:
    paused = Expectation("report", "0 * * * *", watched=False, since=START)
    verdict = judge(paused, [], None, frozenset({"late"}), START + timedelta(days=2))
    assert verdict == Verdict(closed=("late",))


def test_durations_outside_the_bounds_open_once_and_close_when_back_inside() -> None:
    bounded = Expectation("sync", "*/5 * * * *", min_duration_ms=500, max_duration_ms=60_000)
    job = Job(bounded, FakeClock(START))
    assert [n.kind for n in job.ran("success", ms=10).opened] == ["too_fast"]
    job.clock.advance(minutes=5)
    assert job.ran("success", ms=20).opened == ()
    job.clock.advance(minutes=5)
    verdict = job.ran("success", ms=90_000)
    assert verdict.closed == ("too_fast",) and [n.kind for n in verdict.opened] == ["too_slow"]
    assert "90000 ms" in verdict.opened[0].message
    job.clock.advance(minutes=5)
    assert job.ran("success", ms=1000).closed == ("too_slow",)
    assert job.sent == ["too_fast", "too_slow"]  # closing a duration condition sends nothing


def test_runs_more_often_than_the_schedule_allows() -> None:
    job = Job(HOURLY, FakeClock(START))
    job.ran("success", trigger="external")
    job.clock.advance(minutes=20)
    verdict = job.ran("success", trigger="external")
    assert [n.kind for n in verdict.opened] == ["too_often"]
    job.clock.advance(minutes=5)
    job.ran("success", trigger="manual")  # an operator's run now is not pace
    assert job.open == {"too_often"}
    job.clock.set(START + timedelta(hours=1, seconds=3))
    assert job.ran("success", trigger="external").closed == ("too_often",)


def test_an_every_minute_job_a_few_seconds_early_is_on_pace() -> None:
    minutely = Expectation("tick", "* * * * *", since=START)
    job = Job(minutely, FakeClock(START + timedelta(seconds=1)))
    job.ran("success")
    job.clock.advance(seconds=58)  # 09:00:59, early for 09:01
    assert job.ran("success").opened == ()
    job.clock.advance(seconds=20)  # 09:01:19, a second run in the 09:01 slot
    assert [n.kind for n in job.ran("success").opened] == ["too_often"]


def test_a_late_start_of_a_scheduled_slot_is_not_too_often() -> None:
    """Slots 20 and 21 of an every-second job, the first sent 509 ms late: one run each."""
    from datetime import UTC
    from datetime import datetime
    from datetime import timedelta

    from gateway.alerts.rules import RunFact

    base = datetime(2026, 11, 23, 11, 28, 20, tzinfo=UTC)
    late = RunFact("success", "schedule", base + timedelta(milliseconds=509), 5, None, base)
    on_time = RunFact(
        "success",
        "schedule",
        base + timedelta(seconds=1, milliseconds=62),
        5,
        None,
        base + timedelta(seconds=1),
    )
    held: list[tuple[str, bool]] = []
    from gateway.alerts import rules

    job = rules.Expectation(name="tick", schedule="* * * * * *")
    rules._pace(job, [late, on_time], lambda kind, holds, message: held.append((kind, holds)))
    assert held == [("too_often", False)]
