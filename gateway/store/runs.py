"""Runs: start, attach to the gateway's row, heartbeat, finish, abandon, list; a row per attempt."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from gateway.errors import ConflictError
from gateway.store import rendered
from gateway.store.bulk import assignments
from gateway.store.bulk import insert_sql
from gateway.store.db import is_sqlite
from gateway.store.db import joined_write_transaction
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


def start_run(
    job: Job,
    origin: Origin,
    caller: str,
    payload: Any,
    now: datetime,
    *,
    new_id: str | None = None,
) -> Run:
    """Record that the endpoint is running `job` now, and return the run.

    A call from the gateway carries an execution id: the endpoint moves the gateway's row
    *dispatched → running* only if (execution id, attempt) still matches, so a stale or replayed
    call raises ConflictError. An id nobody has seen (a gateway on another database) and calls
    without one (system cron, curl) get a new row, the latter under `new_id` if given.
    """
    if origin.execution_id is None:
        return _insert_running(job, origin, new_id or new_execution_id(), caller, payload, now)
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
        started = Run.started_at.db_value(now)
        values = ("running", started, started, caller, run.id, run.status)
        if not rendered.execute("run.attach", _attach_sql, values).rowcount:
            raise ConflictError(f"run {origin.execution_id} moved on while it was attached")
        run.status, run.started_at, run.heartbeat_at, run.caller = "running", now, now, caller
        return run


def _attach_sql(param: str) -> str:
    moved = assignments((Run.status, Run.started_at, Run.heartbeat_at, Run.caller), param)
    return (
        f"UPDATE {Run._meta.table_name} SET {moved} "
        f"WHERE {Run.id.column_name} = {param} AND {Run.status.column_name} = {param}"
    )


def started_run(execution_id: str, attempt: int) -> Run | None:
    """Return the *running* row of (execution id, attempt), if there is one."""
    return Run.get_or_none(
        (Run.execution_id == execution_id) & (Run.attempt == attempt) & (Run.status == "running")
    )


def _insert_running(
    job: Job, origin: Origin, execution_id: str, caller: str, payload: Any, now: datetime
) -> Run:
    """Insert a *running* row and return it (as `Run.create` would, in one rendered INSERT)."""
    values: dict[Any, Any] = {  # field -> value
        Run.execution_id: execution_id,
        Run.job: job.id,
        Run.trigger: origin.trigger,
        Run.scheduled_for: origin.scheduled_for,
        Run.attempt: origin.attempt,
        Run.status: "running",
        Run.queued_at: now,
        Run.started_at: now,
        Run.heartbeat_at: now,
        Run.lateness_ms: _ms(now - origin.scheduled_for) if origin.scheduled_for else None,
        Run.caller: caller,
        Run.payload: payload,
    }
    params = [field.db_value(value) for field, value in values.items()]
    columns = tuple(values)  # the statement's columns, in the order of these values

    def build(param: str) -> str:
        returning = "" if is_sqlite() else f" RETURNING {Run.id.column_name}"  # SQLite: lastrowid
        return insert_sql(Run, columns, param) + returning

    cursor = rendered.execute("run.insert_running", build, params)
    run_id = cursor.lastrowid if is_sqlite() else cursor.fetchone()[0]
    return Run(id=run_id, **{field.name: value for field, value in values.items()})


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


def finish_run(
    run_id: int,
    status: str,
    now: datetime,
    *,
    only_from: tuple[str, ...] = ("running", "abandoned"),
    **outcome: Any,
) -> bool:
    """Record the end of a run that is in one of `only_from`; return False if it is not.

    By default a running run: one marked *abandoned* because its heartbeat lapsed takes the
    real outcome when it comes, the truth arriving late beats a guess.
    """
    run = Run.select(Run.id, Run.status, Run.job).where(Run.id == run_id).first()
    if run is None or run.status not in only_from:
        return False
    return finish(run, status, now, **outcome)


@dataclass(frozen=True)
class Ending:
    """What the endpoint records at a run's end."""

    duration_ms: int
    summary: Any = None
    error: str | None = None
    error_stack: str | None = None
    log: str | None = None
    progress_done: int | None = None
    progress_total: int | None = None


_ENDING: tuple[Any, ...] = (
    Run.status, Run.finished_at, Run.duration_ms, Run.summary, Run.error, Run.error_stack,
    Run.log, Run.progress_done, Run.progress_total,
)  # fmt: skip


def end_running(run_id: int, job_id: int, status: str, now: datetime, ending: Ending) -> bool:
    """Record the end of the endpoint's own run, as `finish_run` does for a run still
    *running* or *abandoned* (the truth arriving late beats a guess), in two rendered
    statements; return False if it is in neither status. Inside the caller's transaction
    if there is one (no savepoint: if this raises, that transaction is to be rolled back;
    on PostgreSQL it is aborted), else in its own."""
    values = (
        status, now, ending.duration_ms, ending.summary, ending.error, ending.error_stack,
        ending.log, ending.progress_done, ending.progress_total,
    )  # fmt: skip
    params = [field.db_value(value) for field, value in zip(_ENDING, values, strict=True)]
    with joined_write_transaction():
        # *running* first (the common case, one statement); an *abandoned* one was counted
        # as a failure already, so it is not counted again (a success still resets).
        for was in ("running", "abandoned"):
            if rendered.execute("run.end", _end_sql, [*params, run_id, was]).rowcount:
                _count_on_job(job_id, status, now, runs=1 if was == "running" else 0)
                return True
    return False


def _end_sql(param: str) -> str:
    return (
        f"UPDATE {Run._meta.table_name} SET {assignments(_ENDING, param)} "
        f"WHERE {Run.id.column_name} = {param} AND {Run.status.column_name} = {param}"
    )


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
        if updated:  # an *abandoned* run was counted as a failure already: not again
            _count_on_job(run.job_id, status, now, runs=0 if run.status == "abandoned" else 1)
    if not updated:
        return False
    run.status = status
    for name, value in outcome.items():
        setattr(run, name, value)
    return True


def _count_on_job(job_id: int, status: str, now: datetime, runs: int = 1) -> None:
    """Count `runs` runs ending `status` on the job: failures add up, a success resets."""
    if status == "missed":
        return  # nothing ran: the job's last run is still the one before
    if status in FAILED_STATUSES:
        kept, added = 1, runs
    elif status == "success":
        kept, added = 0, 0
    else:  # skipped, canceled: neither a failure nor a recovery
        kept, added = 1, 0
    values = (Job.last_run_at.db_value(now), status, kept, added, job_id)
    rendered.execute("job.count_run", _count_on_job_sql, values)


def _count_on_job_sql(param: str) -> str:
    failures = Job.consecutive_failures.column_name
    return (
        f"UPDATE {Job._meta.table_name} SET {Job.last_run_at.column_name} = {param}, "
        f"{Job.last_status.column_name} = {param}, "
        f"{failures} = {failures} * {param} + {param} "  # kept (0 or 1) times, plus the failures
        f"WHERE {Job.id.column_name} = {param}"
    )


def abandon_stale(job: Job, now: datetime, lease: timedelta) -> int:
    """Mark the job's runs whose heartbeat is older than `lease` *abandoned*; return how many."""
    stale = (Run.job == job) & (Run.status == "running") & (Run.heartbeat_at < now - lease)
    probe = (job.id, "running", Run.heartbeat_at.db_value(now - lease))
    if rendered.execute("run.stale_probe", _stale_probe_sql, probe).fetchone() is None:
        return 0  # the common case (every call of an endpoint): one indexed read, no write
    with write_transaction():
        # One UPDATE, then the job: runs before the job row, the order in which an ending run
        # takes them too, so the two can never wait on each other (PostgreSQL deadlock).
        count = int(
            Run.update(status="abandoned", finished_at=now, error=ABANDONED_BY_WORKER)
            .where(stale)
            .execute()
        )
        if count:
            _count_on_job(job.id, "abandoned", now, count)
    return count


def _stale_probe_sql(param: str) -> str:
    return (
        f"SELECT 1 FROM {Run._meta.table_name} WHERE {Run.job.column_name} = {param} "
        f"AND {Run.status.column_name} = {param} AND {Run.heartbeat_at.column_name} < {param} "
        "LIMIT 1"
    )


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


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)
