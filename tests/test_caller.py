"""Caller: one HTTP call → Outcome. The only place the wire is faked (with `responses`)."""

from __future__ import annotations

import dataclasses
import io
import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any
from urllib.parse import quote

import pytest
import requests
import responses
import urllib3

from gateway.scheduler.caller import Caller
from gateway.scheduler.caller import CallRequest
from gateway.scheduler.caller import Outcome
from gateway.scheduler.caller import cron_headers
from gateway.scheduler.policy import RetryPolicy
from gateway.scheduler.retry import decide_retry
from gateway.tokens import REDACTED

TOKEN = "s3cret-T0KEN-0123456789abcdef"
URL = "http://127.0.0.1:8000/crons/cleanup"
SLOT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def contract(status: str = "success", **extra: Any) -> dict[str, Any]:
    body = {"execution_id": "e1", "job": "cleanup", "status": status, "duration_ms": 12}
    return {**body, "summary": None, "error": None, **extra}


def request(url: str = URL, **changes: Any) -> CallRequest:
    headers = cron_headers(TOKEN, "e1", SLOT, "schedule", 1)
    return dataclasses.replace(CallRequest("POST", url, headers, {"k": 1}, 5.0), **changes)


@pytest.fixture
def wire() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def call(wire: responses.RequestsMock, caller: Caller | None = None, **kw: Any) -> Outcome:
    wire.add(responses.POST, URL, **kw)
    return (caller or Caller()).call(request())


# -- headers ----------------------------------------------------------------------------------


def test_cron_headers_carry_the_run_identity_with_an_utc_offset() -> None:
    berlin = timezone(timedelta(hours=1))
    assert cron_headers(TOKEN, "e1", SLOT.astimezone(berlin), "retry", 2) == {
        "X-Cron-Token": TOKEN,
        "X-Cron-Execution-Id": "e1",
        "X-Cron-Scheduled-For": "2026-11-23T09:00:00+00:00",
        "X-Cron-Trigger": "retry",
        "X-Cron-Attempt": "2",
    }


def test_a_manual_run_has_no_scheduled_for_header() -> None:
    assert "X-Cron-Scheduled-For" not in cron_headers(TOKEN, "e1", None, "manual", 1)


def test_the_request_goes_out_with_headers_json_and_no_redirects(
    wire: responses.RequestsMock,
) -> None:
    call(wire, json=contract())
    sent = wire.calls[0].request
    assert sent.headers["X-Cron-Token"] == TOKEN and sent.headers["X-Cron-Attempt"] == "1"
    assert sent.body == b'{"k": 1}'


# -- status → outcome -------------------------------------------------------------------------

STATUS_TABLE = [
    # (HTTP status, body, outcome status, error, accepted)
    (200, contract(summary={"deleted": 42}), "success", None, False),
    (200, contract("skipped", error="nothing to do"), "skipped", "nothing to do", False),
    (200, contract("error", error="boom"), "error", "job failed: boom", False),
    (202, contract("accepted"), "success", None, True),
    (202, contract("running"), "success", None, True),
    (202, {"queued": True}, "success", None, False),
    (204, None, "success", None, False),
    (401, {"error": "unauthorized"}, "error", "HTTP 401: unauthorized", False),
    (
        404,
        {"error": {"code": "not_found", "message": "no job x"}},
        "error",
        "HTTP 404: no job x",
        False,
    ),
    (
        409,
        contract("skipped", error="lock held by e0"),
        "skipped",
        "HTTP 409: lock held by e0",
        False,
    ),
    (429, None, "error", "HTTP 429: Too Many Requests", False),
    (
        500,
        contract("error", error="ZeroDivisionError: x"),
        "error",
        "HTTP 500: ZeroDivisionError: x",
        False,
    ),
    (503, "<html>down</html>", "error", "HTTP 503: Service Unavailable", False),
]


@pytest.mark.parametrize(("code", "body", "status", "error", "accepted"), STATUS_TABLE)
def test_status_to_outcome_table(
    wire: responses.RequestsMock,
    code: int,
    body: Any,
    status: str,
    error: str | None,
    accepted: bool,
) -> None:
    kw = {"body": body} if isinstance(body, str) or body is None else {"json": body}
    outcome = call(wire, status=code, **kw)
    assert (outcome.status, outcome.error, outcome.accepted) == (status, error, accepted)
    assert outcome.kind == "http" and outcome.http_status == code


def test_the_summary_comes_from_the_json_contract(wire: responses.RequestsMock) -> None:
    outcome = call(wire, json=contract(summary={"deleted": 42}))
    assert outcome.summary == {"deleted": 42} and outcome.endpoint_status == "success"


def test_a_json_body_that_is_not_the_contract_has_no_summary(wire: responses.RequestsMock) -> None:
    outcome = call(wire, json={"summary": "looks like it", "ok": True})
    assert outcome.status == "success" and outcome.summary is None


def test_invalid_json_on_200_is_a_success_with_the_excerpt_kept(
    wire: responses.RequestsMock,
) -> None:
    outcome = call(wire, body="OK, done {not json", content_type="application/json")
    assert outcome.status == "success" and outcome.summary is None
    assert outcome.response_excerpt == "OK, done {not json"


def test_an_ndjson_stream_is_judged_by_its_last_line(wire: responses.RequestsMock) -> None:
    lines = [{"log": f"step {i}"} for i in range(2000)] + [contract("error", error="late boom")]
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    outcome = call(wire, body=body, content_type="application/x-ndjson")
    assert outcome.status == "error" and outcome.error == "job failed: late boom"
    assert outcome.truncated and len(outcome.response_excerpt or "") == 4096


def test_a_redirect_is_not_followed(wire: responses.RequestsMock) -> None:
    outcome = call(wire, status=302, headers={"Location": "http://127.0.0.1:8000/login"})
    assert outcome.status == "error" and outcome.http_status == 302
    assert outcome.error == "HTTP 302: redirect to http://127.0.0.1:8000/login not followed"
    assert len(wire.calls) == 1


def test_retry_after_is_passed_on_for_the_retry_decision(wire: responses.RequestsMock) -> None:
    outcome = call(wire, status=429, headers={"Retry-After": "30"})
    assert outcome.retry_after == "30"
    decision = decide_retry(outcome, 1, RetryPolicy(), now=SLOT, rng=random.Random())
    assert decision.retry and decision.delay_s == 30.0


# -- bodies -----------------------------------------------------------------------------------


def test_a_huge_body_is_cut_to_the_excerpt(wire: responses.RequestsMock) -> None:
    outcome = call(wire, body=b"x" * (3 << 20))
    assert outcome.response_excerpt == "x" * 4096 and outcome.truncated
    assert outcome.status == "success"


class Endless(io.RawIOBase):
    """A body that never ends; counts what was read."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        buffer[:] = b"y" * len(buffer)
        self.read_bytes += len(buffer)
        return len(buffer)


def test_an_endless_body_is_read_only_up_to_max_body_bytes(wire: responses.RequestsMock) -> None:
    raw = Endless()
    caller = Caller(excerpt_bytes=100, json_limit_bytes=1000, max_body_bytes=1 << 20)
    outcome = call(wire, caller, body=io.BufferedReader(raw), auto_calculate_content_length=False)
    assert outcome.response_excerpt == "y" * 100 and outcome.truncated
    assert raw.read_bytes < 2 << 20


def test_a_cut_multibyte_character_is_replaced_not_an_error(wire: responses.RequestsMock) -> None:
    outcome = call(wire, Caller(excerpt_bytes=5), body="ééé".encode())
    assert outcome.response_excerpt == "éé\ufffd"


# -- failures ---------------------------------------------------------------------------------


def raising(exc: BaseException) -> dict[str, Any]:
    return {"body": exc}


REFUSED = requests.ConnectionError(
    urllib3.exceptions.MaxRetryError(
        None,  # type: ignore[arg-type]
        URL,
        urllib3.exceptions.NewConnectionError(
            None,  # type: ignore[arg-type]
            "Failed to establish a new connection: [Errno 111] Connection refused",
        ),
    )
)
REFUSED.args[0].reason.__cause__ = ConnectionRefusedError(111, "Connection refused")

FAILURE_TABLE = [
    (
        requests.ConnectTimeout(),
        "timeout",
        "timeout",
        "connect timeout after 5 s to 127.0.0.1:8000",
    ),
    (requests.ReadTimeout(), "timeout", "timeout", "no response within 5 s from 127.0.0.1:8000"),
    (REFUSED, "error", "connection_error", "connection refused to 127.0.0.1:8000"),
    (
        requests.ConnectionError("weird"),
        "error",
        "connection_error",
        "connection error to 127.0.0.1:8000",
    ),
    (
        requests.exceptions.ChunkedEncodingError(),
        "error",
        "connection_error",
        "response from 127.0.0.1:8000 broke off: ChunkedEncodingError",
    ),
    (
        requests.exceptions.InvalidURL("bad"),
        "error",
        "invalid_request",
        "invalid request: InvalidURL: bad",
    ),
    (
        requests.TooManyRedirects("many"),
        "error",
        "invalid_request",
        "invalid request: TooManyRedirects: many",
    ),
]


@pytest.mark.parametrize(("exc", "status", "kind", "error"), FAILURE_TABLE)
def test_exceptions_become_outcomes(
    wire: responses.RequestsMock, exc: BaseException, status: str, kind: str, error: str
) -> None:
    outcome = call(wire, body=exc)
    assert (outcome.status, outcome.kind, outcome.error) == (status, kind, error)
    assert outcome.http_status is None


def test_a_real_refused_connection_names_the_target() -> None:
    outcome = Caller().call(request("http://127.0.0.1:9/crons/x", timeout_s=2.0))
    assert outcome.kind == "connection_error"
    assert outcome.error == "connection refused to 127.0.0.1:9"


def test_a_url_without_a_scheme_is_an_invalid_request() -> None:
    outcome = Caller().call(request("127.0.0.1:8000/crons/x"))
    assert outcome.kind == "invalid_request" and outcome.status == "error"


# -- secrets ----------------------------------------------------------------------------------


def leaks(outcome: Outcome) -> list[str]:
    return [
        name
        for name, value in dataclasses.asdict(outcome).items()
        if TOKEN in repr(value) or quote(TOKEN, safe="") in repr(value)
    ]


LEAKY_RESPONSES: list[dict[str, Any]] = [
    {"json": contract(summary={"echo": TOKEN, TOKEN: [TOKEN]})},
    {"json": contract("error", error=f"bad token {TOKEN}"), "status": 500},
    {"json": {"error": f"unauthorized {TOKEN}"}, "status": 401},
    {"status": 302, "headers": {"Location": f"http://x/login?cronToken={TOKEN}"}},
    {"status": 429, "headers": {"Retry-After": TOKEN}},
    {"body": requests.ConnectionError(f"POST {URL}?cronToken={TOKEN} X-Cron-Token: {TOKEN}")},
    {"body": requests.exceptions.InvalidURL(f"Invalid URL {URL}?cronToken={TOKEN}")},
    {"body": requests.exceptions.InvalidHeader(f"header X-Cron-Token: {TOKEN}")},
    {"body": f"{'a' * 4080}{TOKEN}"},
]


@pytest.mark.parametrize("kw", LEAKY_RESPONSES)
def test_the_token_never_appears_in_any_outcome_field(
    wire: responses.RequestsMock, kw: dict[str, Any]
) -> None:
    outcome = call(wire, **kw)
    assert leaks(outcome) == []


def test_a_token_in_the_url_query_is_redacted_from_unmatched_url_errors(
    wire: responses.RequestsMock,
) -> None:
    outcome = Caller().call(request(f"http://127.0.0.1:8000/nowhere?cronToken={TOKEN}"))
    assert outcome.kind == "connection_error" and leaks(outcome) == []


def test_a_bearer_token_is_redacted_too(wire: responses.RequestsMock) -> None:
    wire.add(responses.POST, URL, json={"error": f"got Bearer {TOKEN}"}, status=401)
    outcome = Caller().call(CallRequest("POST", URL, {"Authorization": f"Bearer {TOKEN}"}))
    assert outcome.error == f"HTTP 401: got {REDACTED}"


# -- sessions and timing ----------------------------------------------------------------------


def test_each_thread_gets_its_own_session_and_keeps_it() -> None:
    made: list[requests.Session] = []

    def factory() -> requests.Session:
        made.append(requests.Session())
        return made[-1]

    caller = Caller(factory)
    mine = caller.session()
    assert caller.session() is mine
    other: list[requests.Session] = []
    worker = threading.Thread(target=lambda: other.append(caller.session()))
    worker.start()
    worker.join()
    assert other[0] is not mine and len(made) == 2
    caller.close()


class Ticking:
    """A clock whose monotonic time moves 0.25 s each time it is read."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return SLOT

    def monotonic(self) -> float:
        self.t += 0.25
        return self.t

    def wait(self, seconds: float, wake: threading.Event) -> None:
        pass


def test_duration_comes_from_the_injected_clock(wire: responses.RequestsMock) -> None:
    outcome = call(wire, Caller(clock=Ticking()), json=contract())
    assert outcome.duration_ms > 0 and outcome.duration_ms % 250 == 0


def test_a_stream_that_outlives_the_timeout_is_a_timeout(wire: responses.RequestsMock) -> None:
    body = io.BufferedReader(Endless())
    wire.add(
        responses.POST,
        URL,
        body=body,  # type: ignore[arg-type]  # any BufferedReader works
        content_type="application/x-ndjson",
        auto_calculate_content_length=False,
    )
    outcome = Caller(clock=Ticking()).call(request(timeout_s=0.1))
    assert (outcome.status, outcome.kind, outcome.http_status) == ("timeout", "timeout", 200)
    assert outcome.error == "no complete response within 0.1 s"


def test_a_reset_keep_alive_connection_is_sent_once_more(wire: responses.RequestsMock) -> None:
    reset = requests.exceptions.ConnectionError(ConnectionResetError(104, "Connection reset"))
    wire.add(responses.POST, URL, body=reset)
    wire.add(responses.POST, URL, json={"status": "success", "summary": {"n": 1}})
    outcome = Caller().call(request())
    assert (outcome.status, outcome.http_status, len(wire.calls)) == ("success", 200, 2)


def test_a_refused_connection_is_not_sent_again(wire: responses.RequestsMock) -> None:
    refused = requests.exceptions.ConnectionError(ConnectionRefusedError(111, "refused"))
    wire.add(responses.POST, URL, body=refused)
    outcome = Caller().call(request())
    assert (outcome.kind, len(wire.calls)) == ("connection_error", 1)


def test_a_second_reset_is_an_error_not_a_loop(wire: responses.RequestsMock) -> None:
    for _ in range(3):
        wire.add(
            responses.POST, URL, body=requests.exceptions.ConnectionError(ConnectionResetError())
        )
    outcome = Caller().call(request())
    assert (outcome.kind, len(wire.calls)) == ("connection_error", 2)
    assert outcome.error is not None and "reset" in outcome.error
