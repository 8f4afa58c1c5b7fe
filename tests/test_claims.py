"""Claims on both backends with a fake clock: slots become runs once, policies decide the rest."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from gateway.scheduler.reaper import Reaper
from gateway.store import claims
from gateway.store.jobs import next_run_after
from gateway.store.models import Gateway
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import enqueue
from tests.fakes import FakeClock

APP = "http://127.0.0.1:8000"


def sweep(reaper: Reaper, clock: FakeClock) -> int:
    """Abandon what the reaper finds dead now, as the gateway's housekeeping does."""
    claims.mark_lost_gateways(clock.now(), LEASE)
    dead = reaper.dead(claims.pulses(), clock.now(), clock.monotonic())
    return claims.abandon(dead, clock.now()) if dead else 0


LEASE = timedelta(seconds=10)


def make_job(clock: FakeClock, name: str = "tick", **fields: Any) -> Job:
    job = Job.create(
        name=name,
        url=f"/crons/{name}",
        schedule=fields.pop("schedule", "* * * * * *"),
        created_at=clock.now(),
        updated_at=clock.now(),
        **fields,
    )
    job.next_run_at = next_run_after(job, clock.now())
    job.save()
    return job


def statuses(job: Job) -> list[tuple[str, str | None]]:
    rows = Run.select().where(Run.job == job).order_by(Run.scheduled_for, Run.id)
    return [
        (r.status, r.scheduled_for.strftime("%H:%M:%S") if r.scheduled_for else None) for r in rows
    ]


def test_nothing_is_claimed_before_the_slot(db: str, clock: FakeClock) -> None:
    make_job(clock)
    assert claims.claim_due_slots(clock.now()) == 0
    assert claims.next_due_at(clock.now()) == clock.now() + timedelta(seconds=1)


def test_a_due_slot_becomes_one_queued_run_and_next_run_at_moves(db: str, clock: FakeClock) -> None:
    job = make_job(clock)
    clock.advance(seconds=1)
    assert claims.claim_due_slots(clock.now()) == 1
    assert claims.claim_due_slots(clock.now()) == 0  # claimed once, whatever happens next
    assert statuses(job) == [("queued", "09:00:01")]
    job = Job.get_by_id(job.id)
    assert job.next_run_at == clock.now() + timedelta(seconds=1) and job.run_count == 1


def test_a_slot_claimed_again_from_a_stale_view_adds_no_second_run(
    db: str, clock: FakeClock
) -> None:
    job = make_job(clock)
    slot = clock.advance(seconds=1)
    assert claims.claim_due_slots(clock.now()) == 1
    queued = Run.get(Run.job == job.id)
    # A claimer that read next_run_at before the first one moved it (the unique key on
    # (job, scheduled_for, attempt) is the last line of defence): no duplicate, no error.
    Job.update(next_run_at=slot).where(Job.id == job.id).execute()
    assert claims.claim_due_slots(clock.now()) == 1
    assert [(r.id, r.execution_id) for r in Run.select()] == [(queued.id, queued.execution_id)]
    assert statuses(job) == [("queued", "09:00:01")]


AHEAD = timedelta(seconds=1)


def test_a_slot_within_the_lead_is_claimed_ahead_and_sent_only_when_due(
    db: str, clock: FakeClock
) -> None:
    job = make_job(clock, schedule="*/5 * * * * *")  # next slot 09:00:05, 5 s away
    assert claims.claim_due_slots(clock.now(), ahead=AHEAD) == 0  # beyond the lead
    assert claims.next_due_at(clock.now(), AHEAD) == clock.now() + timedelta(seconds=4)
    clock.advance(seconds=4.2)  # 0.8 s before the slot
    assert claims.claim_due_slots(clock.now(), ahead=AHEAD) == 1
    assert claims.claim_due_slots(clock.now(), ahead=AHEAD) == 0  # once
    assert statuses(job) == [("queued", "09:00:05")]
    job = Job.get_by_id(job.id)
    assert job.next_run_at.strftime("%H:%M:%S") == "09:00:10" and job.run_count == 1
    slot = clock.now() + timedelta(seconds=0.8)
    assert claims.next_due_at(clock.now(), AHEAD) == slot  # the queued run, not the job's next
    assert claims.take_due_runs(clock.now(), "gw-1", APP) == []  # not due yet
    clock.advance(seconds=0.8)
    [sent] = claims.take_due_runs(clock.now(), "gw-1", APP)
    assert sent.scheduled_for == slot and sent.due_at == slot


def test_an_overdue_slot_claimed_with_a_lead_follows_the_misfire_policy(
    db: str, clock: FakeClock
) -> None:
    job = make_job(clock, misfire="skip")
    clock.advance(seconds=90)  # 90 slots late: the lead changes nothing about them
    while claims.claim_due_slots(clock.now(), ahead=AHEAD):  # as the loop does
        pass
    rows = statuses(job)
    assert rows[:2] == [("missed", "09:00:01"), ("missed", "09:00:02")]
    assert [r for r in rows if r[0] == "queued"] == [("queued", "09:01:30"), ("queued", "09:01:31")]


def test_slots_claimed_ahead_are_given_back_and_claimed_again(db: str, clock: FakeClock) -> None:
    job = make_job(clock, schedule="*/5 * * * * *")
    paused = make_job(clock, "paused", schedule="*/5 * * * * *")
    clock.advance(seconds=4.5)
    assert claims.claim_due_slots(clock.now(), ahead=AHEAD) == 2
    enqueue(job, "retry", clock.now(), due_at=clock.now() + timedelta(seconds=30))  # stays
    Job.update(enabled=False, next_run_at=None).where(Job.id == paused.id).execute()
    assert claims.release_ahead(clock.now()) == 2
    assert [s for s, _ in statuses(job)] == ["queued"]  # the retry only
    job, paused = Job.get_by_id(job.id), Job.get_by_id(paused.id)
    assert job.next_run_at.strftime("%H:%M:%S") == "09:00:05" and job.run_count == 0
    assert (paused.next_run_at, paused.run_count, statuses(paused)) == (None, 0, [])
    assert claims.claim_due_slots(clock.now(), ahead=AHEAD) == 1
    assert ("queued", "09:00:05") in statuses(job)
    clock.advance(seconds=0.5)
    assert claims.release_ahead(clock.now()) == 0  # due now: it is sent, not given back


def test_a_slot_given_back_counts_for_a_pause_with_a_fate_not_for_an_old_schedule(
    db: str, clock: FakeClock
) -> None:
    fated = make_job(clock, "fated", schedule="*/5 * * * * *")
    edited = make_job(clock, "edited", schedule="*/5 * * * * *")
    clock.advance(seconds=4.5)
    assert claims.claim_due_slots(clock.now(), ahead=AHEAD) == 2
    later = clock.now() + timedelta(seconds=5.5)  # 09:00:10
    Job.update(enabled=False, pause_fate="missed").where(Job.id == fated.id).execute()
    Job.update(schedule="*/10 * * * * *", next_run_at=later).where(Job.id == edited.id).execute()
    assert claims.release_ahead(clock.now()) == 2
    fated, edited = Job.get_by_id(fated.id), Job.get_by_id(edited.id)
    assert fated.next_run_at.strftime("%H:%M:%S") == "09:00:05"  # resume accounts for it
    assert edited.next_run_at == later and edited.run_count == 0  # 09:00:05 is not a slot now


def test_a_queued_run_is_dispatched_once_with_what_the_call_needs(
    db: str, clock: FakeClock
) -> None:
    make_job(clock, headers={"Accept": "application/json"}, payload={"x": 1}, timeout=30)
    clock.advance(seconds=1)
    claims.claim_due_slots(clock.now())
    clock.advance(milliseconds=40)
    [sent] = claims.take_due_runs(clock.now(), "gw-1", APP)
    assert claims.take_due_runs(clock.now(), "gw-2", APP) == []
    assert (sent.url, sent.method, sent.headers, sent.payload, sent.timeout_s) == (
        f"{APP}/crons/tick",
        "POST",
        {"Accept": "application/json"},
        {"x": 1},
        30.0,
    )
    run = Run.get_by_id(sent.run_id)
    assert (run.status, run.gateway, run.dispatched_at) == ("dispatched", "gw-1", clock.now())
    assert sent.due_at == run.scheduled_for  # lateness is measured when the request leaves


def test_after_an_outage_once_runs_the_newest_slot_and_records_the_rest_missed(
    db: str, clock: FakeClock
) -> None:
    job = make_job(clock, schedule="*/10 * * * * *", misfire="once")
    clock.advance(seconds=35)
    claims.claim_due_slots(clock.now())
    assert statuses(job) == [
        ("missed", "09:00:10"),
        ("missed", "09:00:20"),
        ("queued", "09:00:30"),
    ]
    # Missed and queued rows go in one insert: the queued one must still be due.
    assert [d.scheduled_for for d in claims.take_due_runs(clock.now(), "gw", APP)] == [
        datetime(2026, 11, 23, 9, 0, 30, tzinfo=UTC)
    ]


def test_skip_records_every_late_slot_missed(db: str, clock: FakeClock) -> None:
    job = make_job(clock, schedule="*/10 * * * * *", misfire="skip")
    clock.advance(seconds=38)
    claims.claim_due_slots(clock.now())
    assert [s for s, _ in statuses(job)] == ["missed", "missed", "missed"]
    assert Job.get_by_id(job.id).next_run_at == datetime(2026, 11, 23, 9, 0, 40, tzinfo=UTC)


def test_a_long_outage_is_folded_into_one_counted_row(db: str, clock: FakeClock) -> None:
    job = make_job(clock, misfire="skip")
    clock.advance(hours=2)
    claims.claim_due_slots(clock.now())
    rows = list(Run.select().where(Run.job == job))
    missed = [r for r in rows if r.status == "missed"]
    assert len(missed) == 101  # 100 rows of one slot, then one row for all the others
    assert sum(r.missed_count for r in missed) == 7199
    assert [r.scheduled_for for r in rows if r.status == "queued"] == [clock.now()]  # on time


def two_slots_under_forbid(clock: FakeClock, first_answered: bool) -> Job:
    """Send a forbid job's first slot, then take its second while the first is dispatched."""
    job = make_job(clock, overlap="forbid")
    clock.advance(seconds=1)
    claims.claim_due_slots(clock.now())
    [first] = claims.take_due_runs(clock.now(), "gw", APP)
    clock.advance(seconds=1)
    claims.claim_due_slots(clock.now())
    answered = {first.run_id} if first_answered else set()
    claims.take_due_runs(clock.now(), "gw", APP, answered=answered)
    return job


def test_forbid_skips_an_on_time_slot_while_the_previous_run_goes_on(
    db: str, clock: FakeClock
) -> None:
    job = two_slots_under_forbid(clock, first_answered=False)
    assert statuses(job) == [("dispatched", "09:00:01"), ("skipped", "09:00:02")]


def test_a_run_whose_call_ended_but_is_not_stored_yet_does_not_block_the_next_slot(
    db: str, clock: FakeClock
) -> None:
    job = two_slots_under_forbid(clock, first_answered=True)  # its outcome waits for the writer
    assert statuses(job) == [("dispatched", "09:00:01"), ("dispatched", "09:00:02")]


def test_replace_cancels_the_running_one(db: str, clock: FakeClock) -> None:
    job = make_job(clock, overlap="replace")
    clock.advance(seconds=1)
    claims.claim_due_slots(clock.now())
    [first] = claims.take_due_runs(clock.now(), "gw", APP)
    clock.advance(seconds=1)
    claims.claim_due_slots(clock.now())
    assert len(claims.take_due_runs(clock.now(), "gw", APP)) == 1
    old = Run.get_by_id(first.run_id)
    assert old.status == "canceled" and old.cancel_requested_at == clock.now()
    assert statuses(job)[1] == ("dispatched", "09:00:02")


def test_in_one_batch_a_replaced_run_is_canceled_before_it_is_ever_sent(
    db: str, clock: FakeClock
) -> None:
    job = make_job(clock, overlap="replace", misfire="all")
    clock.advance(seconds=3)  # three slots due together: the batch decides them in order
    claims.claim_due_slots(clock.now())
    [sent] = claims.take_due_runs(clock.now(), "gw", APP)
    assert Run.get_by_id(sent.run_id).scheduled_for == clock.now()
    assert statuses(job) == [
        ("canceled", "09:00:01"),
        ("canceled", "09:00:02"),
        ("dispatched", "09:00:03"),
    ]


def test_runs_due_soon_are_taken_ahead_unless_their_job_has_a_run_going(
    db: str, clock: FakeClock
) -> None:
    make_job(clock, "free")
    busy = make_job(clock, "busy")
    going = enqueue(busy, "manual", clock.now())
    claims.take_due_runs(clock.now(), "gw", APP)  # busy's manual run is going (forbid)
    clock.advance(seconds=0.8)
    claims.claim_due_slots(clock.now(), ahead=timedelta(seconds=1))  # the slots at :01
    ahead = claims.take_due_runs(
        clock.now(), "gw", APP, due_by=clock.now() + timedelta(seconds=0.25)
    )
    assert [(d.job, d.due_at) for d in ahead] == [("free", clock.now() + timedelta(seconds=0.2))]
    slot = Run.select().where((Run.job == busy) & (Run.trigger == "schedule"))
    assert slot.get().status == "queued"  # not skipped ahead of its time
    taken_by, quarter = clock.now() + timedelta(seconds=0.25), timedelta(seconds=0.25)
    # The loop wakes for it at its time, not a quarter of a second ahead again and again.
    assert claims.next_due_at(clock.now(), timedelta(0), quarter, taken_by) == slot.get().due_at
    Run.update(status="success").where(Run.id == going.id).execute()  # it ends in time
    clock.advance(seconds=0.2)
    [sent] = claims.take_due_runs(clock.now(), "gw", APP)
    assert (sent.job, sent.run_id, slot.get().status) == ("busy", slot.get().id, "dispatched")


def test_a_full_batch_of_waiting_runs_is_passed_over_by_the_next_take(
    db: str, clock: FakeClock
) -> None:
    busy, free = make_job(clock, "busy", schedule=None), make_job(clock, "free", schedule=None)
    enqueue(busy, "manual", clock.now())
    claims.take_due_runs(clock.now(), "gw", APP)  # busy has a run going (forbid)
    waiting = [enqueue(busy, "manual", clock.now()).id for _ in range(2)]
    behind = enqueue(free, "manual", clock.now())
    first = claims.take_due_batch(clock.now(), "gw", APP, limit=2)
    assert (first.dispatches, first.full) == ([], True)  # take again, after the last it read
    assert first.last == (clock.now(), waiting[-1])
    second = claims.take_due_batch(clock.now(), "gw", APP, limit=2, after=first.last)
    assert ([d.run_id for d in second.dispatches], second.full) == ([behind.id], False)
    assert [Run.get_by_id(i).status for i in waiting] == ["queued", "queued"]


def test_a_burst_of_due_runs_is_dispatched_together(db: str, clock: FakeClock) -> None:
    jobs = [make_job(clock, f"job{i:03d}") for i in range(150)]
    clock.advance(seconds=1)
    assert claims.claim_due_slots(clock.now()) == 150
    sent = claims.take_due_runs(clock.now(), "gw", APP)
    assert sorted(d.job for d in sent) == sorted(j.name for j in jobs)
    rows = Run.select().where(Run.status == "dispatched")
    assert {(r.gateway, r.dispatched_at) for r in rows} == {("gw", clock.now())}
    assert claims.take_due_runs(clock.now(), "gw", APP) == []


def test_a_manual_run_waits_for_the_running_one_under_forbid(db: str, clock: FakeClock) -> None:
    job = make_job(clock, schedule=None)
    first = enqueue(job, "manual", clock.now())
    claims.take_due_runs(clock.now(), "gw", APP)
    second = enqueue(job, "manual", clock.now())
    assert claims.take_due_runs(clock.now(), "gw", APP) == []
    assert Run.get_by_id(second.id).status == "queued"
    Run.update(status="success").where(Run.id == first.id).execute()
    assert [d.run_id for d in claims.take_due_runs(clock.now(), "gw", APP)] == [second.id]


def test_a_queued_slot_that_waited_past_the_window_is_missed(db: str, clock: FakeClock) -> None:
    job = make_job(clock, catchup_window=60)
    clock.advance(seconds=1)
    claims.claim_due_slots(clock.now())  # claimed, then the gateway died before sending it
    clock.advance(minutes=5)
    assert claims.take_due_runs(clock.now(), "gw-2", APP) == []
    assert statuses(job)[0] == ("missed", "09:00:01")


def test_max_runs_stops_the_job(db: str, clock: FakeClock) -> None:
    job = make_job(clock, max_runs=2)
    for _ in range(4):
        clock.advance(seconds=1)
        claims.claim_due_slots(clock.now())
    assert [s for s, _ in statuses(job)] == ["queued", "queued"]
    assert Job.get_by_id(job.id).next_run_at is None


def test_runs_of_dead_gateways_and_silent_workers_are_abandoned(db: str, clock: FakeClock) -> None:
    job = make_job(clock, schedule=None, retry_abandoned=True, max_attempts=2)
    other = make_job(clock, name="other", schedule=None)
    Gateway.create(instance="dead", host="h", pid=1, started_at=clock.now(), seen_at=clock.now())
    Gateway.create(instance="alive", host="h", pid=2, started_at=clock.now(), seen_at=clock.now())
    by_dead = enqueue(job, "manual", clock.now())
    by_alive = enqueue(other, "manual", clock.now())
    claims.take_due_runs(clock.now(), "dead", APP)
    Run.update(gateway="alive").where(Run.id == by_alive.id).execute()
    clock.advance(seconds=11)
    Gateway.update(seen_at=clock.now()).where(Gateway.instance == "alive").execute()
    reaper = Reaper(LEASE, LEASE)
    assert sweep(reaper, clock) == 1
    assert Run.get_by_id(by_dead.id).status == "abandoned"
    assert Run.get_by_id(by_alive.id).status == "dispatched"
    retry = Run.get((Run.execution_id == by_dead.execution_id) & (Run.attempt == 2))
    assert (retry.status, retry.trigger) == ("queued", "retry")
    Run.update(status="running", heartbeat_at=clock.now()).where(Run.id == by_alive.id).execute()
    clock.advance(seconds=11)
    Gateway.update(seen_at=clock.now()).execute()
    assert sweep(reaper, clock) == 1
    assert Run.get_by_id(by_alive.id).status == "abandoned"


def test_next_due_at_sees_queued_runs_and_ignores_paused_jobs(db: str, clock: FakeClock) -> None:
    job = make_job(clock, schedule="0 12 * * *")
    assert claims.next_due_at(clock.now()) == datetime(2026, 11, 23, 12, tzinfo=UTC)
    Job.update(enabled=False).where(Job.id == job.id).execute()
    assert claims.next_due_at(clock.now()) is None
    enqueue(job, "manual", clock.now(), due_at=clock.now() + timedelta(seconds=3))
    assert claims.next_due_at(clock.now()) == clock.now() + timedelta(seconds=3)


def _walk(clock: FakeClock, until: datetime, step: timedelta) -> None:
    """Advance the clock to `until`, claiming and dispatching at every step, like the loop."""
    while clock.now() < until:
        clock.advance(seconds=step.total_seconds())
        claims.claim_due_slots(clock.now())
        for sent in claims.take_due_runs(clock.now(), "gw", APP):
            Run.update(status="success").where(Run.id == sent.run_id).execute()


def test_on_the_day_clocks_go_back_a_fixed_time_job_runs_once(db: str, clock: FakeClock) -> None:
    clock.set(datetime(2026, 10, 24, 22, 0, tzinfo=UTC))  # 00:00 in Berlin, summer time
    job = make_job(clock, name="nightly", schedule="30 2 * * *", tz="Europe/Berlin")
    hourly = make_job(clock, name="hourly", schedule="0 * * * *", tz="Europe/Berlin")
    _walk(clock, datetime(2026, 10, 25, 4, 0, tzinfo=UTC), timedelta(minutes=5))
    assert [r.scheduled_for for r in Run.select().where(Run.job == job)] == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30+02:00, the first pass only
    ]
    # A real-time job sees the repeated hour twice: local 01:00, 02:00 (+02), 02:00 (+01),
    # 03:00, 04:00, 05:00 are UTC 23, 0, 1, 2, 3, 4: every real hour once, none skipped.
    assert [r.scheduled_for.hour for r in Run.select().where(Run.job == hourly)] == [
        23,
        0,
        1,
        2,
        3,
        4,
    ]
    assert all(r.status == "success" for r in Run.select())


def test_on_the_day_clocks_go_forward_a_skipped_time_runs_at_the_jump(
    db: str, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 3, 28, 23, 0, tzinfo=UTC))  # 00:00 in Berlin, winter time
    job = make_job(clock, name="nightly", schedule="30 2 * * *", tz="Europe/Berlin")
    _walk(clock, datetime(2026, 3, 29, 3, 0, tzinfo=UTC), timedelta(minutes=5))
    [run] = Run.select().where(Run.job == job)
    assert run.scheduled_for == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00+02:00
    assert run.status == "success"


def test_a_slot_left_queued_by_a_dead_gateway_yields_to_the_newest_under_once(
    db: str, clock: FakeClock
) -> None:
    job = make_job(clock, schedule="*/10 * * * * *", misfire="once")
    clock.advance(seconds=10)
    claims.claim_due_slots(clock.now())  # :10 claimed, then its gateway died
    clock.advance(seconds=25)  # :20 and :30 come due while nobody runs
    claims.claim_due_slots(clock.now())
    sent = claims.take_due_runs(clock.now(), "gw-2", APP)
    assert [d.scheduled_for.second for d in sent] == [30]  # nothing is skipped as overlapping
    assert statuses(job) == [
        ("missed", "09:00:10"),
        ("missed", "09:00:20"),
        ("dispatched", "09:00:30"),
    ]


def test_a_late_queued_slot_is_missed_under_skip(db: str, clock: FakeClock) -> None:
    job = make_job(clock, schedule="*/10 * * * * *", misfire="skip")
    clock.advance(seconds=10)
    claims.claim_due_slots(clock.now())
    clock.advance(seconds=7)
    assert claims.take_due_runs(clock.now(), "gw", APP) == []
    assert statuses(job) == [("missed", "09:00:10")]


def test_runs_of_a_gateway_judged_dead_are_abandoned_at_once(db: str, clock: FakeClock) -> None:
    job = make_job(clock, schedule=None)
    Gateway.create(
        instance="gw", host="h", pid=1, started_at=clock.now(), seen_at=clock.now(), role="active"
    )
    clock.advance(seconds=9)
    run = enqueue(job, "manual", clock.now())
    claims.take_due_runs(clock.now(), "gw", APP)  # dispatched 1 s before the gateway is dead
    clock.advance(seconds=2)
    assert sweep(Reaper(LEASE, LEASE), clock) == 1
    assert Run.get_by_id(run.id).status == "abandoned"
    assert Gateway.get_by_id("gw").role == "lost"


def test_a_watch_only_job_is_never_claimed(db: str, clock: FakeClock) -> None:
    job = make_job(clock, watch_only=True)
    clock.advance(seconds=5)
    assert claims.claim_due_slots(clock.now()) == 0
    assert claims.next_due_at(clock.now()) is None and statuses(job) == []


def test_a_wall_clock_step_does_not_kill_a_run_that_beats(db: str, clock: FakeClock) -> None:
    job = make_job(clock, schedule=None, retry_abandoned=True, max_attempts=2)
    run = enqueue(job, "manual", clock.now())
    claims.take_due_runs(clock.now(), "gw", APP)
    Run.update(status="running", heartbeat_at=clock.now()).where(Run.id == run.id).execute()
    reaper = Reaper(LEASE, LEASE)
    assert sweep(reaper, clock) == 0
    clock.set(clock.now() + timedelta(hours=1))  # stepped forward; monotonic time is not
    assert sweep(reaper, clock) == 0
    clock.set(clock.now() - timedelta(hours=2))  # and back
    assert sweep(reaper, clock) == 0
    assert Run.get_by_id(run.id).status == "running"
    clock.advance(seconds=11)  # then the worker really stops beating
    assert sweep(reaper, clock) == 1
    assert Run.get_by_id(run.id).status == "abandoned"


def test_a_job_another_transaction_references_is_still_claimed(db: str, clock: FakeClock) -> None:
    """Inserting a run or an alert share-locks the job row it references (PostgreSQL's
    FOR KEY SHARE); a claim must not pass that job over (SKIP LOCKED) for it."""
    import sqlite3
    import threading

    import psycopg2

    job = make_job(clock)
    clock.advance(seconds=1)
    if db.startswith("sqlite"):  # one writer at a time: the claim waits for it, then claims
        path = db.removeprefix("sqlite:///")
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        commit = threading.Timer(0.3, lambda: other.execute("COMMIT"))
        commit.start()
        try:
            assert claims.claim_due_slots(clock.now()) == 1
        finally:
            commit.join()
            other.close()
    else:
        other = psycopg2.connect(db)
        try:
            with other.cursor() as cur:  # what a run's INSERT takes on its job, till commit
                cur.execute("SELECT 1 FROM job WHERE id = %s FOR KEY SHARE", (job.id,))
            assert claims.claim_due_slots(clock.now()) == 1
        finally:
            other.rollback()
            other.close()
    assert statuses(job) == [("queued", "09:00:01")]
