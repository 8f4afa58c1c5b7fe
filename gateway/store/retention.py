"""Retention: delete finished runs older than N days or beyond the newest N per job, in batches."""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from peewee import fn

from gateway.config import Settings
from gateway.store.db import write_transaction
from gateway.store.models import Run
from gateway.store.runs import TERMINAL_STATUSES

DEFAULT_BATCH = 1000


@dataclass(frozen=True)
class PruneReport:
    """What a prune deleted (or, with dry_run, would delete)."""

    by_age: int
    by_count: int
    batches: int
    dry_run: bool = False

    @property
    def deleted(self) -> int:
        return self.by_age + self.by_count

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "deleted": self.deleted}


def prune(
    now: datetime,
    *,
    days: int | None,
    per_job: int | None,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
) -> PruneReport:
    """Delete terminal runs queued before `now - days` and beyond the newest `per_job` per job.

    Runs still queued, dispatched or running are never touched. Each batch of at most `batch`
    rows is its own short transaction, so the gateway's claims wait for one batch at most.
    None or 0 switches a rule off. With `dry_run`, count instead of deleting.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    by_age = batches = 0
    if days:
        old = Run.queued_at < now - timedelta(days=days)
        by_age, batches = _delete(old, batch, dry_run)
    by_count = 0
    if per_job:
        for job_id, boundary in _over_limit(per_job):
            # The newest `per_job` runs of any status stay; older finished ones go.
            deleted, spent = _delete((Run.job == job_id) & (Run.id <= boundary), batch, dry_run)
            by_count, batches = by_count + deleted, batches + spent
    return PruneReport(by_age=by_age, by_count=by_count, batches=batches, dry_run=dry_run)


def prune_once(settings: Settings, now: datetime) -> PruneReport:
    """Prune by the configured retention; the gateway loop calls this once a day."""
    return prune(now, days=settings.retention_days, per_job=settings.retention_per_job)


def _delete(condition: Any, batch: int, dry_run: bool) -> tuple[int, int]:
    """Delete finished runs matching `condition` in batches; return (rows, batches)."""
    where = condition & Run.status.in_(TERMINAL_STATUSES)
    if dry_run:
        return Run.select().where(where).count(), 0
    total = batches = 0
    while True:
        with write_transaction():  # BEGIN IMMEDIATE: read then delete, never 'locked'
            ids = [r.id for r in Run.select(Run.id).where(where).order_by(Run.id).limit(batch)]
            if ids:
                # Re-check the status: a row cannot become active again, but say so in SQL.
                total += Run.delete().where(Run.id.in_(ids) & where).execute()
        if not ids:
            return total, batches
        batches += 1
        if len(ids) < batch:
            return total, batches


def _over_limit(per_job: int) -> list[tuple[int, int]]:
    """Return (job id, id of its newest run that falls outside the newest `per_job`)."""
    query = Run.select(Run.job).group_by(Run.job).having(fn.COUNT(Run.id) > per_job)
    crowded: list[int] = [row[0] for row in query.tuples()]  # type: ignore[index]
    found: list[tuple[int, int]] = []
    for job_id in crowded:
        boundary = (
            Run.select(Run.id)
            .where(Run.job == job_id)
            .order_by(Run.id.desc())
            .offset(per_job)
            .limit(1)
            .scalar()
        )
        if boundary is not None:
            found.append((job_id, boundary))
    return found
