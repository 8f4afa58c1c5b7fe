"""Reads of run history: one run, lists, keyset pages with filters, attempts, the UI's strips."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from peewee import OP
from peewee import SQL
from peewee import Expression
from peewee import NodeList
from peewee import Value

from gateway.store.models import Job
from gateway.store.models import Run


def find_run(execution_id: str, job: str | None = None) -> Run | None:
    """Return the latest attempt of an execution, or None."""
    query = Run.select(Run, Job).join(Job).where(Run.execution_id == execution_id)
    if job is not None:
        query = query.where(Job.name == job)
    run: Run | None = query.order_by(Run.attempt.desc()).first()
    return run


def list_runs(job: str | None = None, status: str | None = None, limit: int = 50) -> list[Run]:
    """Return the newest runs first, filtered by job name and status."""
    query = Run.select(Run, Job.name).join(Job)
    if job is not None:
        query = query.where(Job.name == job)
    if status is not None:
        query = query.where(Run.status == status)
    return list(query.order_by(Run.id.desc()).limit(limit))


# Without an indexed filter a text search examines at most this many runs per page.
Q_SCAN_LIMIT = 5000


@dataclass(frozen=True)
class RunFilters:
    """What `page_runs` selects: each given filter must hold (q: substring of error or summary)."""

    job: str | None = None
    status: str | None = None
    trigger: str | None = None
    since: datetime | None = None  # queued at or after
    until: datetime | None = None  # queued before
    q: str | None = None


def page_runs(
    filters: RunFilters, before_id: int | None, limit: int
) -> tuple[list[Run], int | None]:
    """Return up to `limit` runs, newest (highest id) first, below `before_id`, and the cursor
    for the next page (None: there is no more).

    The walk is by id down the (job, id) or (status, id) index, so a page costs the same at
    any depth. A text search `q` first narrows by the other filters to at most
    Q_SCAN_LIMIT candidates, then matches their text: such a page may hold fewer than
    `limit` runs while the cursor still points further back.
    """
    where = _run_conditions(filters, before_id)
    if where is None:  # an unknown job has no runs
        return [], None
    boundary: int | None = None
    if filters.q:
        boundary = (
            Run.select(Run.id)
            .where(where)
            .order_by(Run.id.desc())
            .offset(Q_SCAN_LIMIT - 1)
            .limit(1)
            .scalar()
        )
        where &= _like(Run.error, filters.q) | _like(Run.summary, filters.q)
        if boundary is not None:
            where &= Run.id >= boundary
    query = Run.select(Run, Job).join(Job).where(where).order_by(Run.id.desc())
    found = list(query.limit(limit + 1))
    if len(found) > limit:
        return found[:limit], found[limit - 1].id
    return found, boundary


def _run_conditions(filters: RunFilters, before_id: int | None) -> Any:
    where: Any = Run.id < before_id if before_id is not None else Run.id > 0
    if filters.job is not None:
        job_id = Job.select(Job.id).where(Job.name == filters.job).scalar()
        if job_id is None:
            return None
        where &= Run.job == job_id  # by id, so the (job, id) index serves the walk
    if filters.status is not None:
        where &= Run.status == filters.status
    if filters.trigger is not None:
        where &= Run.trigger == filters.trigger
    if filters.since is not None:
        where &= Run.queued_at >= filters.since
    if filters.until is not None:
        where &= Run.queued_at < filters.until
    return where


def _like(field: Any, text: str) -> Any:
    """Return `field` contains `text`, case-insensitive, with LIKE's wildcards taken literally.

    The pattern skips the field's converter: JSON text must not be JSON-quoted again.
    """
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = NodeList(
        (Value(f"%{escaped}%", converter=False), SQL("ESCAPE"), Value("\\", converter=False))
    )
    return Expression(field, OP.ILIKE, pattern)


def attempts_of(execution_id: str) -> list[Run]:
    """Return every attempt of an execution, first attempt first."""
    query = Run.select(Run, Job).join(Job).where(Run.execution_id == execution_id)
    return list(query.order_by(Run.attempt))


def run_as_dict(run: Run) -> dict[str, Any]:
    """Return the public form of a run (ISO-8601 times, no secrets: none are stored)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "job": run.job.name,
        "execution_id": run.execution_id,
        "attempt": run.attempt,
        "trigger": run.trigger,
        "status": run.status,
        "scheduled_for": iso(run.scheduled_for),
        "queued_at": iso(run.queued_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_ms": run.duration_ms,
        "lateness_ms": run.lateness_ms,
        "http_status": run.http_status,
        "summary": run.summary,
        "error": run.error,
        "caller": run.caller,
        "gateway": run.gateway,
        "missed_count": run.missed_count,
        "progress": (
            {"done": run.progress_done, "total": run.progress_total}
            if run.progress_done is not None
            else None
        ),
    }


# --- the UI's reads: bounded by the (job, id) index, one query per page -------------------


@dataclass(frozen=True)
class RunBrief:
    """A run as a strip or a chart shows it."""

    id: int
    job_id: int
    execution_id: str
    status: str
    queued_at: datetime
    duration_ms: int | None


def recent_runs_of(job_ids: list[int], per_job: int = 20) -> dict[int, list[RunBrief]]:
    """Return the newest `per_job` runs of each job, newest first, in one query.

    One LIMITed subquery per job, glued with UNION ALL: each walks the (job, id) index and
    stops after `per_job` rows, so a job with millions of runs costs what a new one does.
    """
    found: dict[int, list[RunBrief]] = {job_id: [] for job_id in job_ids}
    if not job_ids:
        return found
    db = Run._meta.database
    param = db.param
    table = Run._meta.table_name  # "run": a plain name on both backends
    columns = "id, job_id, execution_id, status, queued_at, duration_ms"
    part = (
        f"SELECT * FROM (SELECT {columns} FROM {table} WHERE job_id = {param} "
        f"ORDER BY id DESC LIMIT {int(per_job)}) AS r{{i}}"
    )
    sql = " UNION ALL ".join(part.format(i=i) for i in range(len(job_ids)))
    queued_at = Run.queued_at
    for row in db.execute_sql(sql, list(job_ids)).fetchall():
        run_id, job_id, execution_id, status, queued, duration_ms = row
        brief = RunBrief(
            run_id, job_id, execution_id, status, queued_at.python_value(queued), duration_ms
        )
        found[job_id].append(brief)
    for runs in found.values():
        runs.sort(key=lambda r: r.id, reverse=True)
    return found
