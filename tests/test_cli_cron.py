"""`python -m gateway cron next|explain`: output format, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Return (exit code, stdout, stderr) of the CLI called in-process."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_next_in_a_real_process() -> None:
    argv = ["cron", "next", "30 2 * * *", "--tz", "Europe/Berlin"]
    argv += ["--from", "2026-10-24T12:00", "--count", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *argv], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2026-10-25T02:30:00+02:00\n2026-10-26T02:30:00+01:00\n"
    assert done.stderr == ""


def test_a_bad_expression_in_a_real_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "cron", "next", "0 0 31 2 *"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "error: day-of-month: 31 never occurs in February (in '0 0 31 2 *')\n"


def test_next_reads_an_offset_in_from(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["cron", "next", "*/30 * * * *", "--tz", "Europe/Berlin"]
    code, out, err = run_cli([*argv, "--from", "2026-10-25T00:15:00+00:00", "--count", "3"], capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
    ]


def test_next_defaults_to_one_time_from_now(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["cron", "next", "* * * * * *"], capsys)
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == 1
    assert out.strip().endswith("+00:00")


def test_next_hashes_h_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["cron", "next", "H H * * *", "--from", "2026-01-01T00:00:00+00:00", "--count", "2"]
    first = run_cli([*argv, "--name", "backup"], capsys)
    again = run_cli([*argv, "--name", "backup"], capsys)
    assert first == again
    assert first[0] == 0


def test_explain(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["cron", "explain", "30 2 * * 1", "--tz", "Europe/Berlin"], capsys)
    assert (code, out, err) == (0, "At 02:30, only on Monday (Europe/Berlin)\n", "")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["cron", "next", "10-5 * * * *"], "minute: range '10-5' is reversed"),
        (["cron", "next", "* * * * *", "--tz", "Mars/Olympus"], "tz: 'Mars/Olympus'"),
        (["cron", "next", "* * * * *", "--from", "yesterday"], "--from: 'yesterday'"),
        (["cron", "next", "* * * * *", "--count", "0"], "--count must be from 1 to 1000"),
        (["cron", "next", "* * * * *", "--count", "1001"], "--count must be from 1 to 1000"),
        (["cron", "next", "* * * * *", "--count", "many"], "'many' is not a valid integer"),
        (["cron", "next", "H * * * *"], "needs a job name"),
        (["cron", "next"], "Missing argument"),
        (["cron", "explain", "@reboot"], "@reboot is not a schedule"),
        (["cron", "explain", "* * * * *", "--tz", ""], "tz:"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert fragment in err
