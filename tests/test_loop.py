"""The gateway loop, one round at a time (run_once), against a real app over real HTTP.

The scheduler and the app share a fake clock, so slots, retries and misfires are decided in
milliseconds; only the HTTP calls are real.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from gateway import CronJobs
from gateway import create_app
from gateway.config import Settings
from gateway.endpoints.context import RunContext
from gateway.scheduler import loop
from gateway.scheduler.caller import Outcome
from gateway.scheduler.loop import LoopSettings
from gateway.scheduler.loop import Scheduler
from gateway.scheduler.senders import SenderPool
from gateway.scheduler.sending import Sent
from gateway.store import claims
from gateway.store import leases
from gateway.store.jobs import next_run_after
from gateway.store.models import Alert
from gateway.store.models import Gateway
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import enqueue
from tests.conftest import CRON_TOKEN
from tests.fakes import FakeClock
from tests.pids import ended as pid_ended
from tests.servers import serving

calls: list[dict[str, Any]] = []


def target_app(settings: Settings, clock: FakeClock) -> Flask:
    app = create_app(settings, clock=clock)
    cron = CronJobs(app)

    @cron.job("tick")
    def tick(ctx: RunContext) -> Any:
        calls.append({"trigger": ctx.trigger, "attempt": ctx.attempt, "slot": ctx.scheduled_for})
        return {"n": len(calls)}

    @cron.job("broken")
    def broken(ctx: RunContext) -> Any:
        raise RuntimeError("disk full")

    return app


@pytest.fixture
def app_url(settings: Settings, clock: FakeClock) -> Iterator[str]:
    calls.clear()
    with serving(target_app(settings, clock)) as url:
        yield url


@pytest.fixture
def scheduler(settings: Settings, clock: FakeClock, app_url: str) -> Iterator[Scheduler]:
    s = Scheduler(
        replace(settings, app_url=app_url),
        CRON_TOKEN,
        clock=clock,
        pacing=LoopSettings(workers=4, per_host=2, prune_after_seconds=None),
        rng=random.Random(7),
    )
    Gateway.create(
        instance=s.instance, host="h", pid=1, started_at=clock.now(), seen_at=clock.now()
    )
    yield s
    s.dispatcher.close()
    s.outcomes.close()
    for thread in (s._syncing, s._alerts):  # they must not write into the next test's database
        if thread is not None:
            thread.join(10)


def job(clock: FakeClock, name: str, **fields: Any) -> Job:
    row = Job.create(
        name=name,
        url=fields.pop("url", f"/crons/{name}"),
        schedule=fields.pop("schedule", "*/10 * * * * *"),
        created_at=clock.now(),
        updated_at=clock.now(),
        **fields,
    )
    row.next_run_at = next_run_after(row, clock.now())
    row.save()
    return row


def round_trip(scheduler: Scheduler) -> bool:
    """One round of the loop, then wait (really) for its calls to be recorded."""
    found = scheduler.run_once()
    assert scheduler.drain(10), "calls did not finish"
    if scheduler._alerts is not None:  # the next round's claims must not race its judging
        scheduler._alerts.join(10)
    return found


def runs_of(row: Job) -> list[Run]:
    return list(Run.select().where(Run.job == row).order_by(Run.id))


def test_a_slot_is_queued_a_second_ahead_and_called_when_due(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    row = job(clock, "tick")
    clock.advance(seconds=9.5)  # the slot is at :10
    assert round_trip(scheduler)  # claimed ahead
    [run] = runs_of(row)
    assert run.status == "queued" and calls == []
    assert scheduler.seconds_until_next_due() == pytest.approx(0.25)  # taken 0.25 s ahead
    clock.advance(seconds=0.25)
    round_trip(scheduler)  # its call waits for :10 (the fake clock's wait moves the time)
    [run] = runs_of(row)
    assert (run.status, run.lateness_ms, len(calls)) == ("success", 0, 1)
    assert run.dispatched_at < run.scheduled_for <= clock.now()


def test_a_run_waiting_for_its_jobs_running_one_does_not_make_the_loop_spin(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    row = job(clock, "tick", schedule=None)  # overlap forbid: a manual run waits its turn
    going = enqueue(row, "manual", clock.now())
    Run.update(status="running").where(Run.id == going.id).execute()  # the endpoint runs it
    waiting = enqueue(row, "manual", clock.now())
    assert not round_trip(scheduler)
    assert Run.get_by_id(waiting.id).status == "queued"
    assert scheduler.seconds_until_next_due() == pytest.approx(0.5)  # not 0: a busy loop
    Run.update(status="success").where(Run.id == going.id).execute()
    round_trip(scheduler)  # the next round sends it
    assert (Run.get_by_id(waiting.id).status, len(calls)) == ("success", 1)


def test_a_full_batch_of_waiting_runs_does_not_hold_up_the_runs_behind_it(
    scheduler: Scheduler, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "TAKE_BATCH", 2)
    monkeypatch.setattr(scheduler.dispatcher, "first_take", 2)
    busy = job(clock, "broken", schedule=None)
    going = enqueue(busy, "manual", clock.now())
    Run.update(status="running").where(Run.id == going.id).execute()
    waiting = [enqueue(busy, "manual", clock.now()) for _ in range(2)]  # a whole batch
    behind = enqueue(job(clock, "tick", schedule=None), "manual", clock.now())
    rounds = 0
    while scheduler.run_once():  # one wake: the loop takes again past the waiting batch
        rounds += 1
        assert rounds < 10, "the loop kept taking the same runs"
    assert scheduler.drain(10)
    assert Run.get_by_id(behind.id).status == "success"
    assert [Run.get_by_id(r.id).status for r in waiting] == ["queued", "queued"]


def test_a_gateway_that_turns_standby_after_a_full_take_does_not_spin(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler._more_due = True  # its last take was full …
    scheduler.active = False  # … and then the lease went to another gateway
    scheduler._next_housekeeping = float("inf")  # (this round keeps it standby)
    assert not scheduler.run_once()


def test_at_shutdown_a_slot_claimed_ahead_is_given_back(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    row = job(clock, "tick")
    clock.advance(seconds=9.5)
    assert round_trip(scheduler) and [r.status for r in runs_of(row)] == ["queued"]
    scheduler.shutdown()
    assert runs_of(row) == [] and calls == []
    assert Job.get_by_id(row.id).next_run_at == clock.now() + timedelta(seconds=0.5)


def test_a_batch_with_two_outcomes_of_one_job_is_stored_in_call_order(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    row = job(clock, "tick", overlap="allow", max_attempts=1)
    for _ in range(2):
        enqueue(row, "manual", clock.now())
    failed, fine = claims.take_due_runs(clock.now(), scheduler.instance, "http://127.0.0.1:1")
    batch = [
        Sent(failed, Outcome("error", "http", 500, 3, error="HTTP 500"), 0),
        Sent(fine, Outcome("success", "http", 200, 3), 0),
    ]
    scheduler._record_until_stored(batch)  # the writer thread's step
    row = Job.get_by_id(row.id)
    assert [r.status for r in runs_of(row)] == ["error", "success"]
    assert (row.last_status, row.consecutive_failures) == ("success", 0)


def test_a_due_slot_is_called_once_and_recorded(scheduler: Scheduler, clock: FakeClock) -> None:
    row = job(clock, "tick")
    assert not round_trip(scheduler)
    clock.advance(seconds=10)
    assert round_trip(scheduler)
    assert not round_trip(scheduler)
    [run] = runs_of(row)
    assert (run.status, run.http_status, run.trigger, run.caller) == (
        "success",
        200,
        "schedule",
        "GATEWAY_CRON_TOKEN",
    )
    assert run.gateway == scheduler.instance and run.lateness_ms == 0
    assert run.summary == {"n": 1} and '"status":"success"' in run.response_excerpt.replace(" ", "")
    assert calls == [{"trigger": "schedule", "attempt": 1, "slot": run.scheduled_for}]


def test_a_manual_trigger_is_sent_in_the_next_round(scheduler: Scheduler, clock: FakeClock) -> None:
    row = job(clock, "tick", schedule=None)
    enqueue(row, "manual", clock.now(), payload={"why": "test"})
    round_trip(scheduler)
    assert [(r.status, r.trigger) for r in runs_of(row)] == [("success", "manual")]


def test_a_failing_job_is_retried_with_backoff_then_gives_up(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    row = job(clock, "broken", schedule=None, max_attempts=3, backoff=10)
    enqueue(row, "manual", clock.now())
    round_trip(scheduler)
    first, retry = runs_of(row)
    assert (first.status, first.http_status, first.error) == (
        "error",
        500,
        "RuntimeError: disk full",
    )
    assert (retry.status, retry.attempt, retry.execution_id) == ("queued", 2, first.execution_id)
    assert clock.now() + timedelta(seconds=5) <= retry.due_at <= clock.now() + timedelta(seconds=10)
    clock.set(retry.due_at)
    round_trip(scheduler)
    clock.advance(seconds=60)
    round_trip(scheduler)
    assert [(r.attempt, r.status) for r in runs_of(row)] == [
        (1, "error"),
        (2, "error"),
        (3, "error"),
    ]


def test_auto_pause_after_consecutive_failures(scheduler: Scheduler, clock: FakeClock) -> None:
    row = job(clock, "broken", auto_pause_after=2)
    for _ in range(3):
        clock.advance(seconds=10)
        round_trip(scheduler)
    stored = Job.get_by_id(row.id)
    assert not stored.enabled and stored.next_run_at is None
    assert "2 failures" in stored.pause_note
    assert len(runs_of(row)) == 2


def test_a_wake_up_sent_during_a_round_is_not_lost(
    scheduler: Scheduler, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[int] = []

    def one_round() -> float:  # as the writer thread does when it queues a retry due soon
        rounds.append(1)
        if len(rounds) == 1:
            scheduler.wake.set()
        else:
            scheduler.stop()
        return 5.0

    monkeypatch.setattr(scheduler, "_round", one_round)
    started = clock.now()
    scheduler._work()
    assert len(rounds) == 2 and clock.waits == [5.0, 5.0]
    assert clock.now() == started  # neither sleep lasted: both were woken


def test_judging_starts_even_when_claiming_fails(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("a bug in claiming")

    monkeypatch.setattr(claims, "claim_due_slots", broken)
    with pytest.raises(RuntimeError):  # still raised, for _round to log
        scheduler.run_once()
    judging = scheduler._alerts  # the scheduler is stuck: alerts are what tells someone
    assert judging is not None and judging.name == "alerts"
    judging.join(10)


def test_housekeeping_judges_alerts_off_the_loop_thread(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    row = job(clock, "broken", schedule=None)
    enqueue(row, "manual", clock.now())
    round_trip(scheduler)
    first = scheduler._alerts  # judging began as the run was sent, maybe before it failed
    assert first is not None
    first.join(10)
    clock.advance(seconds=5)  # past the next housekeeping
    round_trip(scheduler)
    evaluation = scheduler._alerts
    assert evaluation is not None and evaluation.name == "alerts"
    evaluation.join(10)
    [alert] = Alert.select().where(Alert.job == row.id)
    assert (alert.kind, alert.state) == ("failure", "open")


def test_an_outcome_that_cannot_be_stored_ends_its_run_and_spares_the_others(
    scheduler: Scheduler, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peewee import DataError

    # "gone" never answers, so only the gateway can record its run (the endpoint of "tick"
    # would record its own, and the gateway's failure would only lose the HTTP facts).
    tick = job(clock, "gone", schedule=None, url="http://127.0.0.1:9/crons/gone")
    broken = job(clock, "broken", schedule=None)
    enqueue(tick, "manual", clock.now())
    enqueue(broken, "manual", clock.now())
    real = loop.record_outcome

    def refuse_tick(run_id: int, seen: Any, now: Any) -> Any:
        if run_id == runs_of(tick)[0].id:
            raise DataError("integer out of range")  # would fail on every try
        return real(run_id, seen, now)

    monkeypatch.setattr(loop, "record_outcome", refuse_tick)
    round_trip(scheduler)
    [stuck] = runs_of(tick)
    assert stuck.status == "error"
    assert stuck.error == "the gateway could not record this call's outcome (DataError)"
    [other] = runs_of(broken)
    assert (other.status, other.http_status) == ("error", 500)


class Raising:
    """A Caller with a bug: it raises (with the token in its message)."""

    def call(self, request: Any) -> Outcome:
        raise RuntimeError(f"bug while sending with {CRON_TOKEN}")

    def close(self) -> None:
        pass


def test_a_call_that_fails_inside_the_gateway_ends_its_run_not_left_dispatched(
    scheduler: Scheduler, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    row = job(clock, "buggy", schedule=None)
    enqueue(row, "manual", clock.now())
    scheduler.sender.caller = Raising()  # type: ignore[assignment]
    round_trip(scheduler)
    [run] = runs_of(row)  # one run: not retried (the call may have been made)
    assert (run.status, run.http_status, run.finished_at is not None) == ("error", None, True)
    assert run.error == "the gateway failed while making this call (RuntimeError)"
    assert "RuntimeError" in caplog.text and CRON_TOKEN not in caplog.text
    assert "in call" in caplog.text  # where it was raised, for whoever fixes it


def test_an_unreachable_target_is_an_error_with_a_clear_message(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    row = job(clock, "gone", schedule=None, url="http://127.0.0.1:9/crons/gone")
    enqueue(row, "manual", clock.now())
    round_trip(scheduler)
    [run] = runs_of(row)
    assert run.status == "error" and run.http_status is None and run.error
    assert CRON_TOKEN not in run.error


def test_on_sqlite_a_standby_gateway_waits_while_the_lease_is_held(
    scheduler: Scheduler, clock: FakeClock, settings: Settings
) -> None:
    row = job(clock, "tick")
    if not settings.database_url.startswith("sqlite"):
        # PostgreSQL gateways share the work (SKIP LOCKED): no lease keeps one waiting.
        leases.acquire("gateway:active", "someone-else", timedelta(seconds=10), clock.now())
        clock.advance(seconds=10)
        assert round_trip(scheduler) and [r.status for r in runs_of(row)] == ["success"]
        return
    leases.acquire("gateway:active", "someone-else", timedelta(seconds=10), clock.now())
    clock.advance(seconds=10)
    assert not round_trip(scheduler)
    assert runs_of(row) == [] and not scheduler.active
    clock.advance(seconds=11)  # the other gateway stopped renewing: take over
    assert round_trip(scheduler)
    assert scheduler.active and [r.status for r in runs_of(row)] == ["missed", "success"]


def test_the_gateway_reads_the_apps_jobs_at_start(scheduler: Scheduler, clock: FakeClock) -> None:
    round_trip(scheduler)
    synced = {j.name: j for j in Job.select()}
    assert set(synced) == {"tick", "broken"} and synced["tick"].source == "code"


def test_a_pause_with_an_end_time_is_lifted_by_the_gateway(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    from gateway.store.jobs import pause_job

    row = job(clock, "tick")
    pause_job("tick", clock.now(), "deploy", until=clock.now() + timedelta(seconds=15), fate="once")
    clock.advance(seconds=12)
    round_trip(scheduler)
    assert runs_of(row) == []
    clock.advance(seconds=4)  # housekeeping runs every third of the lease (10 s)
    round_trip(scheduler)
    assert Job.get_by_id(row.id).enabled
    assert [r.status for r in runs_of(row)] == ["success"]  # the once fate: one run for :10


def test_the_gateway_prunes_runs_past_retention_in_the_background(
    settings: Settings, clock: FakeClock, app_url: str
) -> None:
    import time

    pruning = Scheduler(
        replace(settings, app_url=app_url, retention_days=30),
        CRON_TOKEN,
        clock=clock,
        pacing=LoopSettings(workers=1, per_host=1, prune_after_seconds=0.0),
    )
    row = job(clock, "tick", schedule=None)
    old = enqueue(row, "manual", clock.now() - timedelta(days=40))
    Run.update(status="success").where(Run.id == old.id).execute()
    fresh = enqueue(row, "manual", clock.now() - timedelta(days=1))
    Run.update(status="success").where(Run.id == fresh.id).execute()
    pruning.run_once()
    deadline = time.monotonic() + 5
    while Run.select().where(Run.id == old.id).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r.id for r in runs_of(row)] == [fresh.id]
    pruning.dispatcher.close()


def test_a_slow_manifest_holds_up_no_claim_and_no_lease(
    settings: Settings, clock: FakeClock
) -> None:
    import threading

    from flask import request

    answer, slow = threading.Event(), threading.Event()
    app = target_app(settings, clock)

    @app.before_request
    def hold_the_manifest() -> None:
        if request.path == "/crons" and slow.is_set():
            answer.wait(10)

    calls.clear()
    with serving(app) as url:
        s = Scheduler(
            replace(settings, app_url=url),
            CRON_TOKEN,
            clock=clock,
            pacing=LoopSettings(workers=2, per_host=2, prune_after_seconds=None),
        )
        try:
            row = job(clock, "tick")
            round_trip(s)  # the start-up sync, before the first claim
            slow.set()
            # The manifest declares 'tick', made by the API here: an error, so the next sync
            # comes 5 s later, and waits on the app the whole time.
            for _ in range(40):
                clock.advance(seconds=10)
                round_trip(s)
            assert s._syncing is not None and s._syncing.is_alive()
            if settings.database_url.startswith("sqlite"):  # renewed meanwhile, by the loop
                taken, _ = leases.acquire("gateway:active", "other", s.lease, clock.now())
                assert s.active and not taken
            # A slot a round; inline, the sync would have held every round for 10 s. (On
            # PostgreSQL a claim passes over a job row locked at that instant, SKIP LOCKED, and
            # this clock makes the next round 10 s later: the alert thread's commit of late_at
            # could cost a slot now and then. Judging locked job rows once: 4 of 40 missed.)
            statuses = Counter(r.status for r in runs_of(row))
            assert set(statuses) <= {"success", "missed"} and statuses["success"] >= 38
        finally:
            answer.set()
            s.shutdown()


# -- sender processes (gateway_senders) -------------------------------------------------------


def test_with_sender_processes_a_due_run_is_called_and_recorded(
    settings: Settings, clock: FakeClock, app_url: str
) -> None:
    s = Scheduler(
        replace(settings, app_url=app_url, gateway_senders=2),
        CRON_TOKEN,
        clock=clock,
        pacing=LoopSettings(workers=4, per_host=2, prune_after_seconds=None),
    )
    try:
        assert isinstance(s.dispatcher, SenderPool) and len(s.dispatcher.pids) == 2
        pids = s.dispatcher.pids
        pool = s.dispatcher
        deadline = time.monotonic() + 30  # given runs once they have written (imports done)
        while not all(p is not None and p.heard for p in pool._processes):
            assert time.monotonic() < deadline, "the senders did not start"
            time.sleep(0.02)
        row = job(clock, "tick")
        for n in range(2):  # one after the other: the endpoint runs one `tick` at a time
            enqueue(row, "manual", clock.now(), payload={"n": n})
            assert round_trip(s)
        runs = runs_of(row)
        assert [r.status for r in runs] == ["success"] * 2, [r.error for r in runs]
        assert [r.http_status for r in runs] == [200, 200] and len(calls) == 2
        assert {r.gateway for r in runs} == {s.instance}
        assert [r.summary for r in runs] == [{"n": 1}, {"n": 2}]
    finally:
        s.shutdown()
    assert all(pid_ended(pid) for pid in pids), "shutdown stops the sender processes"


def test_runs_of_a_dead_sender_process_are_queued_again_or_abandoned(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    row = job(clock, "tick", overlap="allow", retry_abandoned=False)
    for _ in range(3):
        enqueue(row, "manual", clock.now())
    never_sent, lost, attached = claims.take_due_runs(clock.now(), scheduler.instance, "x")
    Run.update(status="running").where(Run.id == attached.run_id).execute()  # at its endpoint
    unsettled = ([never_sent.run_id], [lost.run_id, attached.run_id])
    scheduler.dispatcher.take_unsettled = lambda: unsettled  # type: ignore[method-assign]
    scheduler._settle_unsent(clock.now())
    statuses = {r.id: (r.status, r.error) for r in runs_of(row)}
    assert statuses[never_sent.run_id] == ("queued", None)  # sent in a later round
    assert statuses[lost.run_id] == ("abandoned", claims.ABANDONED_BY_SENDER)
    assert statuses[attached.run_id] == ("running", None)  # its endpoint ends it


def test_a_gateway_stopped_before_it_started_leaves_no_sender_process(
    settings: Settings, clock: FakeClock, app_url: str
) -> None:
    s = Scheduler(replace(settings, app_url=app_url, gateway_senders=1), CRON_TOKEN, clock=clock)
    assert isinstance(s.dispatcher, SenderPool)
    pids = s.dispatcher.pids
    s._install_signal_handlers = lambda: None  # type: ignore[method-assign]  # pytest's own
    s.stop()  # SIGTERM while the database was still down at start: run() returns at once
    s.run()
    assert all(pid_ended(pid) for pid in pids) and s.dispatcher.pids == []


def test_while_no_sender_is_alive_due_runs_wait_and_the_loop_sleeps(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    row = job(clock, "tick")
    enqueue(row, "manual", clock.now())
    scheduler.dispatcher.ready = False  # type: ignore[misc]  # as a SenderPool restarting
    assert not round_trip(scheduler)
    assert [r.status for r in runs_of(row)] == ["queued"] and calls == []
    assert scheduler.seconds_until_next_due() == scheduler.pacing.wake_interval  # no spin
    scheduler.dispatcher.ready = True  # type: ignore[misc]
    assert round_trip(scheduler)
    assert [r.status for r in runs_of(row)] == ["success"]
