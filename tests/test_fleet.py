"""Fleet pauses: many jobs at once, a note, an end time, and a fate for the paused slots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.store import claims
from gateway.store.fleet import pause_many
from gateway.store.fleet import resume_many
from gateway.store.jobs import create_job
from gateway.store.jobs import pause_job
from gateway.store.jobs import resume_due
from gateway.store.jobs import resume_job
from gateway.store.models import Job
from gateway.store.models import Run
from tests.fakes import FakeClock


@pytest.fixture
def jobs(db: str, clock: FakeClock, settings: Settings) -> list[Job]:
    specs: list[dict[str, Any]] = [
        {"name": "a", "url": "/crons/a", "schedule": "*/10 * * * *", "tags": ["db"]},
        {"name": "b", "url": "/crons/b", "schedule": "*/10 * * * *", "tags": ["db", "x"]},
        {"name": "c", "url": "/crons/c", "schedule": "*/10 * * * *", "tags": ["x"]},
    ]
    return [create_job(spec, clock.now(), settings=settings) for spec in specs]


def runs_of(name: str) -> list[Run]:
    return list(Run.select().join(Job).where(Job.name == name).order_by(Run.scheduled_for))


def states(*names: str) -> list[tuple[str, bool]]:
    return [(j.name, j.enabled) for j in Job.select().where(Job.name.in_(names)).order_by(Job.name)]


def test_pausing_by_tag_pauses_exactly_those_jobs_with_the_note(
    jobs: list[Job], clock: FakeClock
) -> None:
    until = clock.now() + timedelta(hours=1)
    paused = pause_many(names=None, tag="db", now=clock.now(), note="db migration", until=until)
    assert sorted(j.name for j in paused) == ["a", "b"]
    assert states("a", "b", "c") == [("a", False), ("b", False), ("c", True)]
    assert Job.get(Job.name == "a").pause_note == "db migration"
    assert Job.get(Job.name == "a").paused_until == until


def test_the_missed_fate_records_each_paused_slot_on_resume(
    jobs: list[Job], clock: FakeClock
) -> None:
    pause_many(names=["a"], tag=None, now=clock.now(), fate="missed")
    clock.advance(minutes=35)
    claims.claim_due_slots(clock.now())  # a paused job is not claimed; the others are
    assert runs_of("a") == [] and len(runs_of("c")) == 3
    resume_many(names=["a"], tag=None, now=clock.now())
    assert [r.status for r in runs_of("a")] == ["missed", "missed", "missed"]  # :10 :20 :30
    assert Job.get(Job.name == "a").next_run_at == clock.now() + timedelta(minutes=5)


def test_the_once_fate_runs_once_on_resume(jobs: list[Job], clock: FakeClock) -> None:
    pause_many(names=["a"], tag=None, now=clock.now(), fate="once")
    clock.advance(minutes=35)
    resume_job("a", clock.now())
    assert [r.status for r in runs_of("a")] == ["missed", "missed", "queued"]


def test_a_pause_with_an_end_time_ends_by_itself(jobs: list[Job], clock: FakeClock) -> None:
    pause_many(
        names=["a", "c"], tag=None, now=clock.now(), until=clock.now() + timedelta(minutes=30)
    )
    clock.advance(minutes=29)
    assert resume_due(clock.now()) == []
    clock.advance(minutes=1)
    assert sorted(j.name for j in resume_due(clock.now())) == ["a", "c"]
    assert states("a", "c") == [("a", True), ("c", True)]
    assert Job.get(Job.name == "a").paused_until is None


def test_a_plain_pause_expects_no_slots(jobs: list[Job], clock: FakeClock) -> None:
    pause_job("a", clock.now())
    clock.advance(minutes=35)
    resume_job("a", clock.now())
    assert runs_of("a") == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"names": None, "tag": None}, "tag"),
        ({"names": ["a"], "tag": "db"}, "tag"),
        ({"names": [], "tag": None}, "names"),
        ({"names": ["a", "nope"], "tag": None}, "name"),
        ({"names": None, "tag": "none-such"}, "tag"),
        ({"names": ["a"], "tag": None, "fate": "forever"}, "fate"),
        ({"names": ["a"], "tag": None, "note": "x" * 1001}, "note"),
    ],
)
def test_a_bad_selection_changes_nothing(
    jobs: list[Job], clock: FakeClock, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(GatewayError) as e:
        pause_many(now=clock.now(), **kwargs)
    assert e.value.field == field
    assert states("a", "b", "c") == [("a", True), ("b", True), ("c", True)]


def test_an_end_time_in_the_past_is_refused(jobs: list[Job], clock: FakeClock) -> None:
    with pytest.raises(GatewayError) as e:
        pause_many(names=["a"], tag=None, now=clock.now(), until=clock.now() - timedelta(1))
    assert e.value.field == "until" and states("a") == [("a", True)]
