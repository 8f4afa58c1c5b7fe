"""`python -m gateway jobs …` and `sync`: output, exit codes, one-line errors, nothing changed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import create_app
from gateway.cli import main
from gateway.config import Settings
from gateway.store import runs
from gateway.store.jobs import job_as_dict
from gateway.store.models import Job
from gateway.store.models import Run
from tests.conftest import CRON_TOKEN
from tests.conftest import make_jobs
from tests.fakes import FakeClock
from tests.servers import serving

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """GATEWAY_* variables for the CLI, in this process and for subprocesses."""
    values = {
        "GATEWAY_DATABASE_URL": db,
        "GATEWAY_JOBS_FILE": str(tmp_path / "jobs.toml"),
        "GATEWAY_CONFIG": str(tmp_path / "none.toml"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("GATEWAY_APP_URL", "GATEWAY_ALLOWED_TARGETS", "GATEWAY_CRON_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return values


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Return (exit code, stdout, stderr) of the CLI called in-process."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def subprocess_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=60,
    )


def stored() -> list[dict[str, Any]]:
    return [job_as_dict(j) for j in Job.select().order_by(Job.name)]


ADD = ["jobs", "add", "report", "--url", "/crons/report", "--schedule", "30 2 * * *"]


def test_add_and_list_in_a_real_process(env: dict[str, str]) -> None:
    added = subprocess_cli(*ADD, "--tz", "Europe/Berlin", "--tag", "nightly", env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("report: enabled, 30 2 * * *, next run ")
    listed = subprocess_cli("jobs", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    header, line = listed.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "SCHEDULE",
        "TZ",
        "STATE",
        "NEXT",
        "RUN",
        "LAST",
        "STATUS",
        "SOURCE",
    ]
    assert line.split()[:7] == ["report", "30", "2", "*", "*", "*", "Europe/Berlin"]
    assert line.split()[7:] == ["enabled", *line.split()[8:10], "-", "api"]


def test_bad_input_in_a_real_process_is_one_line_and_exit_2(env: dict[str, str]) -> None:
    done = subprocess_cli(*ADD[:5], "--schedule", "0 0 31 2 *", env=env)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: day-of-month: 31 never occurs in February (in '0 0 31 2 *')\n"
    assert stored() == []


def test_add_prints_json_with_every_option(env: dict[str, str], capsys: Any) -> None:
    argv = [*ADD, "--method", "put", "--header", "X-Format: pdf", "--header", "Accept:json"]
    argv += ["--payload", '{"days": 2}', "--timeout", "30", "--max-attempts", "3"]
    argv += ["--overlap", "allow", "--misfire", "all", "--tag", "a", "--tag", "b", "--json"]
    code, out, err = run_cli(argv, capsys)
    assert (code, err) == (0, "")
    job = json.loads(out)
    assert (job["method"], job["headers"], job["payload"]) == (
        "PUT",
        {"X-Format": "pdf", "Accept": "json"},
        {"days": 2},
    )
    assert (job["timeout"], job["max_attempts"], job["overlap"], job["misfire"]) == (
        30,
        3,
        "allow",
        "all",
    )
    assert (job["tags"], job["source"], job["next_run_at"] is not None) == (["a", "b"], "api", True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*ADD, "--payload", "{days: 2}"], "error: --payload: not valid JSON"),
        ([*ADD, "--header", "X-Format pdf"], "error: --header: expected 'Name: value'"),
        ([*ADD, "--header", "Authorization: Bearer x"], "would carry a secret; secrets go in keys"),
        ([*ADD, "--timeout", "ten"], "'ten' is not a valid integer"),
        ([*ADD, "--timeout", "0"], "error: timeout: 0 is out of range"),
        ([*ADD, "--tz", "Mars/Base"], "error: tz: 'Mars/Base' is not a known IANA time zone"),
        ([*ADD, "--overlap", "queue"], "'queue' is not one of"),
        ([*ADD, "--tag", "Bad Tag"], "error: tags: 'Bad Tag' is not a slug"),
        (["jobs", "add", "Report", "--url", "/x"], "error: name: 'Report' is not a slug"),
        (["jobs", "add", "report"], "Missing option '--url'"),
        (["jobs", "add", "x", "--url", "https://evil.example/"], "not an allowed target"),
    ],
)
def test_bad_add_exits_2_with_one_line_and_adds_nothing(
    env: dict[str, str], capsys: Any, argv: list[str], message: str
) -> None:
    code, out, err = run_cli(argv, capsys)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and message in err
    assert stored() == []


@pytest.fixture
def report(env: dict[str, str], capsys: Any) -> None:
    assert run_cli([*ADD, "--max-attempts", "2"], capsys)[0] == 0


def test_a_duplicate_add_exits_2(report: None, capsys: Any) -> None:
    before = stored()
    code, _, err = run_cli([*ADD[:5], "--url", "/other"], capsys)
    assert (code, err) == (2, "error: a job named 'report' already exists\n")
    assert stored() == before


def test_edit_changes_only_the_options_given(report: None, capsys: Any) -> None:
    code, out, err = run_cli(["jobs", "edit", "report", "--timeout", "45", "--json"], capsys)
    assert (code, err) == (0, "")
    job = json.loads(out)
    assert (job["timeout"], job["schedule"], job["max_attempts"]) == (45, "30 2 * * *", 2)
    code, out, _ = run_cli(["jobs", "edit", "report", "--schedule", ""], capsys)
    assert (code, out) == (0, "report: enabled, on demand, next run none\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["jobs", "edit", "report"], "error: nothing to change: give at least one option\n"),
        (["jobs", "edit", "nope", "--timeout", "5"], "error: no job named 'nope'\n"),
        (["jobs", "edit", "report", "--schedule", "* * *"], "expected 5 or 6 fields"),
        (["jobs", "edit", "report", "--payload", "[1,"], "--payload: not valid JSON"),
        (["jobs", "edit", "report", "--max-attempts", "11"], "max_attempts: 11 is out of range"),
    ],
)
def test_bad_edit_exits_2_and_changes_nothing(
    report: None, capsys: Any, argv: list[str], message: str
) -> None:
    before = stored()
    code, out, err = run_cli(argv, capsys)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and message in err
    assert stored() == before


def test_pause_resume_rm_and_list(report: None, capsys: Any) -> None:
    assert run_cli(["jobs", "pause", "report", "--note", "migration"], capsys)[1] == (
        "report: paused\n"
    )
    job = stored()[0]
    assert (job["state"], job["pause_note"], job["next_run_at"]) == ("paused", "migration", None)
    code, out, _ = run_cli(["jobs", "resume", "report"], capsys)
    assert code == 0 and out.startswith("report: enabled, 30 2 * * *, next run 20")
    assert run_cli(["jobs", "rm", "report"], capsys)[:2] == (0, "report: deleted\n")
    assert run_cli(["jobs", "list"], capsys)[1] == "no jobs\n"
    code, out, _ = run_cli(["jobs", "list", "--all", "--json"], capsys)
    assert [(j["name"], j["state"]) for j in json.loads(out)] == [("report", "deleted")]
    assert run_cli(["jobs", "resume", "report"], capsys)[2] == "error: job 'report' is deleted\n"


def test_list_by_tag(env: dict[str, str], capsys: Any) -> None:
    run_cli(["jobs", "add", "a", "--url", "/a", "--tag", "ops"], capsys)
    run_cli(["jobs", "add", "b", "--url", "/b"], capsys)
    code, out, _ = run_cli(["jobs", "list", "--tag", "ops", "--json"], capsys)
    assert [j["name"] for j in json.loads(out)] == ["a"]


@pytest.mark.parametrize("verb", ["pause", "resume", "rm", "trigger"])
def test_an_unknown_job_exits_2(env: dict[str, str], capsys: Any, verb: str) -> None:
    assert run_cli(["jobs", verb, "nope"], capsys) == (2, "", "error: no job named 'nope'\n")


def test_trigger_queues_a_manual_run_and_prints_its_id(report: None, capsys: Any) -> None:
    code, out, err = run_cli(["jobs", "trigger", "report", "--payload", '{"x": 1}'], capsys)
    assert (code, err) == (0, "")
    run = Run.get()
    assert out == f"{run.execution_id}\n"
    assert (run.trigger, run.status, run.payload) == ("manual", "queued", {"x": 1})
    code, out, _ = run_cli(["jobs", "trigger", "report", "--json"], capsys)
    assert json.loads(out)["status"] == "queued"


def test_trigger_with_bad_payload_queues_nothing(report: None, capsys: Any) -> None:
    code, out, err = run_cli(["jobs", "trigger", "report", "--payload", "nope"], capsys)
    assert (code, out) == (2, "") and err.startswith("error: --payload: not valid JSON")
    assert Run.select().count() == 0


def finish_queued(clock: FakeClock, *outcomes: str) -> threading.Thread:
    """Play the gateway: end the queued run with each outcome in turn, retries as attempts."""

    def play() -> None:
        for attempt, status in enumerate(outcomes, start=1):
            run = None
            for _ in range(200):
                run = Run.get_or_none((Run.status == "queued") & (Run.attempt == attempt))
                if run is not None:
                    break
                threading.Event().wait(0.05)
            assert run is not None
            runs.finish(
                run, status, clock.now(), duration_ms=12, error="boom" * (status != "success")
            )
            if attempt < len(outcomes):
                runs.enqueue(
                    run.job,
                    "retry",
                    clock.now(),
                    attempt=attempt + 1,
                    execution_id=run.execution_id,
                )

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("outcomes", "code", "last"),
    [
        (["success"], 0, "success in 12 ms (attempt 1)"),
        (["error", "success"], 0, "success in 12 ms (attempt 2)"),
        (["error", "timeout"], 1, "timeout in 12 ms (attempt 2): boom"),
    ],
)
def test_trigger_wait_exits_with_the_runs_outcome(
    report: None, capsys: Any, clock: FakeClock, outcomes: list[str], code: int, last: str
) -> None:
    player = finish_queued(clock, *outcomes)
    result = run_cli(["jobs", "trigger", "report", "--wait", "--wait-timeout", "20"], capsys)
    player.join(5)
    assert result[0] == code
    execution_id, outcome = result[1].splitlines()
    assert outcome == last and Run.get(Run.attempt == 1).execution_id == execution_id


def test_trigger_wait_json_prints_the_finished_run(
    report: None, capsys: Any, clock: FakeClock
) -> None:
    player = finish_queued(clock, "error")
    code, out, _ = run_cli(["jobs", "trigger", "report", "--wait", "--json"], capsys)
    player.join(5)
    # max_attempts is 2, so the CLI waited a moment for a retry that never came.
    assert (code, json.loads(out)["status"]) == (1, "error")


def test_trigger_wait_gives_up_after_the_timeout(report: None, capsys: Any) -> None:
    argv = ["jobs", "trigger", "report", "--wait", "--wait-timeout", "0.3"]
    code, out, err = run_cli(argv, capsys)
    assert (code, err) == (1, "error: run is still queued after 0.3 s\n")
    assert Run.get().status == "queued"


@pytest.fixture
def app_url(settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    app = create_app(settings, clock=clock)
    make_jobs().init_app(app)
    with serving(app) as url:
        monkeypatch.setenv("GATEWAY_APP_URL", url)
        monkeypatch.setenv("GATEWAY_CRON_TOKEN", CRON_TOKEN)
        yield url


def test_sync_creates_the_apps_jobs(env: dict[str, str], app_url: str, capsys: Any) -> None:
    code, out, err = run_cli(["sync"], capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "created: background, chatty, fails, hello, leaky, skips, streamed",
        "unchanged: 0 job(s)",
    ]
    code, out, _ = run_cli(["sync", "--json"], capsys)
    assert code == 0 and json.loads(out)["unchanged"][:2] == ["background", "chatty"]


def test_sync_reports_an_app_it_cannot_read_and_exits_1(
    env: dict[str, str], app_url: str, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_CRON_TOKEN", "a-token-the-app-does-not-know")
    code, out, err = run_cli(["sync"], capsys)
    assert (code, out) == (1, "unchanged: 0 job(s)\n")
    hint = "(is GATEWAY_CRON_TOKEN set to a key the app accepts?)"
    assert err == f"error: {app_url}/crons: HTTP 401 {hint}\n"


def test_sync_with_a_bad_jobs_file_exits_2_and_changes_nothing(
    env: dict[str, str], app_url: str, capsys: Any
) -> None:
    Path(env["GATEWAY_JOBS_FILE"]).write_text(
        '[[job]]\nname = "n"\nurl = "/x"\nschedule = "@hourly"\nmode = "fast"\n'
    )
    code, out, err = run_cli(["sync"], capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"error: {env['GATEWAY_JOBS_FILE']}: job 'n': mode: 'fast' is not one of "
        "blocking, async, stream\n"
    )
    assert stored() == []


def test_pause_by_tag_until_a_time_with_a_fate(env: dict[str, str], capsys: Any) -> None:
    run_cli(["jobs", "add", "a", "--url", "/a", "--schedule", "0 * * * *", "--tag", "db"], capsys)
    run_cli(["jobs", "add", "b", "--url", "/b", "--schedule", "0 * * * *"], capsys)
    code, out, _ = run_cli(
        [
            "jobs",
            "pause",
            "--tag",
            "db",
            "--note",
            "migration",
            "--until",
            "2099-01-01T18:00+01:00",
            "--fate",
            "once",
        ],
        capsys,
    )
    assert code == 0 and out == "a: paused until 2099-01-01T18:00:00+01:00\n"
    a, b = stored()
    assert (a["state"], a["pause_note"], a["pause_fate"], b["state"]) == (
        "paused",
        "migration",
        "once",
        "enabled",
    )
    assert a["paused_until"] == "2099-01-01T17:00:00+00:00"
    assert run_cli(["jobs", "resume", "--tag", "db"], capsys)[0] == 0
    assert stored()[0]["state"] == "enabled"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "either a tag or a list"),
        (["a", "--until", "tomorrow"], "--until"),
        (["a", "--until", "2099-01-01T18:00"], "offset"),
        (["a", "--fate", "forever"], "--fate"),
    ],
)
def test_bad_pause_exits_2_and_pauses_nothing(
    env: dict[str, str], capsys: Any, args: list[str], fragment: str
) -> None:
    run_cli(["jobs", "add", "a", "--url", "/a", "--schedule", "0 * * * *"], capsys)
    code, out, err = run_cli(["jobs", "pause", *args], capsys)
    assert code == 2 and out == "" and fragment in err and len(err.splitlines()) == 1
    assert stored()[0]["state"] == "enabled"


def test_signing_can_be_turned_off_and_on_per_job(env: dict[str, str], capsys: Any) -> None:
    assert run_cli(["jobs", "add", "a", "--url", "/a", "--unsigned"], capsys)[0] == 0
    assert stored()[0]["signed"] is False
    assert run_cli(["jobs", "edit", "a", "--signed"], capsys)[0] == 0
    assert stored()[0]["signed"] is True
    run_cli(["jobs", "edit", "a", "--title", "A"], capsys)
    assert stored()[0]["signed"] is True  # not given: unchanged
