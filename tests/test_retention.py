"""Retention: prune by age and by count per job, in batches, never touching active runs."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.config import Settings
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.retention import prune
from gateway.store.retention import prune_once
from gateway.store.runs import new_execution_id
from tests.fakes import FakeClock


def _job(clock: FakeClock, name: str) -> Job:
    now = clock.now()
    return Job.create(name=name, url=f"/crons/{name}", created_at=now, updated_at=now)


def _runs(job: Job, clock: FakeClock, statuses: list[str], age: timedelta) -> list[Run]:
    queued = clock.now() - age
    return [
        Run.create(
            execution_id=new_execution_id(),
            job=job,
            trigger="schedule",
            status=status,
            queued_at=queued,
        )
        for status in statuses
    ]


def _statuses(job: Job) -> list[str]:
    return [r.status for r in Run.select().where(Run.job == job).order_by(Run.id)]


def test_old_finished_runs_go_and_active_ones_stay(db: str, clock: FakeClock) -> None:
    job = _job(clock, "report")
    _runs(job, clock, ["success", "error", "missed", "queued", "running"], timedelta(days=31))
    _runs(job, clock, ["success"], timedelta(days=29))
    report = prune(clock.now(), days=30, per_job=None)
    assert (report.by_age, report.by_count, report.deleted) == (3, 0, 3)
    assert _statuses(job) == ["queued", "running", "success"]


def test_only_the_newest_per_job_are_kept(db: str, clock: FakeClock) -> None:
    busy, quiet = _job(clock, "busy"), _job(clock, "quiet")
    _runs(busy, clock, ["running"] + ["success"] * 6, timedelta(hours=1))
    _runs(quiet, clock, ["success"] * 3, timedelta(hours=1))
    report = prune(clock.now(), days=None, per_job=3)
    # busy: the 4 oldest are beyond the newest 3; the running one among them stays.
    assert (report.by_age, report.by_count) == (0, 3)
    assert _statuses(busy) == ["running", "success", "success", "success"]
    assert len(_statuses(quiet)) == 3


def test_deletes_in_batches_of_the_given_size(db: str, clock: FakeClock) -> None:
    job = _job(clock, "report")
    _runs(job, clock, ["success"] * 25, timedelta(days=40))
    report = prune(clock.now(), days=30, per_job=None, batch=10)
    assert (report.deleted, report.batches) == (25, 3)
    assert _statuses(job) == []


def test_a_dry_run_counts_and_deletes_nothing(db: str, clock: FakeClock) -> None:
    job = _job(clock, "report")
    _runs(job, clock, ["success"] * 5, timedelta(days=40))
    report = prune(clock.now(), days=30, per_job=2, dry_run=True)
    assert (report.by_age, report.dry_run) == (5, True)
    assert len(_statuses(job)) == 5


def test_time_moves_runs_out_of_the_window(db: str, clock: FakeClock) -> None:
    job = _job(clock, "report")
    _runs(job, clock, ["success"], timedelta(days=1))
    assert prune(clock.now(), days=2, per_job=None).deleted == 0
    clock.advance(days=1, seconds=1)
    assert prune(clock.now(), days=2, per_job=None).deleted == 1


def test_prune_once_uses_the_settings(db: str, clock: FakeClock) -> None:
    job = _job(clock, "report")
    _runs(job, clock, ["success"] * 4, timedelta(days=3))
    settings = Settings(database_url=db, retention_days=0, retention_per_job=1)
    assert prune_once(settings, clock.now()).by_count == 3
    assert len(_statuses(job)) == 1


@pytest.fixture
def env(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db)
    monkeypatch.setenv("GATEWAY_CONFIG", str(tmp_path / "none.toml"))
    for name in ("GATEWAY_RETENTION_DAYS", "GATEWAY_RETENTION_PER_JOB"):
        monkeypatch.delenv(name, raising=False)


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_the_prune_command_reports_json(env: None, clock: FakeClock, capsys: Any) -> None:
    job = _job(clock, "report")
    # The CLI reads the real clock: these runs are years old by then.
    _runs(job, clock, ["success"] * 3, timedelta(days=3650))
    code, out, err = _cli(["prune", "--dry-run", "--json"], capsys)
    assert (code, err, json.loads(out)["deleted"]) == (0, "", 3)
    code, out, _ = _cli(["prune", "--days", "1", "--per-job", "0"], capsys)
    assert (code, out) == (0, "pruned 3 runs (3 older than 1 days)\n")
    assert _statuses(job) == []


def test_the_prune_command_refuses_negative_numbers(env: None, capsys: Any) -> None:
    code, out, err = _cli(["prune", "--days", "-1"], capsys)
    assert (code, out) == (2, "")
    assert "--days" in err and len(err.splitlines()) == 1
