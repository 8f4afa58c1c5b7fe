"""Runs: start, attach to the gateway's row, heartbeat, finish, abandon, list; a row per attempt."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

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
        run.status, run.started_at, run.heartbeat_at, run.caller = "running", now, now, caller
        run.save()
        return run


def started_run(execution_id: str, attempt: int) -> Run | None:
    """Return the *running* row of (execution id, attempt), if there is one."""
    return Run.get_or_none(
        (Run.execution_id == execution_id) & (Run.attempt == attempt) & (Run.status == "running")
    )


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


def _count_on_job(job_id: int, status: str, now: datetime, runs: int = 1) -> None:
    if status == "missed":
        return  # nothing ran: the job's last run is still the one before
    failures: Any
    if status in FAILED_STATUSES:
        failures = Job.consecutive_failures + runs
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
    if not Run.select(Run.id).where(stale).exists():
        return 0  # the common case: one indexed read, no write
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
