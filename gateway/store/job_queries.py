"""Job listing queries for the jobs page: filters, keyset pages by name, all in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peewee import OP
from peewee import SQL
from peewee import Expression
from peewee import NodeList
from peewee import Value

from gateway.store.models import Job

STATES = ("enabled", "paused", "orphaned")


@dataclass(frozen=True)
class JobFilters:
    """What the jobs page shows: each given filter must hold."""

    tag: str | None = None
    status: str | None = None  # the last run's status; "never" for jobs that never ran
    state: str | None = None  # enabled | paused | orphaned
    q: str | None = None  # in the name, title or description


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    previous: str | None  # `before` cursor for the previous page, None on the first
    next: str | None  # `after` cursor for the next page, None on the last


def page_jobs(
    filters: JobFilters, *, after: str | None = None, before: str | None = None, limit: int = 50
) -> JobPage:
    """Return a page of live jobs by name, after (or before) the given name.

    The walk goes down the unique index on name, so any page costs about the same.
    """
    where = _conditions(filters)
    query = Job.select().where(where)
    if before is not None:
        rows = list(query.where(Job.name < before).order_by(Job.name.desc()).limit(limit + 1))
        more_before = len(rows) > limit
        jobs = list(reversed(rows[:limit]))
        return JobPage(
            jobs, jobs[0].name if more_before and jobs else None, jobs[-1].name if jobs else None
        )
    if after is not None:
        query = query.where(Job.name > after)
    rows = list(query.order_by(Job.name).limit(limit + 1))
    jobs = rows[:limit]
    previous = jobs[0].name if after is not None and jobs else None
    return JobPage(jobs, previous, jobs[-1].name if len(rows) > limit else None)


def _conditions(filters: JobFilters) -> Any:
    where: Any = Job.deleted_at.is_null()
    if filters.tag:
        # Tags are stored as JSON text: a quoted slug matches exactly one tag.
        where &= _contains(Job.tags, f'"{filters.tag}"')
    if filters.status == "never":
        where &= Job.last_status.is_null()
    elif filters.status:
        where &= Job.last_status == filters.status
    if filters.state == "orphaned":
        where &= Job.orphaned_at.is_null(False)
    elif filters.state in ("enabled", "paused"):
        where &= (Job.enabled == (filters.state == "enabled")) & Job.orphaned_at.is_null()
    if filters.q:
        where &= (
            _contains(Job.name, filters.q)
            | _contains(Job.title, filters.q)
            | _contains(Job.description, filters.q)
        )
    return where


def _contains(field: Any, text: str) -> Any:
    """Return `field` contains `text` (any case), with LIKE's wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = NodeList(
        (Value(f"%{escaped}%", converter=False), SQL("ESCAPE"), Value("\\", converter=False))
    )
    return Expression(field, OP.ILIKE, pattern)
