"""Jobs: look up by name, make sure a code-declared job has a row to hang its runs on."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from typing import Any

from peewee import IntegrityError

from gateway.schedule import Schedule
from gateway.store.db import database
from gateway.store.models import Job


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


def next_run_after(job: Job, now: datetime) -> datetime | None:
    """Return the job's first slot after `now` (UTC), or None if nothing should be scheduled.

    Disabled, deleted and schedule-less jobs have no next run; neither has a job that reached
    its `max_runs`.
    """
    if not job.enabled or job.deleted_at is not None or not job.schedule:
        return None
    if job.max_runs is not None and job.run_count >= job.max_runs:
        return None
    times = Schedule(job.schedule, job.tz, name=job.name).next_times(now, 1)
    return times[0].astimezone(UTC) if times else None
