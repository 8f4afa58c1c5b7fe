"""Fleet operations: pause or resume many jobs at once, by tag or by a list of names."""

from __future__ import annotations

from datetime import datetime

from gateway.errors import NotFoundError
from gateway.errors import ValidationError
from gateway.store.db import write_transaction
from gateway.store.jobs import list_jobs
from gateway.store.jobs import live_job
from gateway.store.jobs import pause_job
from gateway.store.jobs import resume_job
from gateway.store.models import Job


def pause_many(
    *,
    names: list[str] | None,
    tag: str | None,
    now: datetime,
    note: str | None = None,
    until: datetime | None = None,
    fate: str | None = "missed",
) -> list[Job]:
    """Pause the selected jobs ("paused until 18:00: database migration"); all or none.

    `fate` says what becomes of their slots during the pause: "missed" (each recorded
    *missed* on resume), "once" (one run on resume) or None (they were never expected).
    """
    with write_transaction():
        return [
            pause_job(job.name, now, note, until=until, fate=fate) for job in _selected(names, tag)
        ]


def resume_many(*, names: list[str] | None, tag: str | None, now: datetime) -> list[Job]:
    """Resume the selected jobs that are paused; all or none."""
    with write_transaction():
        return [resume_job(job.name, now) for job in _selected(names, tag) if not job.enabled]


def _selected(names: list[str] | None, tag: str | None) -> list[Job]:
    """Return the live jobs named, or tagged; an unknown name fails the whole operation."""
    if (names is None) == (tag is None):
        raise ValidationError("give either a tag or a list of job names", field="tag")
    if tag is not None:
        jobs = list_jobs(tag=tag)
        if not jobs:
            raise NotFoundError(f"no job has the tag {tag!r}", field="tag")
        return jobs
    assert names is not None
    if not names:
        raise ValidationError("names: the list is empty", field="names")
    return [live_job(name) for name in dict.fromkeys(names)]
