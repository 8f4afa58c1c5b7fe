"""Logs: text or JSON lines, the execution id on every line logged for a run, secrets redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.logs import log_context
from gateway.logs import setup_logging
from gateway.scheduler.loop import Scheduler
from gateway.store.models import Run
from tests.conftest import CRON_TOKEN
from tests.fakes import FakeClock
from tests.test_loop import app_url  # noqa: F401  (fixtures the gateway test uses)
from tests.test_loop import job
from tests.test_loop import round_trip
from tests.test_loop import scheduler  # noqa: F401

log = logging.getLogger("gateway.test")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:], root.level = saved


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_lines_carry_the_run_context_and_no_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(json=True)
    log.info("before")
    with log_context("6f1c-exec", "cleanup"):
        log.warning("calling with Authorization: Bearer %s", CRON_TOKEN)
        try:
            raise ValueError(f"/crons/x?cronToken={CRON_TOKEN}")
        except ValueError:
            log.exception("it broke")
    log.info("after")

    before, calling, broke, after = json_lines(capsys.readouterr().err)
    assert set(before) == {"ts", "level", "logger", "message"}
    assert before["logger"] == "gateway.test" and before["level"] == "INFO"
    assert before["ts"].endswith("+00:00")
    assert calling["execution_id"] == "6f1c-exec" and calling["job"] == "cleanup"
    assert calling["message"] == "calling with Authorization: Bearer [redacted]"
    assert broke["execution_id"] == "6f1c-exec" and "ValueError" in broke["exception"]
    assert "execution_id" not in after
    assert CRON_TOKEN not in json.dumps([before, calling, broke, after])


def test_text_lines_name_the_run_too(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(json=False)
    with log_context("6f1c-exec", "cleanup"):
        log.warning("GET /crons/x?cronToken=%s", CRON_TOKEN)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(
        "WARNING gateway.test: GET /crons/x?cronToken=[redacted] "
        "[job=cleanup execution_id=6f1c-exec]"
    )


def test_gateway_log_format_json_is_read_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_LOG_FORMAT", "json")
    setup_logging()
    log.info("hello")
    assert json_lines(capsys.readouterr().err)[0]["message"] == "hello"


def test_an_endpoint_runs_lines_carry_its_execution_id(
    client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(json=True)
    assert client.post("/crons/fails", headers={"X-Cron-Token": CRON_TOKEN}).status_code == 500
    run = Run.get()
    lines = [x for x in json_lines(capsys.readouterr().err) if x["logger"] == "gateway.endpoints"]
    assert lines and all(x["execution_id"] == run.execution_id for x in lines)
    assert lines[0]["job"] == "fails"


def test_the_gateways_lines_about_a_call_carry_its_execution_id(
    scheduler: Scheduler,  # noqa: F811
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(json=True)
    row = job(clock, "broken", max_attempts=2, backoff=1)
    clock.advance(seconds=10)
    round_trip(scheduler)
    first = Run.select().where(Run.job == row).order_by(Run.id).first()
    retry = [x for x in json_lines(capsys.readouterr().err) if "retry at" in x["message"]]
    assert retry and retry[0]["execution_id"] == first.execution_id
    assert retry[0]["job"] == "broken"
