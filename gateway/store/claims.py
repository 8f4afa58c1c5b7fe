"""Claims: due slots become queued runs, queued runs are handed to one gateway, the dead are reaped.

Every function is one short transaction (BEGIN IMMEDIATE on SQLite, FOR UPDATE SKIP LOCKED on
PostgreSQL) and makes no HTTP call; `now` is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import TypeVar
from typing import cast

from peewee import JOIN
from peewee import Expression
from peewee import Model
from peewee import ModelSelect

from gateway.errors import InvalidSchedule
from gateway.schedule import Schedule
from gateway.schedule import cached_schedule
from gateway.schedule import remembered_next_times
from gateway.scheduler.planner import Plan
from gateway.scheduler.planner import decide_overlap
from gateway.scheduler.planner import limit_runs
from gateway.scheduler.planner import plan_due
from gateway.scheduler.policy import MisfireMode
from gateway.scheduler.policy import MisfirePolicy
from gateway.scheduler.policy import OverlapMode
from gateway.store.bulk import in_list
from gateway.store.bulk import insert_rows
from gateway.store.db import is_sqlite
from gateway.store.db import write_transaction
from gateway.store.models import Gateway
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.outcomes import RUN_DECIDING
from gateway.store.outcomes import queue_retry
from gateway.store.runs import ABANDONED_BY_WORKER
from gateway.store.runs import finish
from gateway.store.runs import new_execution_id

logger = logging.getLogger("gateway.claims")

ABANDONED_BY_GATEWAY = "the gateway that sent this run stopped before recording its end"
ABANDONED_BY_SENDER = "the gateway's sender process died during this call (it may have been made)"


@dataclass(frozen=True)
class Dispatch:
    """A run handed to this gateway to send: everything the HTTP call needs, no ORM objects."""

    run_id: int
    execution_id: str
    attempt: int
    trigger: str
    scheduled_for: datetime | None
    job: str
    url: str
    method: str
    headers: dict[str, str]
    payload: Any
    timeout_s: float
    signed: bool = True  # send X-Cron-Signature (when a signing secret is configured)
    due_at: datetime | None = None  # a run without a slot is late from here


M = TypeVar("M", bound=Model)


# The row lock a claim or a take holds on PostgreSQL: FOR NO KEY UPDATE (what its UPDATE takes
# anyway) excludes other gateways' claims, but not the key-share lock that inserting a row
# referencing a job takes (a run, an alert). Under FOR UPDATE, SKIP LOCKED passed over every
# job some other transaction was inserting a run or an alert for. (peewee takes the clause as
# a string; its stubs say bool.)
_ROW_LOCK = "FOR NO KEY UPDATE"


def _locked(query: ModelSelect[M]) -> ModelSelect[M]:
    """Return `query` locking its rows against other gateways (PostgreSQL), skipping locked ones."""
    if is_sqlite():
        return query
    return query.for_update(_ROW_LOCK, skip_locked=True)  # type: ignore[arg-type]  # str is fine


def schedule_of(expr: str | None, tz: str, name: str) -> Schedule:
    """Return the (immutable, thread-safe) Schedule for a job; parsed once per process."""
    if expr is None:
        raise InvalidSchedule("schedule: the job has none", field="schedule")
    return cached_schedule(expr, tz, name)


def misfire_policy(job: Job) -> MisfirePolicy:
    return MisfirePolicy(
        mode=cast(MisfireMode, job.misfire), catchup_window=timedelta(seconds=job.catchup_window)
    )


def claim_due_slots(now: datetime, *, ahead: timedelta = timedelta(0), limit: int = 200) -> int:
    """Plan every job whose next slot is due, or comes within `ahead`: insert its queued and
    missed runs and advance `next_run_at`, in one transaction. Return how many jobs were
    handled (0: nothing due).

    Claiming ahead takes the database work off the due moment: shortly before the slot, the
    loop only marks the queued runs dispatched and hands them out (`take_due_runs`). A slot
    claimed ahead is on time by definition (it is planned at its own time); it is a queued
    run like any other, so a crash while it is queued loses nothing (another gateway, or this
    one restarted, sends it). Once taken, in the last 0.25 s, it is *dispatched*, and a crash
    of its gateway then abandons it like a call in flight.
    """
    due = (
        Job.enabled
        & ~Job.watch_only  # watched for alerts only: someone else calls it
        & Job.deleted_at.is_null()
        & Job.orphaned_at.is_null()
        & (Job.next_run_at <= now + ahead)
    )
    if not Job.select(Job.id).where(due).exists():  # a probe outside the write lock
        return 0
    with write_transaction():
        query = Job.select(*_CLAIMED_JOB).where(due).order_by(Job.next_run_at).limit(limit)
        jobs = list(_locked(query))
        rows: list[dict[str, Any]] = []
        # Jobs advanced alike (a burst of same-second jobs) are moved by one UPDATE.
        advances: dict[tuple[datetime | None, int], list[int]] = {}
        for job in jobs:
            plan = _plan_job(job, now)
            if plan is not None:
                rows += plan_rows(job, plan, now)
                advances.setdefault((plan.next_run_at, len(plan.run)), []).append(job.id)
        _insert_runs(rows)
        for (next_run_at, runs), ids in advances.items():
            Job.update(next_run_at=next_run_at, run_count=Job.run_count + runs).where(
                in_list(Job.id, ids)
            ).execute()
    return len(jobs)


# What claiming reads of a job (`_plan_job`, `plan_rows`), not all 49 columns: a burst of
# 1,000 jobs builds 1,000 models (measured in process: claimed in 75 ms instead of 94).
_CLAIMED_JOB = (
    Job.id,
    Job.name,
    Job.schedule,
    Job.tz,
    Job.next_run_at,
    Job.misfire,
    Job.catchup_window,
    Job.run_count,
    Job.max_runs,
    Job.payload,
)


def _plan_job(job: Job, now: datetime) -> Plan | None:
    """Return the job's plan at `now` (a slot still ahead: at its own time, so exactly that
    slot); None (and the job paused) if its schedule is invalid."""
    try:
        schedule = schedule_of(job.schedule, job.tz, job.name)
    except InvalidSchedule as e:  # stored before a stricter parser: pause it, say why
        logger.error("job %s paused: its schedule is invalid: %s", job.name, e.message)
        Job.update(
            enabled=False, next_run_at=None, pause_note=f"invalid schedule: {e.message}"
        ).where(Job.id == job.id).execute()
        return None
    at = max(now, job.next_run_at)
    plan = plan_due(misfire_policy(job), remembered_next_times(schedule), job.next_run_at, at)
    return limit_runs(plan, job.run_count, job.max_runs)


def insert_plan(job: Job, plan: Plan, now: datetime) -> None:
    """Insert the plan's missed and queued rows (a slot already there is left alone)."""
    _insert_runs(plan_rows(job, plan, now))


def _insert_runs(rows: list[dict[str, Any]]) -> None:
    # The unique (job, scheduled_for, attempt) key makes a second claim of a slot a no-op.
    insert_rows(Run, rows, skip_duplicates=True)


def plan_rows(job: Job, plan: Plan, now: datetime) -> list[dict[str, Any]]:
    """Return the plan's missed and queued rows, every row with every column."""
    rows: list[dict[str, Any]] = []
    for missed in plan.missed:
        approx = "" if missed.exact else "about "
        span = f" from {missed.first.isoformat()} to {missed.last.isoformat()}"
        rows.append(
            _row(job, missed.first, "missed", now)
            | {
                "finished_at": now,
                "missed_count": missed.count,
                "error": f"missed {approx}{missed.count} slot(s)"
                + (span if missed.count > 1 else "")
                + " (gateway down, paused or late beyond the misfire policy)",
            }
        )
    rows.extend(_row(job, slot, "queued", now) | {"due_at": slot} for slot in plan.run)
    return rows


def _row(job: Job, slot: datetime, status: str, now: datetime) -> dict[str, Any]:
    # Every row has every key: insert_rows takes its columns from the first row.
    return {
        "execution_id": new_execution_id(),
        "job": job.id,
        "trigger": "schedule",
        "scheduled_for": slot,
        "attempt": 1,
        "status": status,
        "queued_at": now,
        "payload": job.payload,
        "due_at": None,
        "finished_at": None,
        "missed_count": None,
        "error": None,
    }


@dataclass(frozen=True)
class Taken:
    """What a take did: the runs to send; whether it read as many as its limit (there may be
    more due: take again at once, `after=last`); the (due_at, id) of the last run it read."""

    dispatches: list[Dispatch]
    full: bool
    last: tuple[datetime, int] | None = None


def take_due_runs(
    now: datetime,
    gateway: str,
    app_url: str,
    *,
    limit: int = 200,
    answered: Collection[int] = (),
    due_by: datetime | None = None,
) -> list[Dispatch]:
    """Mark queued runs that are due *dispatched* by `gateway` and return them (see
    `take_due_batch`)."""
    return take_due_batch(
        now, gateway, app_url, limit=limit, answered=answered, due_by=due_by
    ).dispatches


def take_due_batch(
    now: datetime,
    gateway: str,
    app_url: str,
    *,
    limit: int = 200,
    answered: Collection[int] = (),
    due_by: datetime | None = None,
    after: tuple[datetime, int] | None = None,
) -> Taken:
    """Mark queued runs that are due *dispatched* by `gateway` and return them to send.

    `due_by` (default `now`): also take the runs due by then, a little ahead, so that their
    calls are ready to leave at their time (the sender waits for it: `Dispatch.due_at`). Such
    a run is taken only if nothing is to be decided about it: if its job has a run going, it
    stays queued until it is due, and the overlap policy is applied then, as without.

    On the way, overlap and misfire policies are applied: a queued run may instead end
    *skipped* (forbid), cancel the run it replaces (replace), wait (an earlier run of the same
    job is still going and this one is a catch-up, retry or manual run), or end *missed* (it
    waited past the catch-up window). The batch is read with three queries and marked with one
    update, however many runs it has, so a burst of due runs leaves together.

    `answered`: ids of runs whose call has ended but whose outcome is not stored yet (this
    gateway's writer is behind, say after a database outage); they are not "going" for the
    overlap policy.

    `after`: read only the runs after this (due_at, id), the `last` of a full take before:
    the runs that take left queued (waiting for another run of their job, or not due yet)
    are not read again and again while the runs behind them wait.
    """
    due = (Run.status == "queued") & (Run.due_at <= (now if due_by is None else max(now, due_by)))
    if after is not None:
        due &= (Run.due_at > after[0]) | ((Run.due_at == after[0]) & (Run.id > after[1]))
    if not Run.select(Run.id).where(due).exists():  # (an idle wake takes no lock)
        return Taken([], full=False)
    with write_transaction():
        query = (
            Run.select(*_TAKEN_RUN, *_TAKEN_JOB)
            .join(Job)
            .where(due)
            .order_by(Run.due_at, Run.id)
            .limit(limit)
        )
        if not is_sqlite():
            query = query.for_update(_ROW_LOCK, of=Run, skip_locked=True)  # type: ignore[arg-type]
        batch = list(query)
        if not batch:
            return Taken([], full=False)
        job_ids = {run.job_id for run in batch}
        active = _active_runs(job_ids, answered)
        newest = _newest_queued_slots(job_ids, now)
        sent: dict[int, Dispatch] = {}  # by run id, in order
        for run in batch:
            dispatch = _dispatch_one(run, now, app_url, active, newest, sent)
            if dispatch is not None:
                sent[run.id] = dispatch
                active.setdefault(run.job_id, []).append(run)
        if sent:
            Run.update(status="dispatched", dispatched_at=now, gateway=gateway).where(
                in_list(Run.id, list(sent)) & (Run.status == "queued")
            ).execute()
    last = batch[-1]
    return Taken(list(sent.values()), full=len(batch) >= limit, last=(last.due_at, last.id))


# What taking a run reads of it and its job (`_dispatch_one`, the misfire and overlap
# policies, `finish`): a burst of 1,000 runs builds 2,000 objects, so not all their columns
# (measured: 1,000 runs taken in 64 ms instead of 88).
_TAKEN_RUN = (*RUN_DECIDING, Run.queued_at, Run.due_at)
_TAKEN_JOB = (
    Job.id,
    Job.name,
    Job.url,
    Job.method,
    Job.headers,
    Job.payload,
    Job.timeout,
    Job.signed,
    Job.misfire,
    Job.catchup_window,
    Job.overlap,
    Job.deleted_at,
)


def _active_runs(job_ids: set[int], answered: Collection[int] = ()) -> dict[int, list[Run]]:
    """Return the runs being sent or run, by job, for these jobs (by the status index),
    leaving out the dispatched ones in `answered` (their call has ended)."""
    active: dict[int, list[Run]] = {}
    going = Run.status.in_(("dispatched", "running"))
    rows = Run.select().where(in_list(Run.job, job_ids) & going)
    for run in rows:
        if not (run.status == "dispatched" and run.id in answered):
            active.setdefault(run.job_id, []).append(run)
    return active


def _newest_queued_slots(
    job_ids: set[int], now: datetime
) -> dict[int, list[tuple[datetime, datetime]]]:
    """Return (scheduled_for, queued_at) of every due, queued first attempt of a slot, by job:
    what `_claimed_later` compares a stale slot with."""
    found: dict[int, list[tuple[datetime, datetime]]] = {}
    rows = (
        Run.select(Run.job, Run.scheduled_for, Run.queued_at)
        .where(
            in_list(Run.job, job_ids)
            & (Run.trigger == "schedule")
            & (Run.attempt == 1)
            & (Run.status == "queued")
            & (Run.due_at <= now)
        )
        .tuples()
    )
    for job_id, slot, queued_at in cast(Iterable[tuple[int, Any, Any]], rows):
        found.setdefault(job_id, []).append(
            (Run.scheduled_for.python_value(slot), Run.queued_at.python_value(queued_at))
        )
    return found


def _dispatch_one(
    run: Run,
    now: datetime,
    app_url: str,
    active: dict[int, list[Run]],
    newest: dict[int, list[tuple[datetime, datetime]]],
    sent: dict[int, Dispatch],
) -> Dispatch | None:
    """Decide one queued run of the batch; return its Dispatch if it is to be sent now.

    `active` and `sent` are the batch's view so far: a run chosen earlier in the batch is
    going (it is marked in the database when the batch ends), and one replaced by a later run
    of its job is canceled before it is ever sent."""
    job = run.job
    if job.deleted_at is not None:
        finish(run, "canceled", now, error="the job was deleted before this run was sent")
        return None
    reason = _misfired(run, job, now, newest.get(job.id, []))
    if reason is not None:
        finish(run, "missed", now, error=reason)
        return None
    policy = misfire_policy(job)
    catch_up = run.trigger == "schedule" and now - run.scheduled_for > policy.grace
    going = [r for r in active.get(job.id, []) if r.status in ("dispatched", "running")]
    if going and run.due_at > now:
        return None  # not due yet: the overlap policy is applied at its time, not ahead
    decision = decide_overlap(cast(OverlapMode, job.overlap), bool(going))
    if decision == "skip":
        if run.trigger != "schedule" or catch_up:
            return None  # a manual, retry or catch-up run waits for the running one to end
        finish(run, "skipped", now, error="the previous run was still going (overlap: forbid)")
        return None
    if decision == "replace":
        for old in going:
            if sent.pop(old.id, None) is not None:
                old.status = "queued"  # chosen earlier in this batch, never sent
            finish(old, "canceled", now, error="replaced by a newer run (overlap: replace)")
            Run.update(cancel_requested_at=now).where(Run.id == old.id).execute()
    run.status = "dispatched"  # in this batch's view; the update follows for the whole batch
    return Dispatch(
        run_id=run.id,
        execution_id=run.execution_id,
        attempt=run.attempt,
        trigger=run.trigger,
        scheduled_for=run.scheduled_for,
        job=job.name,
        url=absolute_url(job.url, app_url),
        method=job.method,
        headers=dict(job.headers or {}),
        payload=run.payload if run.payload is not None else job.payload,
        timeout_s=float(job.timeout),
        signed=bool(job.signed),
        due_at=run.due_at,
    )


def _misfired(
    run: Run, job: Job, now: datetime, newest: list[tuple[datetime, datetime]]
) -> str | None:
    """Return why a queued scheduled slot must end *missed* instead of running, or None.

    Claimed slots can wait in the queue (their gateway died before sending them): when they
    are finally taken, the misfire policy applies to them as to any late slot, and under
    `once` or `skip` a slot claimed later (by the gateway that took over) runs instead.
    """
    if run.trigger != "schedule" or run.attempt != 1 or run.scheduled_for is None:
        return None
    policy = misfire_policy(job)
    if policy.mode != "all" and _claimed_later(run, newest):
        return f"a newer slot of this job runs instead (misfire: {policy.mode})"
    behind = now - run.scheduled_for
    if behind <= policy.grace:
        return None  # on time
    if behind > policy.catchup_window:
        return "waited in the queue past the catch-up window"
    if policy.mode == "skip":
        return "sent too late (misfire: skip)"
    return None


def _claimed_later(run: Run, newest: list[tuple[datetime, datetime]]) -> bool:
    """Return True if a newer slot of the job, claimed in a later round, is due too."""
    return any(slot > run.scheduled_for and queued_at > run.queued_at for slot, queued_at in newest)


def absolute_url(url: str, app_url: str) -> str:
    """Return the job's URL, a path being relative to GATEWAY_APP_URL."""
    return app_url.rstrip("/") + url if url.startswith("/") else url


def next_due_at(
    now: datetime,
    ahead: timedelta = timedelta(0),
    take_ahead: timedelta = timedelta(0),
    taken_by: datetime | None = None,
) -> datetime | None:
    """Return the earliest time something is due, by index: a job's next slot to claim
    `ahead` of it, or a queued run to take `take_ahead` of its time.

    `taken_by`: the last take took the runs due by then that it could. One it left queued
    is due again only at its own time (it was not due yet: its overlap policy is decided
    then), or, if that has passed, it waits for another run of its job to end and the loop
    looks again each round (without this, a manual run waiting behind a long one made the
    loop spin until that one ended)."""
    job_next = (
        Job.select(Job.next_run_at)
        .where(
            Job.enabled
            & ~Job.watch_only
            & Job.next_run_at.is_null(False)
            & Job.orphaned_at.is_null()
        )
        .order_by(Job.next_run_at)
        .limit(1)
        .scalar()
    )
    found = []
    if job_next is not None:
        found.append(Run.due_at.python_value(job_next) - ahead)
    queued = (Run.status == "queued") & Run.due_at.is_null(False)
    if taken_by is None:
        new = _earliest_due(queued)
    else:
        new = _earliest_due(queued & (Run.due_at > taken_by))
        left = _earliest_due(queued & (Run.due_at > now) & (Run.due_at <= taken_by))
        if left is not None:
            found.append(left)
    if new is not None:
        found.append(new - take_ahead)
    return min(found) if found else None


def _earliest_due(where: Expression) -> datetime | None:
    value = Run.select(Run.due_at).where(where).order_by(Run.due_at).limit(1).scalar()
    return None if value is None else Run.due_at.python_value(value)


@dataclass(frozen=True)
class Pulse:
    """How a live run shows it is alive: a beat under a key that should keep changing.

    A *running* run beats itself (its worker's heartbeat); a *dispatched* one lives while the
    gateway that sent it beats (its gateway row's `seen_at`).
    """

    run_id: int
    status: str
    key: str
    beat: datetime | None


def pulses() -> list[Pulse]:
    """Return the pulse of every run that is being sent or run (a handful, by index)."""
    rows: Iterable[dict[str, Any]] = cast(
        Iterable[dict[str, Any]],
        (
            Run.select(Run.id, Run.status, Run.heartbeat_at, Run.gateway, Gateway.seen_at)
            .join(Gateway, JOIN.LEFT_OUTER, on=(Run.gateway == Gateway.instance))
            .where(Run.status.in_(("dispatched", "running")))
            .dicts()
        ),
    )
    return [
        Pulse(r["id"], "running", f"run:{r['id']}", r["heartbeat_at"])
        if r["status"] == "running"
        else Pulse(r["id"], "dispatched", f"gateway:{r['gateway']}", r["seen_at"])
        for r in rows
    ]


def abandon(
    run_ids: list[int],
    now: datetime,
    reason: str | None = None,
    statuses: tuple[str, ...] = ("dispatched", "running"),
) -> int:
    """Mark these runs *abandoned* (their sender or runner died) if they are still live (in
    `statuses`), and queue the next attempt for jobs that opt in (`retry_abandoned`); return
    how many. `reason` is the error of a *dispatched* one (default: its gateway stopped)."""
    count = 0
    with write_transaction():
        live = Run.select(Run, Job).join(Job).where(Run.id.in_(run_ids) & Run.status.in_(statuses))
        for run in _locked(live):
            sender = reason or ABANDONED_BY_GATEWAY
            error = sender if run.status == "dispatched" else ABANDONED_BY_WORKER
            if finish(run, "abandoned", now, error=error):
                count += 1
                if run.job.retry_abandoned and run.attempt < run.job.max_attempts:
                    queue_retry(run, now, now)
    return count


def mark_lost_gateways(now: datetime, lease: timedelta) -> None:
    """Show gateways that stopped beating without saying goodbye as *lost*."""
    Gateway.update(role="lost").where(
        (Gateway.seen_at < now - lease) & Gateway.role.in_(("active", "standby"))
    ).execute()


def release_ahead(now: datetime) -> int:
    """Undo the claims of slots not due yet (claimed ahead): delete their queued runs, never
    sent, and move their jobs' `next_run_at` back to them, so a stopped gateway leaves no
    queued run behind; the next gateway claims those slots again. Return how many.

    A deleted job, or one paused without a fate, is not moved back: its slot simply goes (a
    pause or a deletion ahead of a slot stops it, as it would have without the lead); a job
    paused with a fate is, so that resuming accounts for the slot. Nor is a job whose schedule
    changed since (the slot is not one of its slots any more).
    """
    with write_transaction():
        query = Run.select(Run.id, Run.job, Run.scheduled_for).where(
            (Run.status == "queued")
            & (Run.trigger == "schedule")
            & (Run.attempt == 1)
            & (Run.due_at > now)
        )
        rows = list(_locked(query))
        if not rows:
            return 0
        earliest: dict[int, datetime] = {}
        count: dict[int, int] = {}
        for run in rows:
            slot = run.scheduled_for
            earliest[run.job_id] = min(earliest.get(run.job_id, slot), slot)
            count[run.job_id] = count.get(run.job_id, 0) + 1
        # Runs, then jobs (the order an ending run takes them too): waiting for a job's lock,
        # never skipping it, or its slot would be lost with nothing recorded.
        jobs = Job.select().where(Job.id.in_(sorted(earliest))).order_by(Job.id)
        jobs = jobs if is_sqlite() else jobs.for_update()
        for job in list(jobs):
            changes: dict[Any, Any] = {Job.run_count: Job.run_count - count[job.id]}
            slot = earliest[job.id]
            if _moves_back(job, slot):
                changes[Job.next_run_at] = (
                    slot if job.next_run_at is None else min(slot, job.next_run_at)
                )
            Job.update(changes).where(Job.id == job.id).execute()
        Run.delete().where(Run.id.in_([run.id for run in rows])).execute()
    return len(rows)


def _moves_back(job: Job, slot: datetime) -> bool:
    """Return True if a job's next_run_at may go back to `slot`, a slot it had claimed ahead."""
    if job.deleted_at is not None or job.schedule is None:
        return False
    if not job.enabled and job.pause_fate is None:
        return False
    try:
        schedule = schedule_of(job.schedule, job.tz, job.name)
    except InvalidSchedule:
        return False
    return schedule.next_times(slot - timedelta(microseconds=1), 1) == [slot]


def hand_back(run_ids: list[int]) -> int:
    """Return dispatched runs that were never sent to the queue, for another gateway to send."""
    if not run_ids:
        return 0
    return int(
        Run.update(status="queued", gateway=None, dispatched_at=None, lateness_ms=None)
        .where(Run.id.in_(run_ids) & (Run.status == "dispatched"))
        .execute()
    )
