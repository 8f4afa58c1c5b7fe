"""EventBridge export: a table of cron expressions, each with its EventBridge form or error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.errors import GatewayError
from gateway.export.eventbridge import cron_expression
from gateway.store.models import Job
from tests.fakes import FakeClock

# (cron expression, EventBridge fields or the start of the error)
TABLE = [
    ("30 2 * * *", "30 2 * * ? *"),
    ("@daily", "0 0 * * ? *"),
    ("@hourly", "0 * * * ? *"),
    ("@weekly", "0 0 ? * 1 *"),
    ("@monthly", "0 0 1 * ? *"),
    ("@yearly", "0 0 1 1 ? *"),
    ("*/15 * * * *", "0/15 * * * ? *"),
    ("5/15 * * * *", "5/15 * * * ? *"),
    ("0 */2 * * *", "0 0/2 * * ? *"),
    ("0 9-17 * * MON-FRI", "0 9-17 ? * 2-6 *"),
    ("0 9 * * 1-5", "0 9 ? * 2-6 *"),
    ("0 9 * * 0", "0 9 ? * 1 *"),
    ("0 9 * * 7", "0 9 ? * 1 *"),
    ("0 9 * * SUN,SAT", "0 9 ? * 1,7 *"),
    ("0 9 * * 5-7", "0 9 ? * 1,6,7 *"),
    ("0 9 * * */2", "0 9 ? * 1,3,5,7 *"),
    ("0 9 * * 1-5/2", "0 9 ? * 2,4,6 *"),
    ("0 0 1,15 * *", "0 0 1,15 * ? *"),
    ("0 0 1-10/3 * *", "0 0 1,4,7,10 * ? *"),
    ("0 0 */2 * *", "0 0 1/2 * ? *"),
    ("0 0 1 JAN,JUL *", "0 0 1 1,7 ? *"),
    ("0 0 1 1-6/2 *", "0 0 1 1,3,5 ? *"),
    ("0 0 * * ?", "0 0 * * ? *"),
    ("0 0 L * *", "0 0 L * ? *"),
    ("0 0 15W * *", "0 0 15W * ? *"),
    ("0 0 * * FRI#2", "0 0 ? * 6#2 *"),
    ("0 0 * * 5L", "0 0 ? * 6L *"),
    ("0 0 * * 0#1", "0 0 ? * 1#1 *"),
    ("0 30 8 * * *", "30 8 * * ? *"),  # six fields with seconds 0: fine
    ("15 * * * * *", "EventBridge cannot schedule below one minute"),
    ("*/10 * * * * *", "EventBridge cannot schedule below one minute"),
    ("0 0 1 * MON", "EventBridge cannot express day-of-month OR day-of-week"),
    ("0 0 1-7 * 1-5", "EventBridge cannot express day-of-month OR day-of-week"),
    ("0 0 */2 * MON", "EventBridge cannot express day-of-month AND day-of-week"),
]


def _job(clock: FakeClock, schedule: str, name: str = "report", **fields: Any) -> Job:
    now = clock.now()
    return Job.create(
        name=name, url="/crons/report", schedule=schedule, created_at=now, updated_at=now, **fields
    )


@pytest.mark.parametrize(("expr", "expected"), TABLE)
def test_cron_expressions_convert_or_fail_clearly(expr: str, expected: str) -> None:
    job = Job(name="report", schedule=expr, tz="UTC")
    if "cannot" in expected:
        with pytest.raises(GatewayError, match=expected):
            cron_expression(job)
    else:
        assert cron_expression(job) == f"cron({expected})"


def test_hashed_expressions_export_their_fixed_values() -> None:
    a = cron_expression(Job(name="alpha", schedule="H H * * *", tz="UTC"))
    b = cron_expression(Job(name="beta", schedule="H H * * *", tz="UTC"))
    assert a != b
    assert a == cron_expression(Job(name="alpha", schedule="H H * * *", tz="UTC"))
    minute, hour, *rest = a[len("cron(") : -1].split()
    assert 0 <= int(minute) <= 59 and 0 <= int(hour) <= 23 and rest == ["*", "*", "?", "*"]


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


def test_the_template_has_a_schedule_rule_and_destination_per_job(
    env: None, clock: FakeClock, capsys: Any
) -> None:
    _job(clock, "30 2 * * *", tz="Europe/Berlin", payload={"days": 2}, method="PUT")
    code, out, err = _cli(["export", "eventbridge"], capsys)
    assert (code, err) == (0, "")
    resources = json.loads(out)["Resources"]
    schedule = resources["ReportSchedule"]["Properties"]
    assert schedule["ScheduleExpression"] == "cron(30 2 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    destination = resources["ReportDestination"]["Properties"]
    assert destination["InvocationEndpoint"] == "https://app.example.com/crons/report"
    assert destination["HttpMethod"] == "PUT"
    assert json.loads(resources["ReportRule"]["Properties"]["Targets"][0]["Input"]) == {"days": 2}
    auth = resources["Connection"]["Properties"]["AuthParameters"]["ApiKeyAuthParameters"]
    assert auth["ApiKeyName"] == "X-Cron-Token"
    assert "secretsmanager" in auth["ApiKeyValue"]["Fn::Sub"]


def test_json_format_lists_create_schedule_inputs(env: None, clock: FakeClock, capsys: Any) -> None:
    _job(clock, "0 9 * * MON-FRI")
    _job(clock, "0 0 * * *", name="other")
    code, out, _ = _cli(["export", "eventbridge", "--format", "json", "--job", "report"], capsys)
    [schedule] = json.loads(out)
    assert (code, schedule["Name"], schedule["ScheduleExpression"]) == (
        0,
        "cron-gateway-report",
        "cron(0 9 ? * 2-6 *)",
    )


def test_an_inexpressible_job_fails_unless_skipped(
    env: None, clock: FakeClock, capsys: Any
) -> None:
    _job(clock, "*/10 * * * * *", name="fast")
    _job(clock, "0 0 * * *", name="nightly")
    code, out, err = _cli(["export", "eventbridge"], capsys)
    assert (code, out) == (2, "")
    assert "cannot export: fast: EventBridge cannot schedule below one minute" in err
    code, out, err = _cli(["export", "eventbridge", "--skip-unsupported"], capsys)
    assert code == 0 and "left out: fast" in err
    assert list(json.loads(out)["Resources"]) == [
        "Connection",
        "Bus",
        "NightlyDestination",
        "NightlyRule",
        "NightlySchedule",
    ]
