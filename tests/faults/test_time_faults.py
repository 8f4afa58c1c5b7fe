"""Time faults with a fake clock (no processes): the wall clock steps while monotonic time goes on.

Rounds are what the gateway's loop does (claims.claim_due_slots, claims.take_due_runs, the
endpoint ending the run, the reaper), on both backends. FakeClock.set steps the wall clock
without moving the monotonic clock, as NTP or an operator stepping the clock would.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest

from gateway.scheduler.reaper import Reaper
from gateway.store import claims
from gateway.store import gateways
from gateway.store import runs
from gateway.store.jobs import next_run_after
from gateway.store.models import Job
from gateway.store.models import Run
from tests.e2e.gateway_procs import table
from tests.fakes import FakeClock
from tests.faults.conftest import coverage
from tests.faults.report import record

pytestmark = pytest.mark.faults

APP = "http://127.0.0.1:8000"
GW = "gw-time"
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
LEASE = timedelta(seconds=3)  # gateway_lease_seconds and lease_seconds of the fault suite


def make_job(clock: FakeClock, name: str = "tick", **fields: Any) -> Job:
    job = Job.create(
        name=name,
        url=f"/crons/{name}",
        schedule="* * * * * *",
        created_at=clock.now(),
        updated_at=clock.now(),
        **fields,
    )
    job.next_run_at = next_run_after(job, clock.now())
    job.save()
    return job


def sweep(reaper: Reaper, clock: FakeClock) -> int:
    """The gateway's reaping step: abandon the runs whose pulse stood still for the lease."""
    dead = reaper.dead(claims.pulses(), clock.now(), clock.monotonic())
    return claims.abandon(dead, clock.now()) if dead else 0


def round_(clock: FakeClock, reaper: Reaper | None = None) -> tuple[int, int]:
    """One gateway round: claim, dispatch, and the endpoint answering at once; (claimed, sent)."""
    now = clock.now()
    gateways.beat(GW, now, "active")
    sweep(reaper or Reaper(LEASE, LEASE), clock)
    claimed = claims.claim_due_slots(now)
    sent = claims.take_due_runs(now, GW, APP)
    for dispatch in sent:
        runs.finish(Run.get_by_id(dispatch.run_id), "success", now, duration_ms=1)
    return claimed, len(sent)


def rows_of(job: Job) -> list[Run]:
    return list(Run.select().where(Run.job == job).order_by(Run.scheduled_for, Run.attempt))


def fired_twice(rows: list[Run]) -> list[tuple[datetime, int]]:
    keys = Counter((r.scheduled_for, r.attempt) for r in rows if r.status != "missed")
    successes = Counter(r.scheduled_for for r in rows if r.status == "success")
    return [k for k, n in keys.items() if n > 1] + [(s, 0) for s, n in successes.items() if n > 1]


@pytest.fixture
def registered(db: str, clock: FakeClock) -> str:
    """This gateway's row; returns the backend's name (for the figures)."""
    gateways.register(GW, "host", 1, clock.now(), "active")
    return "sqlite" if db.startswith("sqlite") else "postgres"


def test_wall_clock_steps_forward_one_hour(registered: str, clock: FakeClock) -> None:
    job = make_job(clock)
    first = job.next_run_at
    for _ in range(5):
        clock.advance(seconds=1)
        round_(clock)
    before = clock.now()
    clock.set(before + HOUR)  # NTP steps the clock forward between two rounds
    claimed, sent = round_(clock)
    for _ in range(5):
        clock.advance(seconds=1)
        round_(clock)
    rows = rows_of(job)
    cover = coverage(rows, first, clock.now())
    statuses = Counter(r.status for r in rows)
    missed_seconds = sum(r.missed_count or 1 for r in rows if r.status == "missed")
    shown = table([r for r in rows if r.status != "missed"][:20])
    record(
        f"time ({registered}): wall clock +1 h between rounds",
        expected_slots=len(cover.expected),
        fired_twice=len(fired_twice(rows)),
        silent_holes=len(cover.holes),
        missed_rows=statuses["missed"],
        missed_slots=missed_seconds,
        runs_after_step=sent,
    )
    assert not fired_twice(rows), f"a slot fired twice\n{shown}"
    assert not cover.holes, f"{len(cover.holes)} seconds with no row, first {cover.holes[:3]}"
    assert not cover.twice, f"seconds with two rows: {cover.twice[:5]}"
    # misfire once (the default): one run stands for the hour, the rest is recorded missed
    assert (claimed, sent) == (1, 1)
    assert statuses["success"] == 5 + 1 + 5 and missed_seconds == 3600 - 1
    assert statuses["missed"] <= 101, "beyond 100 missed rows per outage they are folded"


def test_wall_clock_steps_back_one_hour(registered: str, clock: FakeClock) -> None:
    job = make_job(clock)
    first = job.next_run_at
    for _ in range(5):
        clock.advance(seconds=1)
        round_(clock)
    top = clock.now()
    fired = len(rows_of(job))
    clock.set(top - HOUR)  # the clock steps back: the next hour of wall time comes again
    replayed = [round_(clock)]
    for _ in range(10):
        clock.advance(seconds=1)
        replayed.append(round_(clock))
    again = rows_of(job)
    assert len(again) == fired, f"rows claimed while the clock was back\n{table(again)}"
    # ... and when the wall clock reaches the last fired slot again, scheduling goes on.
    clock.set(top)
    for _ in range(5):
        clock.advance(seconds=1)
        round_(clock)
    rows = rows_of(job)
    cover = coverage(rows, first, clock.now())
    record(
        f"time ({registered}): wall clock -1 h between rounds",
        slots_claimed_while_back=sum(c for c, _ in replayed),
        fired_twice=len(fired_twice(rows)),
        silent_holes=len(cover.holes),
        runs=len(rows),
    )
    assert sum(c for c, _ in replayed) == 0, "slots already fired were claimed again"
    assert not fired_twice(rows), f"a slot fired twice\n{table(rows)}"
    assert not cover.holes and not cover.twice, table(rows)
    assert [r.status for r in rows] == ["success"] * 10, table(rows)


def test_a_queued_slot_is_not_lost_when_the_clock_steps_back(
    registered: str, clock: FakeClock
) -> None:
    """Claimed (queued) before the step, sent after: once, on its own slot, never missed."""
    job = make_job(clock)
    clock.advance(seconds=1)
    assert claims.claim_due_slots(clock.now()) == 1
    top = clock.now()
    clock.set(top - HOUR)
    for _ in range(3):
        round_(clock)
        clock.advance(seconds=1)
    clock.set(top + 0.2 * SECOND)
    round_(clock)
    rows = rows_of(job)
    assert [(r.status, r.scheduled_for) for r in rows] == [("success", top)], table(rows)


def test_a_step_forward_does_not_run_a_live_slot_a_second_time(
    registered: str, clock: FakeClock
) -> None:
    """A run whose worker beat 0.5 s ago (monotonic) is alive, whatever the wall clock says.

    The job opts in to `retry_abandoned`, so a run wrongly judged dead is sent again while it
    still runs: the slot's function would run twice at once.
    """
    job = make_job(clock, retry_abandoned=True, max_attempts=3)
    clock.advance(seconds=1)
    claims.claim_due_slots(clock.now())
    [sent] = claims.take_due_runs(clock.now(), GW, APP)
    origin = runs.Origin("schedule", sent.execution_id, 1, sent.scheduled_for)
    started = runs.start_run(job, origin, "cron", None, clock.now())  # the endpoint attaches
    Job.update(enabled=False, next_run_at=None).where(Job.id == job.id).execute()  # one slot
    reaper = Reaper(LEASE, LEASE)  # the gateway watches the run's pulse
    gateways.beat(GW, clock.now(), "active")
    sweep(reaper, clock)
    clock.advance(seconds=0.5)
    runs.heartbeat(started.id, clock.now(), None, None)  # the worker's heartbeat: alive
    clock.set(clock.now() + HOUR)  # the host's clock is stepped forward between two beats
    now = clock.now()
    gateways.beat(GW, now, "active")
    reaped = sweep(reaper, clock)
    resent = claims.take_due_runs(now, GW, APP)
    rows = rows_of(job)
    record(
        f"time ({registered}): wall clock +1 h during a run (retry_abandoned)",
        live_runs_reaped=reaped,
        second_attempt_sent_while_first_runs=len(resent),
    )
    assert reaped == 0 and not resent, (
        "BUG: the wall clock stepped forward 1 h between two heartbeats of a live run (last "
        "beat 0.5 s ago in monotonic time); the reaper judged it by wall-clock timestamps "
        "(Run.heartbeat_at < now - run_lease), marked it abandoned and, as the job sets "
        "retry_abandoned, queued attempt 2, which take_due_runs sent while attempt 1 still "
        f"runs: the slot's function runs twice at once\n{table(rows)}"
    )
