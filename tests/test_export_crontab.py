"""Crontab export: fields per expression, curl lines with the token from an env file, CRON_TZ."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.errors import GatewayError
from gateway.export.crontab import cron_fields
from gateway.export.crontab import curl_command
from gateway.store.models import Job
from tests.fakes import FakeClock

# (expression, five crontab fields or the start of the error)
TABLE = [
    ("30 2 * * *", "30 2 * * *"),
    ("@daily", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("*/15 9-17 * * MON-FRI", "*/15 9-17 * * 1-5"),
    ("0 0 1 JAN,JUL *", "0 0 1 1,7 *"),
    ("0 0 1 * MON", "0 0 1 * 1"),  # both day fields: Vixie OR, same in system cron
    ("0 0 */2 * 1", "0 0 */2 * 1"),
    ("0 9 * * 7", "0 9 * * 7"),
    ("0 0 3-3 * *", "0 0 3 * *"),
    ("0 30 8 * * *", "30 8 * * *"),  # six fields with seconds 0
    ("15 * * * * *", "system cron cannot schedule below one minute"),
    ("0 0 L * *", "system cron cannot express day-of-month 'L'"),
    ("0 0 15W * *", "system cron cannot express day-of-month '15W'"),
    ("0 0 * * FRI#2", "system cron cannot express day-of-week '5#2'"),
    ("0 0 * * 5L", "system cron cannot express day-of-week '5L'"),
]


@pytest.mark.parametrize(("expr", "expected"), TABLE)
def test_expressions_become_five_fields_or_fail_clearly(expr: str, expected: str) -> None:
    job = Job(name="report", schedule=expr, tz="UTC")
    if "cannot" in expected:
        with pytest.raises(GatewayError, match=f"report: {expected}"):
            cron_fields(job)
    else:
        assert cron_fields(job) == expected


def test_hashed_expressions_export_their_fixed_values() -> None:
    fields = cron_fields(Job(name="alpha", schedule="H H(1-5) * * *", tz="UTC")).split()
    assert 0 <= int(fields[0]) <= 59 and 1 <= int(fields[1]) <= 5 and fields[2:] == ["*"] * 3


def test_the_command_reads_the_token_from_the_env_file_and_escapes_percent() -> None:
    job = Job(
        name="report",
        url="/crons/report?fmt=a%20b",
        method="POST",
        timeout=60,
        headers={"X-Format": "pdf"},
        payload={"note": "it's 100%"},
    )
    command = curl_command(job, "https://app.example.com", "/etc/cron-gateway.env")
    assert command == (
        ". /etc/cron-gateway.env && curl -fsS -m 60 -X POST "
        '-H "X-Cron-Token: $GATEWAY_CRON_TOKEN" '
        "-H 'X-Format: pdf' -H 'Content-Type: application/json' "
        """--data '{"note":"it'"'"'s 100\\%"}' """
        "'https://app.example.com/crons/report?fmt=a\\%20b'"
    )


def _job(clock: FakeClock, name: str, schedule: str, **fields: Any) -> Job:
    now = clock.now()
    return Job.create(
        name=name, url=f"/crons/{name}", schedule=schedule, created_at=now, updated_at=now, **fields
    )


@pytest.fixture
def env(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db)
    monkeypatch.setenv("GATEWAY_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("GATEWAY_APP_URL", "https://app.example.com")


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_jobs_are_grouped_by_cron_tz(env: None, clock: FakeClock, capsys: Any) -> None:
    _job(clock, "report", "30 2 * * *", tz="Europe/Berlin")
    _job(clock, "cleanup", "0 * * * *")
    _job(clock, "invoices", "0 6 1 * *", tz="Europe/Berlin", enabled=False)
    _job(clock, "adhoc", None)  # on demand only: nothing to schedule
    code, out, err = _cli(["export", "crontab", "--env-file", "/srv/app/cron.env"], capsys)
    assert (code, err) == (0, "")
    lines = [line for line in out.splitlines() if line]
    body = [line for line in lines if line.startswith("# (paused)") or line[0] != "#"]
    assert [line.split(" . ")[0] for line in body] == [
        "SHELL=/bin/sh",
        "CRON_TZ=Europe/Berlin",
        "# (paused) 0 6 1 * *",
        "30 2 * * *",
        "CRON_TZ=UTC",
        "0 * * * *",
    ]
    assert all("/srv/app/cron.env" in line for line in body[2:] if "curl" in line)
    assert "GATEWAY_CRON_TOKEN=" not in out.replace("GATEWAY_CRON_TOKEN=<token>", "")


def test_unsupported_jobs_fail_each_named_unless_skipped(
    env: None, clock: FakeClock, capsys: Any
) -> None:
    _job(clock, "fast", "*/10 * * * * *")
    _job(clock, "last", "0 0 L * *")
    _job(clock, "nightly", "0 0 * * *")
    code, out, err = _cli(["export", "crontab"], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines()[:2] == [
        "cannot export: fast: system cron cannot schedule below one minute "
        "(seconds field '*/10' in '*/10 * * * * *')",
        "cannot export: last: system cron cannot express day-of-month 'L' "
        "(L, W and # are not cron syntax; in '0 0 L * *')",
    ]
    assert "--skip-unsupported" in err.splitlines()[2]
    code, out, err = _cli(["export", "crontab", "--skip-unsupported"], capsys)
    assert code == 0 and "# left out: fast: system cron cannot" in out
    assert [line for line in out.splitlines() if "curl" in line][0].startswith("0 0 * * * ")


def test_an_unknown_job_is_an_error(env: None, capsys: Any) -> None:
    code, out, err = _cli(["export", "crontab", "--job", "nope"], capsys)
    assert (code, out, err) == (2, "", "error: no job named 'nope'\n")


def test_the_exported_line_runs_in_a_shell(tmp_path: Path) -> None:
    """The command, with the crontab's `\\%` unescaped as cron does, calls curl as intended."""
    job = Job(name="r", url="/crons/r", method="POST", timeout=5, headers={}, payload={"p": "50%"})
    env_file = tmp_path / "cron.env"
    env_file.write_text("GATEWAY_CRON_TOKEN=secret-from-file\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "curl").write_text('#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\n')
    (fake / "curl").chmod(0o755)
    command = curl_command(job, "http://127.0.0.1:8000", str(env_file)).replace("\\%", "%")
    done = subprocess.run(
        ["/bin/sh", "-c", command],
        env={"PATH": f"{fake}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "[X-Cron-Token: secret-from-file]" in done.stdout
    assert '[{"p":"50%"}]' in done.stdout
    assert "[http://127.0.0.1:8000/crons/r]" in done.stdout
