"""Outcomes stored in a batch: the plain successes together, the same as one by one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.store import claims
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.outcomes import Seen
from gateway.store.outcomes import record_outcome
from gateway.store.outcomes import record_plain_successes
from gateway.store.runs import enqueue
from tests.fakes import FakeClock

APP = "http://127.0.0.1:8000"


def dispatched(clock: FakeClock, name: str, **fields: Any) -> Run:
    now = clock.now()
    job = Job.create(name=name, url=f"/crons/{name}", created_at=now, updated_at=now, **fields)
    run = enqueue(job, "manual", now)
    [sent] = [d for d in claims.take_due_runs(now, "gw", APP) if d.run_id == run.id]
    return Run.get_by_id(sent.run_id)


def ok(**changes: Any) -> Seen:
    fields: dict[str, Any] = {
        "status": "success",
        "http_status": 200,
        "duration_ms": 12,
        "response_excerpt": '{"status": "success"}',
        "summary": {"deleted": 3},
        "lateness_ms": 4,
    }
    return Seen(**(fields | changes))


def stored(run: Run) -> tuple[Any, ...]:
    run = Run.get_by_id(run.id)
    job = Job.get_by_id(run.job_id)
    return (
        run.status, run.finished_at, run.duration_ms, run.summary, run.error, run.http_status,
        run.response_excerpt, run.lateness_ms, job.last_status, job.last_run_at,
        job.consecutive_failures,
    )  # fmt: skip


def test_plain_successes_are_stored_together_as_one_by_one_would(db: str, clock: FakeClock) -> None:
    one, other = dispatched(clock, "one", consecutive_failures=2), dispatched(clock, "other")
    clock.advance(seconds=1)
    assert record_plain_successes([(one.id, ok())], clock.now()) == {one.id}
    record_outcome(other.id, ok(), clock.now())
    assert stored(one) == stored(other)[:-1] + (0,)
    assert stored(one)[:2] == ("success", clock.now())


def test_anything_but_a_plain_success_is_left_to_record_outcome(db: str, clock: FakeClock) -> None:
    failed, skipped, attached, fine = (dispatched(clock, n) for n in ("f", "s", "a", "ok"))
    Run.update(status="running").where(Run.id == attached.id).execute()  # the endpoint attached
    batch = [
        (failed.id, ok(status="error", error="HTTP 500")),
        (skipped.id, ok(status="skipped")),
        (attached.id, ok()),
        (fine.id, ok()),
        (fine.id + 1000, ok()),  # gone
    ]
    assert record_plain_successes(batch, clock.now() + timedelta(seconds=1)) == {fine.id}
    assert [Run.get_by_id(r.id).status for r in (failed, skipped, attached, fine)] == [
        "dispatched",
        "dispatched",
        "running",
        "success",
    ]
