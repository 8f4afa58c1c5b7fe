"""Runs: start, attach to the gateway's row, heartbeat, finish, abandon, list; a row per attempt."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from peewee import OP
from peewee import SQL
from peewee import Expression
from peewee import NodeList
from peewee import Value

from gateway.errors import ConflictError
from gateway.store.db import write_transaction
from gateway.store.models import ACTIVE_STATUSES
from gateway.store.models import Job
from gateway.store.models import Run

ABANDONED_BY_WORKER = "the worker running this job stopped answering (no heartbeat)"
TERMINAL_STATUSES = ("success", "error", "timeout", "skipped", "canceled", "abandoned", "missed")
FAILED_STATUSES = ("error", "timeout", "abandoned")


@dataclass(frozen=True)
class Origin:
    """How a call reached the endpoint: from the gateway (with its ids) or from anyone else."""

    trigger: str = "external"
    execution_id: str | None = None
    attempt: int = 1
    scheduled_for: datetime | None = None


def new_execution_id() -> str:
    return str(uuid.uuid4())


def start_run(job: Job, origin: Origin, caller: str, payload: Any, now: datetime) -> Run:
    """Record that the endpoint is running `job` now, and return the run.

    A call from the gateway carries an execution id: the endpoint moves the gateway's row
    *dispatched → running* only if (execution id, attempt) still matches, so a stale or replayed
    call raises ConflictError. An id nobody has seen (a gateway on another database) and calls
    without one (system cron, curl) get a new row.
    """
    if origin.execution_id is None:
        return _insert_running(job, origin, new_execution_id(), caller, payload, now)
    with write_transaction():
        run = Run.get_or_none(
            (Run.execution_id == origin.execution_id) & (Run.attempt == origin.attempt)
        )
        if run is None:
            if Run.select().where(Run.execution_id == origin.execution_id).exists():
                raise ConflictError("this execution id belongs to another attempt")
            return _insert_running(job, origin, origin.execution_id, caller, payload, now)
        if run.job_id != job.id or run.status not in ("queued", "dispatched"):
            raise ConflictError(f"run {origin.execution_id} is {run.status}, not dispatched")
        run.status, run.started_at, run.heartbeat_at, run.caller = "running", now, now, caller
        run.save()
        return run


def _insert_running(
    job: Job, origin: Origin, execution_id: str, caller: str, payload: Any, now: datetime
) -> Run:
    return Run.create(
        execution_id=execution_id,
        job=job,
        trigger=origin.trigger,
        scheduled_for=origin.scheduled_for,
        attempt=origin.attempt,
        status="running",
        queued_at=now,
        started_at=now,
        heartbeat_at=now,
        lateness_ms=_ms(now - origin.scheduled_for) if origin.scheduled_for else None,
        caller=caller,
        payload=payload,
    )


def enqueue(
    job: Job,
    trigger: str,
    now: datetime,
    *,
    payload: Any = None,
    scheduled_for: datetime | None = None,
    attempt: int = 1,
    execution_id: str | None = None,
    due_at: datetime | None = None,
) -> Run:
    """Queue a run for the gateway to send at `due_at` (default now): manual, retry, backfill.

    A manual run has no slot (`scheduled_for` None), so any number may be queued at once.
    """
    return Run.create(
        execution_id=execution_id or new_execution_id(),
        job=job,
        trigger=trigger,
        scheduled_for=scheduled_for,
        attempt=attempt,
        status="queued",
        queued_at=now,
        due_at=due_at or now,
        payload=payload,
    )


def record_skipped(
    job: Job, origin: Origin, caller: str, reason: str, payload: Any, now: datetime
) -> Run:
    """Record a call that did not run (the job's lock was held) as a *skipped* run."""
    if origin.execution_id is not None:
        run = Run.get_or_none(
            (Run.execution_id == origin.execution_id) & (Run.attempt == origin.attempt)
        )
        if run is not None and run.status in ("queued", "dispatched") and run.job_id == job.id:
            finish(run, "skipped", now, duration_ms=0, error=reason, caller=caller)
            return run
    run = _insert_running(
        job, origin, origin.execution_id or new_execution_id(), caller, payload, now
    )
    finish(run, "skipped", now, duration_ms=0, error=reason)
    return run


def heartbeat(
    run_id: int, now: datetime, log: str | None, progress: tuple[int, int | None] | None
) -> bool:
    """Store that the run is alive (with its log so far); return True if it was asked to stop."""
    fields: dict[Any, Any] = {Run.heartbeat_at: now}
    if log is not None:
        fields[Run.log] = log
    if progress is not None:
        fields[Run.progress_done], fields[Run.progress_total] = progress
    Run.update(fields).where((Run.id == run_id) & (Run.status == "running")).execute()
    row = Run.select(Run.cancel_requested_at, Run.status).where(Run.id == run_id).first()
    return row is None or row.cancel_requested_at is not None or row.status != "running"


def finish_run(run_id: int, status: str, now: datetime, **outcome: Any) -> bool:
    """Record the end of a running run; return False if it had already ended otherwise.

    A run marked *abandoned* because its heartbeat lapsed takes the real outcome when it comes:
    the truth arriving late beats a guess.
    """
    run = Run.get_or_none(Run.id == run_id)
    if run is None or run.status not in ("running", "abandoned"):
        return False
    return finish(run, status, now, **outcome)


def finish(run: Run, status: str, now: datetime, **outcome: Any) -> bool:
    """End `run` with `status` unless its status changed since it was read; count it on the job.

    Return False if someone else ended (or moved) the run first.
    """
    with write_transaction():
        updated = (
            Run.update(status=status, finished_at=now, **outcome)
            .where((Run.id == run.id) & (Run.status == run.status))
            .execute()
        )
        if updated:
            _count_on_job(run.job_id, status, now)
    if not updated:
        return False
    run.status = status
    for name, value in outcome.items():
        setattr(run, name, value)
    return True


def _count_on_job(job_id: int, status: str, now: datetime) -> None:
    if status == "missed":
        return  # nothing ran: the job's last run is still the one before
    failures: Any
    if status in FAILED_STATUSES:
        failures = Job.consecutive_failures + 1
    elif status == "success":
        failures = 0
    else:  # skipped, canceled: neither a failure nor a recovery
        failures = Job.consecutive_failures
    Job.update(last_run_at=now, last_status=status, consecutive_failures=failures).where(
        Job.id == job_id
    ).execute()


def abandon_stale(job: Job, now: datetime, lease: timedelta) -> int:
    """Mark the job's runs whose heartbeat is older than `lease` *abandoned*; return how many."""
    stale = (Run.job == job) & (Run.status == "running") & (Run.heartbeat_at < now - lease)
    ids = [r.id for r in Run.select(Run.id).where(stale)]
    for run_id in ids:
        run = Run.get_by_id(run_id)
        finish(run, "abandoned", now, error=ABANDONED_BY_WORKER)
    return len(ids)


def abandon_run(execution_id: str, now: datetime) -> None:
    """Mark a still-running run *abandoned* (its lease was taken over after expiry)."""
    for run in Run.select().where(
        (Run.execution_id == execution_id) & Run.status.in_(ACTIVE_STATUSES)
    ):
        finish(run, "abandoned", now, error=ABANDONED_BY_WORKER)


def was_canceled(execution_id: str) -> bool:
    """Return True if the execution's latest attempt was canceled (overlap: replace)."""
    run = (
        Run.select(Run.status)
        .where(Run.execution_id == execution_id)
        .order_by(Run.attempt.desc())
        .first()
    )
    return run is not None and run.status == "canceled"


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


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


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
