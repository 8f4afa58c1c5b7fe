"""Jobs: look up, create, edit, pause, resume, delete, trigger; the first slot of each job."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from peewee import IntegrityError
from peewee import Value

from gateway.config import Settings
from gateway.errors import ConflictError
from gateway.errors import NotFoundError
from gateway.errors import ValidationError
from gateway.jobspec import check_payload
from gateway.jobspec import validate_job
from gateway.schedule import cached_next_time
from gateway.schedule import cached_schedule
from gateway.scheduler.planner import limit_runs
from gateway.scheduler.planner import plan_due
from gateway.scheduler.policy import MisfirePolicy
from gateway.store.claims import insert_plan
from gateway.store.claims import schedule_of
from gateway.store.db import database
from gateway.store.db import write_transaction
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import enqueue


def get_job(name: str) -> Job | None:
    """Return the job named `name`, deleted or not, or None."""
    return Job.get_or_none(Job.name == name)


def ensure_job(name: str, declared: Mapping[str, Any], now: datetime) -> Job:
    """Return the job's row, inserting it with the declared fields if it is new.

    An existing row is left as it is: what operators changed wins, and `sync` owns updates.
    """
    job = get_job(name)
    if job is not None:
        return job
    try:
        with database.atomic():
            return Job.create(name=name, created_at=now, updated_at=now, **declared)
    except IntegrityError:
        # Another worker inserted it between our read and our write: use theirs.
        return Job.get(Job.name == name)


# name -> id per database: ids never change (jobs are only ever soft-deleted), so a cron
# endpoint needs the job's row once per process, not a 49-column read on every call.
_JOB_IDS: WeakKeyDictionary[Any, dict[str, int]] = WeakKeyDictionary()


def job_ref(name: str, declared: Mapping[str, Any], now: datetime) -> Job:
    """Return a Job carrying only `id` and `name` (inserted with `declared` if new): enough
    to record runs of it."""
    ids = _JOB_IDS.setdefault(database.obj, {})
    job_id = ids.get(name)
    if job_id is None:
        job_id = ids[name] = ensure_job(name, declared, now).id
    return Job(id=job_id, name=name)


def next_run_after(job: Job, now: datetime) -> datetime | None:
    """Return the job's first slot after `now` (UTC), or None if nothing should be scheduled.

    Disabled, deleted and schedule-less jobs have no next run; neither has a job that reached
    its `max_runs`.
    """
    if not job.enabled or job.deleted_at is not None or not job.schedule:
        return None
    if job.max_runs is not None and job.run_count >= job.max_runs:
        return None
    first = cached_next_time(job.schedule, job.tz, job.name, now)
    return first.astimezone(UTC) if first is not None else None


# --- service functions: validate first, then write, so bad input changes nothing ----------


def next_run_at_for(job: Job, now: datetime) -> datetime | None:
    """Return `next_run_after`, or None for an orphaned job (sync found it gone from code)."""
    return None if job.orphaned_at is not None else next_run_after(job, now)


def live_job(name: str) -> Job:
    """Return the job named `name`, or raise NotFoundError if it is unknown or deleted."""
    job = get_job(name)
    if job is None:
        raise NotFoundError(f"no job named {name!r}", field="name")
    if job.deleted_at is not None:
        raise NotFoundError(f"job {name!r} is deleted", field="name")
    return job


def create_job(
    data: Mapping[str, Any], now: datetime, *, settings: Settings, source: str = "api"
) -> Job:
    """Create a job from `data` (validated) and return it; its first slot is computed.

    A deleted job's name may be taken again: the deleted row comes back with the new
    definition (its run history stays under the name). A live job's name raises ConflictError.
    """
    clean = validate_job(data, settings=settings)
    name = clean.pop("name")
    try:
        with write_transaction():
            job = get_job(name)
            if job is not None and job.deleted_at is None:
                raise ConflictError(f"a job named {name!r} already exists", field="name")
            job = job or Job(name=name, created_at=now)
            if job.id is not None:  # a deleted job comes back as new: defaults, then `data`
                for field, value in _defaults().items():
                    setattr(job, field, value)
            for field, value in clean.items():
                setattr(job, field, value)
            job.source, job.updated_at = source, now
            job.next_run_at = next_run_at_for(job, now)
            job.save()
    except IntegrityError:  # PostgreSQL: another writer inserted the name since our read
        raise ConflictError(f"a job named {name!r} already exists", field="name") from None
    return job


def _defaults() -> dict[str, Any]:
    """Return what a brand-new row would hold in every field a definition or a run changes."""
    fresh = Job()
    kept = {"id", "name", "created_at", "last_run_at", "last_status"}
    return {f: getattr(fresh, f) for f in Job._meta.sorted_field_names if f not in kept}


def update_job(name: str, changes: Mapping[str, Any], now: datetime, *, settings: Settings) -> Job:
    """Apply `changes` (validated as a partial definition) and return the job.

    The name cannot change: it is what runs, keys and code refer to.
    """
    if "name" in changes and changes["name"] != name:
        raise ValidationError(f"name: a job cannot be renamed (from {name!r})", field="name")
    clean = validate_job({**changes, "name": name}, partial=True, settings=settings)
    del clean["name"]
    with write_transaction():
        job = live_job(name)
        schedule, tz = clean.get("schedule", job.schedule), clean.get("tz", job.tz)
        if schedule is not None and ("schedule" in clean or "tz" in clean):
            cached_schedule(schedule, tz, name)  # the edited pair must work together
        for field, value in clean.items():
            setattr(job, field, value)
        job.updated_at = now
        if clean.keys() & {"schedule", "tz", "enabled", "max_runs"}:
            job.next_run_at = next_run_at_for(job, now)
        job.save()
    return job


FATES = ("missed", "once")


def pause_job(
    name: str,
    now: datetime,
    note: str | None = None,
    *,
    until: datetime | None = None,
    fate: str | None = None,
) -> Job:
    """Stop scheduling the job (runs already queued still go); `note` says why.

    `until` resumes it by itself at that time. `fate` decides what becomes of the slots that
    fall in the pause: None, they were never expected (nothing is recorded); "missed", each is
    recorded *missed* on resume; "once", one run on resume stands for them all.
    """
    _check_pause(now, note, until, fate)
    with write_transaction():
        job = live_job(name)
        job.enabled, job.pause_note, job.updated_at = False, note, now
        job.paused_until, job.pause_fate = until, fate
        if fate is None:
            job.next_run_at = None
        # else next_run_at stays: the first slot of the pause, for resume to account from.
        job.save()
    return job


def _check_pause(now: datetime, note: str | None, until: datetime | None, fate: str | None) -> None:
    if note is not None and len(note) > 1000:
        raise ValidationError("note: longer than 1000 characters", field="note")
    if until is not None and (until.tzinfo is None or until <= now):
        raise ValidationError("until: must be a time in the future, with an offset", field="until")
    if fate is not None and fate not in FATES:
        raise ValidationError(f"fate: must be one of {', '.join(FATES)}", field="fate")


def resume_job(name: str, now: datetime) -> Job:
    """Schedule the job again; the slots of the pause meet the fate chosen when pausing."""
    with write_transaction():
        job = live_job(name)
        job.next_run_at = _first_slot_after_pause(job, now)
        job.enabled, job.pause_note, job.updated_at = True, None, now
        job.paused_until, job.pause_fate = None, None
        job.consecutive_failures = 0  # an auto-paused job starts counting afresh
        job.save()
    return job


def resume_due(now: datetime) -> list[Job]:
    """Resume every job whose pause had an end time that has come; return them."""
    due = Job.select(Job.name).where(
        Job.paused_until.is_null(False) & (Job.paused_until <= now) & Job.deleted_at.is_null()
    )
    return [resume_job(job.name, now) for job in due]


def _first_slot_after_pause(job: Job, now: datetime) -> datetime | None:
    """Record the pause's slots as its fate says and return the job's next slot."""
    paused_from = job.next_run_at
    job.enabled = True  # next_run_at_for schedules enabled jobs only
    if job.pause_fate is None or paused_from is None or paused_from > now or not job.schedule:
        return next_run_at_for(job, now)
    if job.pause_fate == "missed":
        policy = MisfirePolicy(mode="skip")
    else:
        policy = MisfirePolicy(mode="once", catchup_window=now - paused_from)
    schedule = schedule_of(job.schedule, job.tz, job.name)
    plan = limit_runs(
        plan_due(policy, schedule.next_times, paused_from, now), job.run_count, job.max_runs
    )
    insert_plan(job, plan, now)
    job.run_count += len(plan.run)
    return plan.next_run_at


def delete_job(name: str, now: datetime) -> Job:
    """Soft-delete the job: it stops, its runs stay, its name can be taken again."""
    with write_transaction():
        job = live_job(name)
        job.deleted_at, job.enabled, job.next_run_at, job.updated_at = now, False, None, now
        job.save()
    return job


def list_jobs(include_deleted: bool = False, tag: str | None = None) -> list[Job]:
    """Return jobs by name, live ones only unless `include_deleted`, optionally with `tag`."""
    query = Job.select().order_by(Job.name)
    if not include_deleted:
        query = query.where(Job.deleted_at.is_null())
    if tag is not None:
        # Tags are JSON text: narrow with LIKE, then check exactly (LIKE's `_` is a wildcard).
        query = query.where(Job.tags.contains(Value(f'"{tag}"', converter=False)))
    jobs = list(query)
    return [j for j in jobs if tag in (j.tags or [])] if tag is not None else jobs


def trigger_job(name: str, now: datetime, payload: Any = None) -> Run:
    """Queue a manual run of the job for the gateway to send at once; paused jobs too.

    `payload` None sends the job's own payload.
    """
    if payload is not None:
        payload = check_payload(payload)
    with write_transaction():
        job = live_job(name)
        return enqueue(job, "manual", now, payload=payload)


def job_as_dict(job: Job) -> dict[str, Any]:
    """Return the public form of a job (ISO-8601 times; headers never hold secrets)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    fields = (
        "name title description url method headers payload schedule tz mode enabled tags "
        "timeout max_attempts backoff overlap misfire catchup_window max_runs run_count "
        "retry_abandoned auto_pause_after pause_note pause_fate signed last_status "
        "consecutive_failures source watch_only expect_every grace min_duration_ms max_duration_ms"
    ).split()
    times = (
        "next_run_at last_run_at created_at updated_at deleted_at orphaned_at paused_until"
    ).split()
    return {
        **{f: getattr(job, f) for f in fields},
        "state": job_state(job),
        **{t: iso(getattr(job, t)) for t in times},
    }


def job_state(job: Job) -> str:
    """Return deleted, orphaned, paused or enabled: what an operator sees first."""
    if job.deleted_at is not None:
        return "deleted"
    if job.orphaned_at is not None:
        return "orphaned"
    return "enabled" if job.enabled else "paused"
