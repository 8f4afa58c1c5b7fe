"""Outcomes: what the gateway saw over HTTP, merged with what the endpoint recorded itself."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from typing import cast

from gateway.scheduler.planner import should_auto_pause
from gateway.store.bulk import assignments
from gateway.store.bulk import execute_many
from gateway.store.bulk import in_list
from gateway.store.db import database
from gateway.store.db import is_sqlite
from gateway.store.db import write_transaction
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import FAILED_STATUSES
from gateway.store.runs import finish


@dataclass(frozen=True)
class Seen:
    """One HTTP call as the gateway saw it."""

    status: str  # success | error | timeout | skipped
    http_status: int | None
    duration_ms: int
    response_excerpt: str | None = None
    summary: Any = None
    error: str | None = None
    accepted: bool = False  # 202: the endpoint goes on in the background
    lateness_ms: int | None = None  # the request left this long after its slot (or due time)


def record_outcome(run_id: int, seen: Seen, now: datetime) -> Run | None:
    """Store what the gateway saw and return the run as it now stands (None if it vanished).

    The endpoint's own record wins: if it already ended the run, only the HTTP facts are added.
    If it never attached (no database, another database, refused before attaching), the
    gateway's view ends the run. A gateway timeout ends a still-running run as *timeout* and
    asks the job to stop.
    """
    with write_transaction():
        # Only what deciding needs (and a retry copies): the hot path of every call.
        run: Run | None = Run.select(*RUN_DECIDING).where(Run.id == run_id).first()
        if run is None:
            return None
        http = {
            "http_status": seen.http_status,
            "response_excerpt": seen.response_excerpt,
            "lateness_ms": seen.lateness_ms,
        }
        ended = False
        if run.status == "dispatched":  # the endpoint never attached: the gateway's view ends it
            status = "success" if seen.accepted else seen.status  # 202 that records nothing
            error = None if seen.accepted else seen.error
            ended = finish(
                run, status, now, duration_ms=seen.duration_ms, summary=seen.summary,
                error=error, **http,
            )  # fmt: skip
        if not ended:
            Run.update(http).where(Run.id == run.id).execute()
            for name, value in http.items():
                setattr(run, name, value)
        if run.status == "running" and seen.status == "timeout":
            Run.update(cancel_requested_at=now).where(Run.id == run.id).execute()
            if not finish(run, "timeout", now, duration_ms=seen.duration_ms, error=seen.error):
                run = Run.get_by_id(run.id)  # it ended meanwhile: read what it wrote
        elif not ended and run.status == "dispatched":  # moved meanwhile: read what was written
            run = Run.get_by_id(run.id)
        if run.status in FAILED_STATUSES:  # only a failure can cross the auto-pause threshold
            _auto_pause(run.job_id, now)
    return run


def record_plain_successes(batch: list[tuple[int, Seen]], now: datetime) -> set[int]:
    """Store the common outcome of a batch in a few statements: a success (not *skipped*) for a
    run still *dispatched* (the endpoint recorded nothing itself), which only ends the run and
    marks its job's last run. Return the run ids stored; the rest is for `record_outcome`.

    It does what `record_outcome` does for such a run, for a whole batch: one read of the
    statuses (rows locked on PostgreSQL, so they cannot move before the update), one UPDATE
    statement run for every row (executemany), one UPDATE of their jobs, instead of a savepoint
    and three statements each (measured: same-1000, gateway CPU 3.09 → 2.16 ms a call).
    """
    plain = {run_id: seen for run_id, seen in batch if seen.status == "success" and not seen.error}
    if not plain:
        return set()
    with write_transaction():
        query = Run.select(Run.id, Run.job).where(
            in_list(Run.id, list(plain)) & (Run.status == "dispatched")
        )
        if not is_sqlite():
            query = query.order_by(Run.id).for_update()
        pairs = cast(Iterable[tuple[int, int]], query.tuples())  # (run, job): no model a row
        found = dict(pairs)
        if not found:
            return set()
        fields = (
            Run.status, Run.finished_at, Run.duration_ms, Run.summary, Run.error,
            Run.http_status, Run.response_excerpt, Run.lateness_ms,
        )  # fmt: skip
        param = database.obj.param
        sql = (
            f"UPDATE {Run._meta.table_name} SET {assignments(fields, param)} "
            f"WHERE {Run.id.column_name} = {param}"
        )
        finished_at = Run.finished_at.db_value(now)
        rows = [
            (
                "success",
                finished_at,
                plain[run_id].duration_ms,
                Run.summary.db_value(plain[run_id].summary),
                None,
                plain[run_id].http_status,
                plain[run_id].response_excerpt,
                plain[run_id].lateness_ms,
                run_id,
            )
            for run_id in found
        ]
        execute_many(sql, rows)
        Job.update(last_run_at=now, last_status="success", consecutive_failures=0).where(
            in_list(Job.id, sorted(set(found.values())))
        ).execute()
    return set(found)


RUN_DECIDING = (
    Run.id,
    Run.execution_id,
    Run.job,
    Run.trigger,
    Run.scheduled_for,
    Run.attempt,
    Run.status,
    Run.payload,
)


def _auto_pause(job_id: int, now: datetime) -> None:
    job = Job.get_by_id(job_id)
    if job.enabled and should_auto_pause(job.consecutive_failures, job.auto_pause_after):
        Job.update(
            enabled=False,
            next_run_at=None,
            pause_note=f"paused automatically after {job.consecutive_failures} failures in a row",
            updated_at=now,
        ).where(Job.id == job_id).execute()


def queue_retry(run: Run, due_at: datetime, now: datetime) -> bool:
    """Queue the next attempt of `run`'s slot at `due_at`; False if it was already queued."""
    inserted = (
        Run.insert(
            execution_id=run.execution_id,
            job=run.job_id,
            trigger="retry",
            scheduled_for=run.scheduled_for,
            attempt=run.attempt + 1,
            status="queued",
            queued_at=now,
            due_at=due_at,
            payload=run.payload,
        )
        .on_conflict_ignore()
        .execute()
    )
    return bool(inserted)
