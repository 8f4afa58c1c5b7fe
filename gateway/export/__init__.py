"""Export jobs to other schedulers: system cron (crontab.py), AWS EventBridge (eventbridge.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin

from gateway.errors import GatewayError
from gateway.errors import NotFoundError
from gateway.schedule import Schedule
from gateway.store.jobs import list_jobs
from gateway.store.jobs import live_job
from gateway.store.models import Job


class ExportError(GatewayError):
    """A job's schedule cannot be expressed by the target scheduler."""

    code = "not_exportable"


@dataclass(frozen=True)
class Rejected:
    """A job left out of an export, and why."""

    job: str
    reason: str


def jobs_to_export(names: Sequence[str] = ()) -> list[Job]:
    """Return the named live jobs (all live jobs with a schedule if none are named)."""
    if names:
        jobs = [live_job(name) for name in dict.fromkeys(names)]
        for job in jobs:
            if not job.schedule:
                raise NotFoundError(f"job {job.name!r} has no schedule to export", field="job")
        return jobs
    return [job for job in list_jobs() if job.schedule and job.orphaned_at is None]


def absolute_url(job: Job, app_url: str) -> str:
    """Return the job's URL; a path is resolved against GATEWAY_APP_URL."""
    if job.url.startswith("/"):
        return urljoin(app_url.rstrip("/") + "/", job.url.lstrip("/"))
    return str(job.url)


def normalized_fields(job: Job) -> tuple[str, ...]:
    """Return the job's six normalized fields, seconds first, `H` already hashed by its name."""
    return Schedule(job.schedule or "", job.tz, name=job.name).fields


def expand(text: str, low: int, high: int) -> list[int]:
    """Return the sorted values of a normalized field made of numbers, ranges and steps."""
    values: set[int] = set()
    for item in text.split(","):
        head, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if head == "*":
            start, end = low, high
        elif "-" in head:
            start, end = (int(v) for v in head.split("-"))
        else:
            start = int(head)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return sorted(values)


def compact(values: Sequence[int]) -> str:
    """Return values as a cron list with runs of three or more written as ranges: 1-5,7."""
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{values[i]}-{values[j]}")
        else:
            parts.extend(str(v) for v in values[i : j + 1])
        i = j + 1
    return ",".join(parts)
