"""Job service functions on both backends: next_run_at from a FakeClock, errors change nothing."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

import pytest

from gateway.config import Settings
from gateway.errors import ConflictError
from gateway.errors import InvalidSchedule
from gateway.errors import NotFoundError
from gateway.errors import ValidationError
from gateway.store import jobs
from gateway.store.models import Job
from gateway.store.models import Run
from tests.fakes import FakeClock

REPORT = {"name": "report", "url": "/crons/report", "schedule": "30 2 * * *", "tz": "Europe/Berlin"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def row(name: str = "report") -> dict[str, Any]:
    """Return the stored job as its public dict, read back from the database."""
    return jobs.job_as_dict(Job.get(Job.name == name))


@pytest.fixture
def report(settings: Settings, clock: FakeClock) -> Job:
    return jobs.create_job(REPORT, clock.now(), settings=settings)


def test_create_computes_the_first_slot_in_the_jobs_zone(report: Job) -> None:
    # 2026-11-23 09:00 UTC; 02:30 in Berlin (UTC+1 in winter) is 01:30 UTC the next day.
    assert report.next_run_at == utc("2026-11-24 01:30")
    stored = row()
    assert stored["next_run_at"] == "2026-11-24T01:30:00+00:00"
    assert (stored["source"], stored["state"], stored["created_at"]) == (
        "api",
        "enabled",
        "2026-11-23T09:00:00+00:00",
    )


def test_create_without_schedule_runs_only_on_demand(settings: Settings, clock: FakeClock) -> None:
    job = jobs.create_job({"name": "adhoc", "url": "/x"}, clock.now(), settings=settings)
    assert job.next_run_at is None and row("adhoc")["schedule"] is None


def test_create_takes_the_source(settings: Settings, clock: FakeClock) -> None:
    jobs.create_job({"name": "ui-made", "url": "/x"}, clock.now(), settings=settings, source="ui")
    assert row("ui-made")["source"] == "ui"


def test_a_live_name_conflicts(report: Job, settings: Settings, clock: FakeClock) -> None:
    with pytest.raises(ConflictError) as info:
        jobs.create_job({**REPORT, "timeout": 5}, clock.now(), settings=settings)
    assert info.value.status == 409 and info.value.field == "name"
    assert row()["timeout"] == 600


def test_a_deleted_name_can_be_taken_again_with_its_history(
    report: Job, settings: Settings, clock: FakeClock
) -> None:
    jobs.trigger_job("report", clock.now())
    jobs.delete_job("report", clock.advance(hours=1))
    again = jobs.create_job(
        {"name": "report", "url": "/crons/v2", "schedule": "0 * * * *"},
        clock.now(),
        settings=settings,
    )
    assert again.id == report.id
    stored = row()
    assert (stored["state"], stored["url"], stored["tz"], stored["deleted_at"]) == (
        "enabled",
        "/crons/v2",
        "UTC",
        None,
    )
    assert stored["next_run_at"] == "2026-11-23T11:00:00+00:00"
    assert Run.select().where(Run.job == report.id).count() == 1


def test_invalid_input_creates_nothing(settings: Settings, clock: FakeClock) -> None:
    with pytest.raises(InvalidSchedule):
        jobs.create_job({**REPORT, "schedule": "0 0 31 2 *"}, clock.now(), settings=settings)
    with pytest.raises(ValidationError):
        jobs.create_job({**REPORT, "timeout": "ten"}, clock.now(), settings=settings)
    assert Job.select().count() == 0


def test_update_recomputes_next_run_when_the_schedule_changes(
    report: Job, settings: Settings, clock: FakeClock
) -> None:
    clock.advance(minutes=10)
    job = jobs.update_job("report", {"schedule": "*/15 * * * *"}, clock.now(), settings=settings)
    assert job.next_run_at == utc("2026-11-23 09:15")
    job = jobs.update_job("report", {"tz": "America/New_York"}, clock.now(), settings=settings)
    assert row()["next_run_at"] == "2026-11-23T09:15:00+00:00"
    jobs.update_job("report", {"schedule": "0 12 * * *"}, clock.now(), settings=settings)
    assert row()["next_run_at"] == "2026-11-23T17:00:00+00:00"  # noon in New York


def test_update_leaves_the_slot_alone_for_other_fields(
    report: Job, settings: Settings, clock: FakeClock
) -> None:
    clock.advance(hours=20)  # past the stored slot: the gateway, not an edit, advances it
    jobs.update_job("report", {"timeout": 30, "tags": ["ops"]}, clock.now(), settings=settings)
    stored = row()
    assert (stored["timeout"], stored["tags"]) == (30, ["ops"])
    assert stored["next_run_at"] == "2026-11-24T01:30:00+00:00"
    assert stored["updated_at"] == "2026-11-24T05:00:00+00:00"


def test_update_checks_the_schedule_with_the_stored_zone_and_name(
    report: Job, settings: Settings, clock: FakeClock
) -> None:
    job = jobs.update_job("report", {"schedule": "H H * * *"}, clock.now(), settings=settings)
    assert job.next_run_at is not None
    with pytest.raises(InvalidSchedule):
        jobs.update_job("report", {"tz": "Nowhere/Land"}, clock.now(), settings=settings)


@pytest.mark.parametrize(
    "changes",
    [
        {"schedule": "0 0 30 2 *"},
        {"timeout": 0},
        {"retries": 2},
        {"name": "renamed"},
        {"headers": {"Authorization": "Bearer x"}},
        {"url": "https://evil.example/x"},
    ],
)
def test_a_bad_update_changes_nothing(
    report: Job, settings: Settings, clock: FakeClock, changes: dict[str, Any]
) -> None:
    before = row()
    with pytest.raises((ValidationError, InvalidSchedule)):
        jobs.update_job("report", changes, clock.advance(minutes=1), settings=settings)
    assert row() == before


def test_unknown_and_deleted_jobs_are_not_found(
    report: Job, settings: Settings, clock: FakeClock
) -> None:
    now = clock.now()
    calls = [
        lambda: jobs.update_job("nope", {"timeout": 5}, now, settings=settings),
        lambda: jobs.pause_job("nope", now),
        lambda: jobs.resume_job("nope", now),
        lambda: jobs.delete_job("nope", now),
        lambda: jobs.trigger_job("nope", now),
    ]
    for call in calls:
        with pytest.raises(NotFoundError, match="no job named 'nope'"):
            call()
    jobs.delete_job("report", now)
    with pytest.raises(NotFoundError, match="'report' is deleted"):
        jobs.trigger_job("report", now)
    with pytest.raises(NotFoundError):
        jobs.delete_job("report", now)


def test_pause_stops_scheduling_and_resume_restarts_from_now(report: Job, clock: FakeClock) -> None:
    jobs.pause_job("report", clock.now(), note="warehouse migration")
    stored = row()
    assert (stored["state"], stored["enabled"], stored["next_run_at"], stored["pause_note"]) == (
        "paused",
        False,
        None,
        "warehouse migration",
    )
    clock.advance(days=3)  # three slots pass while paused: none is run or recorded
    job = jobs.resume_job("report", clock.now())
    assert job.next_run_at == utc("2026-11-27 01:30")
    stored = row()
    assert (stored["state"], stored["pause_note"]) == ("enabled", None)
    assert Run.select().count() == 0


def test_resume_resets_the_failure_count(report: Job, clock: FakeClock) -> None:
    Job.update(consecutive_failures=5, enabled=False).execute()
    jobs.resume_job("report", clock.now())
    assert row()["consecutive_failures"] == 0


def test_a_long_pause_note_is_refused(report: Job, clock: FakeClock) -> None:
    with pytest.raises(ValidationError, match="note"):
        jobs.pause_job("report", clock.now(), note="x" * 1001)
    assert row()["state"] == "enabled"


def test_delete_is_soft(report: Job, clock: FakeClock) -> None:
    jobs.trigger_job("report", clock.now())
    jobs.delete_job("report", clock.advance(minutes=5))
    stored = row()
    assert (stored["state"], stored["enabled"], stored["next_run_at"]) == ("deleted", False, None)
    assert stored["deleted_at"] == "2026-11-23T09:05:00+00:00"
    assert Run.select().count() == 1
    assert [j.name for j in jobs.list_jobs()] == []
    assert [j.name for j in jobs.list_jobs(include_deleted=True)] == ["report"]


def test_list_filters_by_tag_exactly(settings: Settings, clock: FakeClock) -> None:
    for name, tags in (("b", ["ops"]), ("a", ["ops", "x"]), ("c", ["ops_x"]), ("d", [])):
        jobs.create_job({"name": name, "url": "/x", "tags": tags}, clock.now(), settings=settings)
    assert [j.name for j in jobs.list_jobs()] == ["a", "b", "c", "d"]
    assert [j.name for j in jobs.list_jobs(tag="ops")] == ["a", "b"]
    assert [j.name for j in jobs.list_jobs(tag="ops-x")] == []


def test_trigger_queues_a_manual_run_now(report: Job, clock: FakeClock) -> None:
    run = jobs.trigger_job("report", clock.now(), payload={"days": 2})
    stored = Run.get_by_id(run.id)
    assert (stored.trigger, stored.status, stored.payload) == ("manual", "queued", {"days": 2})
    assert stored.due_at == clock.now() and stored.scheduled_for is None
    assert jobs.trigger_job("report", clock.now()).payload is None  # the job's own payload


def test_trigger_works_on_a_paused_job(report: Job, clock: FakeClock) -> None:
    jobs.pause_job("report", clock.now())
    assert jobs.trigger_job("report", clock.now()).status == "queued"


def test_trigger_refuses_a_payload_that_is_not_json(report: Job, clock: FakeClock) -> None:
    with pytest.raises(ValidationError, match="payload"):
        jobs.trigger_job("report", clock.now(), payload={"when": clock.now()})
    assert Run.select().count() == 0


def test_max_runs_reached_means_no_next_run(settings: Settings, clock: FakeClock) -> None:
    job = jobs.create_job({**REPORT, "max_runs": 2}, clock.now(), settings=settings)
    Job.update(run_count=2).where(Job.id == job.id).execute()
    assert (
        jobs.update_job("report", {"max_runs": 2}, clock.now(), settings=settings).next_run_at
        is None
    )
    assert jobs.update_job("report", {"max_runs": 3}, clock.now(), settings=settings).next_run_at


def test_job_as_dict_is_json_ready(report: Job) -> None:
    public = jobs.job_as_dict(report)
    assert public["name"] == "report" and "declared" not in public
    for key in ("next_run_at", "created_at", "updated_at"):
        assert public[key].endswith("+00:00")
