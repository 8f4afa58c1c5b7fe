"""sync_jobs against a real app on 127.0.0.1 and a real TOML file, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway import CronJobs
from gateway import create_app
from gateway.config import Settings
from gateway.endpoints.context import RunContext
from gateway.errors import InvalidSchedule
from gateway.errors import ValidationError
from gateway.scheduler.resync import Resync
from gateway.store import jobs
from gateway.store.models import Job
from gateway.sync import SyncReport
from gateway.sync import sync_jobs
from tests.fakes import FakeClock
from tests.servers import serving


def make_app_jobs() -> CronJobs:
    cron = CronJobs()

    @cron.job(
        "cleanup",
        schedule="0 2 * * *",
        tz="Europe/Berlin",
        timeout=120,
        tags=["maintenance"],
        max_attempts=3,
        overlap="allow",
    )
    def cleanup(ctx: RunContext) -> Any:
        return {"deleted": 1}

    @cron.job("report", schedule="*/15 * * * *", title="Report")
    def report(ctx: RunContext) -> Any:
        return {}

    @cron.job("adhoc")
    def adhoc(ctx: RunContext) -> Any:
        return {}

    return cron


@pytest.fixture
def cron() -> CronJobs:
    return make_app_jobs()


@pytest.fixture
def live(
    settings: Settings, clock: FakeClock, cron: CronJobs, tmp_path: Path
) -> Iterator[Settings]:
    """The sync's settings: GATEWAY_APP_URL is a real app serving `cron` on 127.0.0.1."""
    app = create_app(settings, clock=clock)
    cron.init_app(app)
    with serving(app) as url:
        yield replace(settings, app_url=url, jobs_file=str(tmp_path / "jobs.toml"))


def redeclare(cron: CronJobs, name: str, **changes: Any) -> None:
    """Change what the app's code declares for `name` (as a deploy would)."""
    cron.jobs[name] = replace(cron.jobs[name], **changes)


def sync(settings: Settings, clock: FakeClock, **advance: float) -> SyncReport:
    """Sync at the clock's time, first moving it forward by `advance` (timedelta arguments)."""
    return sync_jobs(settings, clock.advance(**advance) if advance else clock.now())


def stored(name: str) -> dict[str, Any]:
    return jobs.job_as_dict(Job.get(Job.name == name))


def snapshot() -> list[dict[str, Any]]:
    return [
        {**jobs.job_as_dict(j), "declared": j.declared} for j in Job.select().order_by(Job.name)
    ]


def utc(text: str) -> str:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()


def test_new_code_jobs_take_the_declared_values(live: Settings, clock: FakeClock) -> None:
    report = sync(live, clock)
    assert report.as_dict() == {
        "created": ["adhoc", "cleanup", "report"],
        "updated": [],
        "unchanged": [],
        "orphaned": [],
        "errors": [],
    }
    job = stored("cleanup")
    assert job["url"] == f"{live.app_url}/crons/cleanup"
    assert (job["source"], job["schedule"], job["tz"], job["timeout"]) == (
        "code",
        "0 2 * * *",
        "Europe/Berlin",
        120,
    )
    assert (job["max_attempts"], job["overlap"], job["tags"]) == (3, "allow", ["maintenance"])
    assert job["next_run_at"] == utc("2026-11-24 01:00")  # 02:00 in Berlin
    assert stored("report")["next_run_at"] == utc("2026-11-23 09:15")
    assert stored("adhoc")["next_run_at"] is None
    assert Job.get(Job.name == "cleanup").declared["timeout"] == 120


def test_a_second_sync_changes_nothing(live: Settings, clock: FakeClock) -> None:
    sync(live, clock)
    before = snapshot()
    clock.advance(hours=1)
    report = sync(live, clock)
    assert report.unchanged == ["adhoc", "cleanup", "report"] and not report.updated
    assert snapshot() == before


def test_a_declared_change_applies_when_nobody_touched_the_field(
    live: Settings, clock: FakeClock, cron: CronJobs
) -> None:
    sync(live, clock)
    redeclare(cron, "report", schedule="0 * * * *", timeout=30)
    report = sync(live, clock)
    assert report.updated == ["report"]
    job = stored("report")
    assert (job["schedule"], job["timeout"], job["next_run_at"]) == (
        "0 * * * *",
        30,
        utc("2026-11-23 10:00"),
    )


def test_an_operators_reschedule_and_pause_win_over_the_code(
    live: Settings, clock: FakeClock, cron: CronJobs
) -> None:
    sync(live, clock)
    jobs.update_job("report", {"schedule": "0 8 * * *"}, clock.now(), settings=live)
    jobs.pause_job("cleanup", clock.now(), note="disk full")
    redeclare(cron, "report", schedule="*/5 * * * *", timeout=30)
    redeclare(cron, "cleanup", schedule="0 4 * * *")
    report = sync(live, clock)
    assert report.updated == ["cleanup", "report"]
    job = stored("report")
    assert (job["schedule"], job["timeout"]) == ("0 8 * * *", 30)  # reschedule kept
    job = stored("cleanup")
    assert (job["state"], job["pause_note"], job["next_run_at"]) == ("paused", "disk full", None)
    assert job["schedule"] == "0 4 * * *"  # untouched by the operator: the code's change applies
    # The operator's value stays even when the code declares something new again.
    redeclare(cron, "report", schedule="*/10 * * * *")
    sync(live, clock)
    assert stored("report")["schedule"] == "0 8 * * *"


def test_a_field_the_operator_set_back_follows_the_code_again(
    live: Settings, clock: FakeClock, cron: CronJobs
) -> None:
    sync(live, clock)
    jobs.update_job("report", {"timeout": 5}, clock.now(), settings=live)
    jobs.update_job("report", {"timeout": 600}, clock.now(), settings=live)
    redeclare(cron, "report", timeout=60)
    sync(live, clock)
    assert stored("report")["timeout"] == 60


def test_jobs_gone_from_code_are_orphaned_then_come_back(
    live: Settings, clock: FakeClock, cron: CronJobs
) -> None:
    sync(live, clock)
    jobs.trigger_job("report", clock.now())
    gone = cron.jobs.pop("report")
    report = sync(live, clock, minutes=1)
    assert report.orphaned == ["report"]
    job = stored("report")
    assert (job["state"], job["next_run_at"], job["orphaned_at"]) == (
        "orphaned",
        None,
        utc("2026-11-23 09:01"),
    )
    assert sync(live, clock).orphaned == []  # already orphaned: reported once
    cron.jobs["report"] = gone
    report = sync(live, clock, minutes=30)
    assert report.updated == ["report"]
    job = stored("report")
    assert (job["state"], job["orphaned_at"], job["next_run_at"]) == (
        "enabled",
        None,
        utc("2026-11-23 09:45"),
    )


def test_a_failed_fetch_orphans_nothing(
    live: Settings, clock: FakeClock, cron: CronJobs, tmp_path: Path
) -> None:
    sync(live, clock)
    before = snapshot()
    report = sync_jobs(replace(live, cron_token="not-the-right-token-0000"), clock.now())
    assert report.errors == [
        f"{live.app_url}/crons: HTTP 401 (is GATEWAY_CRON_TOKEN set to a key the app accepts?)"
    ]
    assert report.orphaned == [] and snapshot() == before
    down = replace(live, app_url="http://127.0.0.1:9")  # nothing listens on the discard port
    report = sync_jobs(down, clock.now())
    assert "cannot fetch the manifest" in report.errors[0] and report.orphaned == []
    assert snapshot() == before


def test_an_app_without_a_manifest_is_an_error(live: Settings, clock: FakeClock) -> None:
    report = sync_jobs(live, clock.now(), apps=[live.app_url + "/nothing"])
    assert report.errors == [f"{live.app_url}/nothing/crons: HTTP 404"]
    assert Job.select().count() == 0


def test_a_bad_job_in_a_manifest_is_reported_and_left_alone(
    live: Settings, clock: FakeClock, cron: CronJobs
) -> None:
    sync(live, clock)
    redeclare(cron, "report", options={"retries": 3})
    report = sync(live, clock)
    [error] = report.errors
    assert error.startswith(f"{live.app_url}/crons: job 'report': unknown field 'retries' (known: ")
    assert report.orphaned == [] and stored("report")["state"] == "enabled"
    assert report.unchanged == ["adhoc", "cleanup"]


def test_jobs_made_by_the_api_are_never_touched(
    live: Settings, clock: FakeClock, cron: CronJobs
) -> None:
    jobs.create_job({"name": "report", "url": "/mine"}, clock.now(), settings=live)
    jobs.create_job({"name": "hand-made", "url": "/x"}, clock.now(), settings=live, source="ui")
    report = sync(live, clock)
    assert report.created == ["adhoc", "cleanup"]
    assert report.errors == [
        f"job 'report': declared in {live.app_url}, but a job of that name was made by api; "
        "left alone (rename one of them)"
    ]
    assert (stored("report")["url"], stored("report")["source"]) == ("/mine", "api")
    assert stored("hand-made")["state"] == "enabled" and report.orphaned == []


def test_a_row_the_endpoint_made_takes_the_declaration(live: Settings, clock: FakeClock) -> None:
    # A first call of /crons/report before any sync makes the row (ensure_job): no slot yet.
    declared = {"url": "/crons/report", "schedule": "*/15 * * * *", "source": "code"}
    jobs.ensure_job("report", declared, clock.now())
    report = sync(live, clock)
    assert report.updated == ["report"]
    job = stored("report")
    assert (job["url"], job["title"], job["next_run_at"]) == (
        f"{live.app_url}/crons/report",
        "Report",
        utc("2026-11-23 09:15"),
    )


def test_a_deleted_code_job_stays_deleted(live: Settings, clock: FakeClock) -> None:
    sync(live, clock)
    jobs.delete_job("cleanup", clock.now())
    report = sync(live, clock)
    assert "cleanup" in report.unchanged and stored("cleanup")["state"] == "deleted"


CONFIG = """
[[job]]
name = "nightly"
url = "/other/nightly"
schedule = "0 3 * * *"
tz = "Europe/Berlin"
method = "PUT"
headers = { "X-Format" = "pdf" }
payload = { days = 1 }
max_attempts = 2

[[job]]
name = "cleanup"          # overrides the code's declaration
url = "/crons/cleanup"
schedule = "*/30 * * * *"
"""


def test_config_jobs_are_created_and_override_code(live: Settings, clock: FakeClock) -> None:
    Path(live.jobs_file).write_text(CONFIG)
    report = sync(live, clock)
    assert report.created == ["adhoc", "cleanup", "nightly", "report"]
    job = stored("nightly")
    assert (job["source"], job["method"], job["headers"], job["payload"]) == (
        "config",
        "PUT",
        {"X-Format": "pdf"},
        {"days": 1},
    )
    assert job["next_run_at"] == utc("2026-11-24 02:00")
    job = stored("cleanup")
    assert (job["source"], job["schedule"], job["tz"], job["timeout"]) == (
        "config",
        "*/30 * * * *",
        "UTC",
        600,
    )
    # Removed from the file: the app's declaration applies again; a config-only job is orphaned.
    Path(live.jobs_file).write_text("")
    report = sync(live, clock)
    assert (report.updated, report.orphaned) == (["cleanup"], ["nightly"])
    assert (stored("cleanup")["source"], stored("cleanup")["schedule"]) == ("code", "0 2 * * *")


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("[[job]\nname = 1", ValidationError, "not valid TOML"),
        ('[jobs]\nname = "x"', ValidationError, "unknown table 'jobs'; use [[job]]"),
        ('job = "x"', ValidationError, "'job' must be an array of tables"),
        (
            '[[job]]\nname = "n"\nschedule = "* * * * *"',
            ValidationError,
            "job 'n': url: is required",
        ),
        ('[[job]]\nname = "n"\nurl = "/x"', ValidationError, "job 'n': schedule: is required"),
        (
            '[[job]]\nname = "n"\nurl = "/x"\nschedule = "* * * * *"\ntimeout = "ten"',
            ValidationError,
            "job 'n': timeout: expected a whole number, not 'ten'",
        ),
        (
            '[[job]]\nname = "n"\nurl = "/x"\nschedule = "0 0 31 2 *"',
            InvalidSchedule,
            "job 'n': day-of-month: 31 never occurs in February",
        ),
        (
            '[[job]]\nurl = "/x"\nschedule = "* * * * *"',
            ValidationError,
            "job #1: name: is required",
        ),
        (
            '[[job]]\nname = "n"\nurl = "/x"\nschedule = "@daily"\n'
            '[[job]]\nname = "n"\nurl = "/y"\nschedule = "@daily"',
            ValidationError,
            "job 'n': declared twice",
        ),
    ],
)
def test_a_bad_jobs_file_changes_nothing(
    live: Settings, clock: FakeClock, cron: CronJobs, text: str, error: type, message: str
) -> None:
    Path(live.jobs_file).write_text(CONFIG)
    sync(live, clock)
    before = snapshot()
    Path(live.jobs_file).write_text(text)
    cron.jobs.pop("report")  # even what the app changed is not applied
    with pytest.raises(error) as info:
        sync(live, clock, minutes=1)
    assert str(info.value).startswith(f"{live.jobs_file}: ")
    assert message in str(info.value)
    assert snapshot() == before


def test_no_jobs_file_means_no_config_jobs(live: Settings, clock: FakeClock) -> None:
    assert not Path(live.jobs_file).exists()
    assert sync(live, clock).created == ["adhoc", "cleanup", "report"]


def test_the_example_jobs_file_syncs_against_the_demo_app(
    settings: Settings, clock: FakeClock
) -> None:
    from examples.jobs import cron as demo

    app = create_app(settings, clock=clock)
    cron = CronJobs()  # the demo's jobs, without its module-level settings from other tests
    cron.jobs.update(demo.jobs)
    cron.init_app(app)
    root = Path(__file__).resolve().parents[1]
    with serving(app) as url:
        report = sync_jobs(
            replace(settings, app_url=url, jobs_file=str(root / "config" / "jobs.toml")),
            clock.now(),
        )
    assert report.errors == [] and "app-health" in report.created
    assert stored("app-health")["source"] == "config"
    assert {"cleanup-sessions", "daily-report"} <= set(report.created)


def _declared(i: int, schedule: str | None = None) -> str:
    name, schedule = f"bulk{i:05d}", schedule or f"{i % 60} 3 * * *"
    return f'[[job]]\nname = "{name}"\nurl = "/t/{name}"\nschedule = "{schedule}"\n'


def _file_of(count: int, **override: str) -> str:
    """A jobs file of `count` jobs on sixty schedules; `override` replaces one job's schedule."""
    return "\n".join(_declared(i, override.get(f"bulk{i:05d}")) for i in range(count))


def test_a_file_of_thousands_syncs_in_chunks_like_one_job_at_a_time(
    live: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import sync as sync_module

    # 2,500 jobs: three chunks of the bulk insert and of the resync's read.
    Path(live.jobs_file).write_text(_file_of(2500))
    report = sync(live, clock)
    assert len(report.created) == 2500 + 3 and not report.errors
    bulk = {**stored("bulk00061"), "declared": Job.get(Job.name == "bulk00061").declared}
    # The same declaration saved alone (one declared job) gives the same row, id and times aside.
    Path(live.jobs_file).write_text(_declared(61))
    Job.delete().where(Job.name == "bulk00061").execute()
    sync(live, clock)
    alone = {**stored("bulk00061"), "declared": Job.get(Job.name == "bulk00061").declared}
    assert {k: v for k, v in bulk.items() if k != "id"} == {
        k: v for k, v in alone.items() if k != "id"
    }
    assert bulk["next_run_at"] == utc("2026-11-24 03:01")

    Path(live.jobs_file).write_text(_file_of(2500))
    sync(live, clock)  # the other jobs come back from orphaned
    jobs.pause_job("bulk00002", clock.now(), note="held")  # not enabled, no next slot: settled
    before = snapshot()
    loaded: list[str] = []
    real_update = sync_module._update
    monkeypatch.setattr(
        sync_module, "_update", lambda job, *a: loaded.append(job.name) or real_update(job, *a)
    )
    report = sync(live, clock, minutes=1)
    assert loaded == ["adhoc"]  # no schedule, so no next slot: read to be sure; not the 2,502
    monkeypatch.undo()
    assert len(report.unchanged) == 2503 and not (report.updated or report.created)
    assert snapshot() == before

    Path(live.jobs_file).write_text(_file_of(2499, bulk01500="15 4 * * *"))
    report = sync(live, clock)
    assert (report.updated, report.orphaned) == (["bulk01500"], ["bulk02499"])
    assert stored("bulk01500")["next_run_at"] == utc("2026-11-24 04:15")
    assert (stored("bulk02499")["state"], stored("bulk02499")["next_run_at"]) == ("orphaned", None)


# -- the gateway's resync: passed over while nothing changed -------------------------------


def test_a_resync_is_passed_over_until_the_sources_or_the_store_change(
    live: Settings, clock: FakeClock, cron: CronJobs
) -> None:
    resync = Resync(live)
    first = resync.run(clock.now, tick=0)
    assert first is not None and first.created == ["adhoc", "cleanup", "report"]
    # It changed the store, so the next one applies in full once more, finding nothing to do.
    again = resync.run(clock.now, tick=1)
    assert again is not None and again.unchanged == ["adhoc", "cleanup", "report"]
    before = snapshot()
    assert resync.run(clock.now, tick=2) is None
    assert snapshot() == before

    redeclare(cron, "report", schedule="0 * * * *")  # a deploy
    changed = resync.run(clock.now, tick=3)
    assert changed is not None and changed.updated == ["report"]
    resync.run(clock.now, tick=4)
    assert resync.run(clock.now, tick=5) is None

    Path(live.jobs_file).write_text(
        '[[job]]\nname = "nightly"\nurl = "/crons/nightly"\nschedule = "0 3 * * *"\n'
    )
    added = resync.run(clock.now, tick=6)
    assert added is not None and added.created == ["nightly"]


def settled_resync(settings: Settings, clock: FakeClock, full_every: float = 3600) -> Resync:
    """A Resync past the start-up sync and the one after it: the next is passed over (tick 2)."""
    resync = Resync(settings, full_every=full_every)
    resync.run(clock.now, tick=0)
    resync.run(clock.now, tick=1)
    assert resync.run(clock.now, tick=2) is None
    return resync


def test_a_job_left_without_a_slot_is_given_one_by_the_next_resync(
    live: Settings, clock: FakeClock
) -> None:
    resync = settled_resync(live, clock)
    # What a claim does without touching updated_at; the resync must still see it.
    Job.update(next_run_at=None).where(Job.name == "report").execute()
    assert resync.run(clock.now, tick=3) is not None
    assert stored("report")["next_run_at"] == utc("2026-11-23 09:15")


def test_an_edit_or_a_new_job_makes_the_resync_apply(live: Settings, clock: FakeClock) -> None:
    resync = settled_resync(live, clock)
    jobs.pause_job("report", clock.advance(seconds=1), "deploy")
    assert resync.run(clock.now, tick=3) is not None
    assert resync.run(clock.now, tick=4) is None
    by_hand = {"name": "by-hand", "url": "/crons/x", "schedule": "0 * * * *"}
    jobs.create_job(by_hand, clock.now(), settings=live)
    assert resync.run(clock.now, tick=5) is not None


def test_a_full_resync_runs_on_its_rhythm_even_with_nothing_changed(
    live: Settings, clock: FakeClock
) -> None:
    resync = settled_resync(live, clock, full_every=60)
    assert resync.run(clock.now, tick=30) is None
    assert resync.run(clock.now, tick=62) is not None
    assert resync.run(clock.now, tick=63) is None


def test_a_resync_with_errors_is_never_passed_over(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    down = replace(settings, app_url="http://127.0.0.1:9", jobs_file=str(tmp_path / "jobs.toml"))
    resync = Resync(down)
    for tick in range(3):
        report = resync.run(clock.now, tick=tick)
        assert report is not None and report.errors == [
            "http://127.0.0.1:9/crons: cannot fetch the manifest (ConnectionError)"
        ]


def test_a_bad_jobs_file_raises_on_every_resync_and_changes_nothing(
    live: Settings, clock: FakeClock
) -> None:
    resync = settled_resync(live, clock)
    before = snapshot()
    Path(live.jobs_file).write_text(
        '[[job]]\nname = "bad"\nurl = "/crons/bad"\nschedule = "61 * * * *"\n'
    )
    for tick in (3, 4):
        with pytest.raises(InvalidSchedule):
            resync.run(clock.now, tick=tick)
    assert snapshot() == before


def test_a_sync_writes_only_what_it_changes_not_what_claims_moved_meanwhile(
    live: Settings, clock: FakeClock, cron: CronJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.sync as sync_module

    sync(live, clock)
    redeclare(cron, "report", timeout=30)
    real_update = sync_module._update

    def claimed_meanwhile(job: Job, decl: Any, now: datetime) -> bool:
        # The gateway's claims, in another thread, advance the row after the sync read it.
        Job.update(run_count=Job.run_count + 7).where(Job.id == job.id).execute()
        return real_update(job, decl, now)

    monkeypatch.setattr(sync_module, "_update", claimed_meanwhile)
    assert sync(live, clock).updated == ["report"]
    row = Job.get(Job.name == "report")
    assert (row.timeout, row.run_count) == (30, 7)


def test_a_renamed_job_and_its_predecessor_change_in_one_transaction(
    live: Settings, clock: FakeClock, cron: CronJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.sync as sync_module

    sync(live, clock)
    cron.jobs["report-v2"] = replace(cron.jobs.pop("report"), name="report-v2")  # a rename

    def fail(*args: Any) -> None:
        raise RuntimeError("crashed between the new job and the old one's end")

    monkeypatch.setattr(sync_module, "_mark_orphaned", fail)
    with pytest.raises(RuntimeError):
        sync(live, clock)
    # Never both live: a slot in between would have called the job twice.
    assert not Job.select().where(Job.name == "report-v2").exists()
    monkeypatch.undo()
    report = sync(live, clock)
    assert (report.created, report.orphaned) == (["report-v2"], ["report"])


def test_a_jobs_file_that_cannot_be_read_is_a_clear_error_and_changes_nothing(
    live: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    sync(live, clock)
    before = snapshot()
    unreadable = replace(live, jobs_file=str(tmp_path))  # a directory: read_bytes fails
    with pytest.raises(ValidationError, match="cannot read the jobs file: Is a directory"):
        sync(unreadable, clock)
    with pytest.raises(ValidationError, match="cannot read the jobs file"):
        Resync(unreadable).run(clock.now, tick=0)
    assert snapshot() == before
