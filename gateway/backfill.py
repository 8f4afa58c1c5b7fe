"""Backfill: queue a run (trigger "backfill") for each slot of a job's schedule in a past range."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from peewee import IntegrityError

from gateway.errors import ValidationError
from gateway.schedule import MAX_COUNT
from gateway.store.claims import schedule_of
from gateway.store.db import database
from gateway.store.db import write_transaction
from gateway.store.jobs import live_job
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import TERMINAL_STATUSES
from gateway.store.runs import enqueue

DEFAULT_MAX = 1000
_BATCH = 200


@dataclass
class BackfillPlan:
    """The slots of a range: those queued now and those that already had a run."""

    job: str
    slots: list[datetime]
    queued: list[str] = field(default_factory=list)  # execution ids
    existing: list[datetime] = field(default_factory=list)


def slots_between(job_name: str, start: datetime, end: datetime, limit: int) -> list[datetime]:
    """Return the job's slots in [start, end), UTC; raise ValidationError past `limit` of them."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationError("from/to: give times with an offset, e.g. 2026-11-01T00:00Z")
    if end <= start:
        raise ValidationError("to: must be after from", field="to")
    job = live_job(job_name)
    if not job.schedule:
        raise ValidationError(f"job {job_name!r} has no schedule to backfill", field="job")
    schedule = schedule_of(job.schedule, job.tz, job.name)
    found: list[datetime] = []
    after = start - timedelta(microseconds=1)
    while True:
        batch = [t for t in schedule.next_times(after, MAX_COUNT) if t < end]
        found += batch
        if len(found) > limit:
            raise ValidationError(
                f"more than {limit} slots between {start.isoformat()} and {end.isoformat()}; "
                "narrow the range or raise --max",
                field="max",
            )
        if len(batch) < MAX_COUNT:
            return [t.astimezone(UTC) for t in found]
        after = batch[-1]


def backfill(
    job_name: str,
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    limit: int = DEFAULT_MAX,
    dry_run: bool = False,
) -> BackfillPlan:
    """Queue one run per slot in [start, end) that never ran, each due now.

    A slot never ran if it has no row, or only its *missed* row (the gateway was down or the
    job paused): that slot gets its next attempt under the missed row's execution id, so the
    run page shows "missed, then backfilled". The unique (job, scheduled_for, attempt) key
    makes a slot that another backfill queued meanwhile a skip.
    """
    slots = slots_between(job_name, start, end, limit)
    plan = BackfillPlan(job=job_name, slots=slots)
    for i in range(0, len(slots), _BATCH):
        with write_transaction():
            job = live_job(job_name)
            for slot in slots[i : i + _BATCH]:
                rows = list(Run.select().where((Run.job == job) & (Run.scheduled_for == slot)))
                if any(r.status != "missed" for r in rows):
                    plan.existing.append(slot)
                elif not dry_run:
                    _queue(
                        job, slot, now, plan, after=max(rows, key=lambda r: r.attempt, default=None)
                    )
    return plan


def _queue(job: Job, slot: datetime, now: datetime, plan: BackfillPlan, after: Run | None) -> None:
    try:
        with database.atomic():  # a savepoint: a lost race skips this slot only
            run = enqueue(
                job,
                "backfill",
                now,
                scheduled_for=slot,
                attempt=after.attempt + 1 if after else 1,
                execution_id=after.execution_id if after else None,
            )
    except IntegrityError:
        plan.existing.append(slot)
        return
    plan.queued.append(run.execution_id)


def ended_statuses(execution_ids: list[str]) -> dict[str, str]:
    """Return the status of each execution whose latest attempt has ended (retries pending
    are not ended: the gateway queues them as a new attempt)."""
    latest: dict[str, tuple[int, str]] = {}
    rows = Run.select(Run.execution_id, Run.attempt, Run.status).where(
        Run.execution_id.in_(execution_ids)
    )
    for row in rows:
        if row.execution_id not in latest or row.attempt > latest[row.execution_id][0]:
            latest[row.execution_id] = (row.attempt, row.status)
    return {e: status for e, (_, status) in latest.items() if status in TERMINAL_STATUSES}
