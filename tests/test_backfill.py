"""Backfill: one queued run per slot of a past range, slots with a run skipped, capped."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.backfill import backfill
from gateway.backfill import slots_between
from gateway.cli import main
from gateway.errors import GatewayError
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import enqueue
from gateway.store.runs import finish
from tests.fakes import FakeClock

DAY1 = datetime(2026, 11, 1, tzinfo=UTC)
DAY4 = datetime(2026, 11, 4, tzinfo=UTC)


def _job(clock: FakeClock, schedule: str | None = "30 2 * * *", tz: str = "UTC") -> Job:
    now = clock.now()
    return Job.create(
        name="report", url="/crons/report", schedule=schedule, tz=tz, created_at=now, updated_at=now
    )


def test_each_slot_in_the_range_gets_a_backfill_run_due_now(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    plan = backfill("report", DAY1, DAY4, clock.now())
    assert [s.isoformat() for s in plan.slots] == [
        "2026-11-01T02:30:00+00:00",
        "2026-11-02T02:30:00+00:00",
        "2026-11-03T02:30:00+00:00",
    ]
    runs = list(Run.select().where(Run.job == job).order_by(Run.scheduled_for))
    assert [(r.trigger, r.status, r.due_at) for r in runs] == [
        ("backfill", "queued", clock.now())
    ] * 3
    assert [r.scheduled_for for r in runs] == plan.slots
    assert sorted(plan.queued) == sorted(r.execution_id for r in runs)


def test_the_range_is_half_open_and_in_the_jobs_zone(db: str, clock: FakeClock) -> None:
    _job(clock, "0 0 * * *", tz="Europe/Berlin")
    slots = slots_between("report", DAY1, DAY4, 100)
    assert [s.isoformat() for s in slots] == [
        "2026-11-01T23:00:00+00:00",
        "2026-11-02T23:00:00+00:00",
        "2026-11-03T23:00:00+00:00",
    ]
    assert slots_between("report", DAY1.replace(hour=23), DAY4, 100)[0] == DAY1.replace(hour=23)


def test_slots_that_already_have_a_run_are_skipped(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    enqueue(job, "schedule", clock.now(), scheduled_for=datetime(2026, 11, 2, 2, 30, tzinfo=UTC))
    plan = backfill("report", DAY1, DAY4, clock.now())
    assert (len(plan.queued), plan.existing) == (2, [datetime(2026, 11, 2, 2, 30, tzinfo=UTC)])
    again = backfill("report", DAY1, DAY4, clock.now())
    assert (again.queued, len(again.existing)) == ([], 3)
    assert Run.select().count() == 3


def test_slots_that_were_only_missed_get_their_next_attempt(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    slot = datetime(2026, 11, 2, 2, 30, tzinfo=UTC)
    missed = enqueue(job, "schedule", clock.now(), scheduled_for=slot)
    finish(missed, "missed", clock.now(), error="missed 1 slot(s) (gateway down)")
    plan = backfill("report", DAY1, DAY4, clock.now())
    assert (len(plan.queued), plan.existing) == (3, [])
    again = list(Run.select().where(Run.scheduled_for == slot).order_by(Run.attempt))
    assert [(r.attempt, r.trigger, r.status) for r in again] == [
        (1, "schedule", "missed"),
        (2, "backfill", "queued"),
    ]
    assert again[1].execution_id == missed.execution_id  # one execution: missed, then run
    assert backfill("report", DAY1, DAY4, clock.now()).queued == []  # queued once only


def test_a_dry_run_queues_nothing(db: str, clock: FakeClock) -> None:
    _job(clock)
    plan = backfill("report", DAY1, DAY4, clock.now(), dry_run=True)
    assert (len(plan.slots), plan.queued, Run.select().count()) == (3, [], 0)


@pytest.mark.parametrize(
    ("schedule", "start", "end", "error"),
    [
        ("* * * * *", DAY1, DAY4, "more than 1000 slots"),
        ("30 2 * * *", DAY4, DAY1, "to: must be after from"),
        (None, DAY1, DAY4, "has no schedule"),
    ],
)
def test_bad_ranges_are_refused_and_nothing_is_queued(
    db: str, clock: FakeClock, schedule: str | None, start: datetime, end: datetime, error: str
) -> None:
    _job(clock, schedule)
    with pytest.raises(GatewayError, match=error):
        backfill("report", start, end, clock.now())
    assert Run.select().count() == 0


def test_many_slots_are_found_past_one_page(db: str, clock: FakeClock) -> None:
    _job(clock, "* * * * *")
    assert len(slots_between("report", DAY1, DAY4, 5000)) == 3 * 24 * 60


@pytest.fixture
def env(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db)
    monkeypatch.setenv("GATEWAY_CONFIG", str(tmp_path / "none.toml"))


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


RANGE = ["--from", "2026-11-01T00:00Z", "--to", "2026-11-04T00:00Z"]


def test_the_command_waits_with_progress_and_summarizes(
    env: None, clock: FakeClock, capsys: Any
) -> None:
    _job(clock)

    def play_gateway() -> None:  # ends each queued run, as the gateway would
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Run.select().count() < 3:
            time.sleep(0.05)
        for i, run in enumerate(Run.select().order_by(Run.id)):
            finish(run, "error" if i == 0 else "success", clock.now(), duration_ms=5)

    player = threading.Thread(target=play_gateway)
    player.start()
    code, out, err = _cli(["backfill", "report", *RANGE, "--wait"], capsys)
    player.join()
    assert code == 1  # one run failed
    assert out == (
        "report: 3 slots (2026-11-01T02:30:00+00:00 .. 2026-11-03T02:30:00+00:00); "
        "queued 3 - 0 already had a run; 1 error, 2 success\n"
    )
    assert "backfill" in err


def test_the_command_names_max_when_the_range_is_too_big(
    env: None, clock: FakeClock, capsys: Any
) -> None:
    _job(clock, "*/5 * * * *")
    code, out, err = _cli(["backfill", "report", *RANGE, "--max", "100", "--json"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: more than 100 slots") and "--max" in err
    code, out, _ = _cli(["backfill", "report", *RANGE, "--dry-run", "--json"], capsys)
    assert (code, json.loads(out)["slots"], json.loads(out)["queued"]) == (0, 864, 0)


def test_the_command_wants_offsets(env: None, capsys: Any) -> None:
    code, _, err = _cli(["backfill", "report", "--from", "2026-11-01", "--to", "x"], capsys)
    assert code == 2 and "give an offset" in err
