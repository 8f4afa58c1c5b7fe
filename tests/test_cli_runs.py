"""`python -m gateway runs list`: the table, the JSON, and one clear line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.store import runs
from gateway.store.jobs import ensure_job
from tests.fakes import FakeClock

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {"GATEWAY_DATABASE_URL": db, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


@pytest.fixture
def history(db: str, clock: FakeClock) -> str:
    job = ensure_job("report", {"url": "/crons/report"}, clock.now())
    for status in ("success", "error"):
        run = runs.start_run(job, runs.Origin(), "cron-box", None, clock.now())
        clock.advance(seconds=2)
        runs.finish_run(run.id, status, clock.now(), duration_ms=2000, error=None)
    return db


def test_runs_list_prints_a_table_newest_first(history: str) -> None:
    result = cli("runs", "list", db=history)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["STARTED", "JOB", "TRIGGER", "STATUS"]
    assert [line.split()[4] for line in lines[1:]] == ["error", "success"]


def test_runs_list_json_has_the_documented_fields(history: str) -> None:
    result = cli("runs", "list", "--json", "--status", "success", "--job", "report", db=history)
    assert result.returncode == 0, result.stderr
    [run] = json.loads(result.stdout)
    for field in (
        "job execution_id trigger status scheduled_for started_at finished_at duration_ms "
        "lateness_ms http_status summary error caller gateway"
    ).split():
        assert field in run
    assert (run["job"], run["status"], run["caller"], run["duration_ms"]) == (
        "report",
        "success",
        "cron-box",
        2000,
    )
    assert run["started_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--status", "sideways"], "--status"),
        (["--limit", "0"], "--limit"),
        (["--limit", "many"], "--limit"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_input_exits_2_with_one_line(history: str, args: list[str], fragment: str) -> None:
    result = cli("runs", "list", *args, db=history)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and fragment in result.stderr


def test_a_bad_setting_exits_2_with_one_line() -> None:
    result = cli("runs", "list", db="mysql://nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: GATEWAY_DATABASE_URL must start with sqlite:// or postgresql://"
    ]
