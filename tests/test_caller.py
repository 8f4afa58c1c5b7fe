"""Caller: one HTTP call → Outcome. The only place the wire is faked: `Wire` stands in for the
urllib3 PoolManager and answers with real urllib3 responses (or raises urllib3's errors)."""

from __future__ import annotations

import dataclasses
import http.client
import io
import json
import random
import threading
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any
from urllib.parse import quote

import pytest
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


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    options: dict[str, Any]


@dataclass
class Wire:
    """A fake PoolManager: each call takes the next answer added; the last one repeats."""

    answers: list[Any] = field(default_factory=list)
    calls: list[Sent] = field(default_factory=list)

    def add(
        self,
        *,
        status: int = 200,
        payload: Any = None,
        body: str | bytes | io.BufferedIOBase | BaseException | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        if isinstance(body, BaseException):
            self.answers.append(body)
            return
        if payload is not None:
            body, content_type = json.dumps(payload), content_type or "application/json"
        if isinstance(body, str):
            body = body.encode()
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        self.answers.append((status, body or b"", all_headers))

    def urlopen(self, method: str, url: str, **options: Any) -> urllib3.HTTPResponse:
        headers, body = options.pop("headers"), options.pop("body")
        self.calls.append(Sent(method, url, headers, body, options))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        status, content, response_headers = answer
        return urllib3.HTTPResponse(
            body=io.BytesIO(content) if isinstance(content, bytes) else content,
            headers=response_headers,
            status=status,
            reason=http.client.responses.get(status),
            preload_content=False,
        )

    def clear(self) -> None:
        pass


@pytest.fixture
def wire() -> Wire:
    return Wire()


def call(wire: Wire, caller: Caller | None = None, **kw: Any) -> Outcome:
    if "json" in kw:
        kw["payload"] = kw.pop("json")
    wire.add(**kw)
    return (caller or Caller(wire)).call(request())  # type: ignore[arg-type]


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
    wire: Wire,
) -> None:
    call(wire, json=contract())
    sent = wire.calls[0]
    assert (sent.method, sent.url) == ("POST", URL)
    assert sent.headers["X-Cron-Token"] == TOKEN and sent.headers["X-Cron-Attempt"] == "1"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == b'{"k": 1}'
    assert sent.options["redirect"] is False and sent.options["retries"] is False
    assert sent.options["timeout"].connect_timeout == 5.0


def test_user_info_in_the_url_becomes_basic_auth_not_part_of_the_url(wire: Wire) -> None:
    wire.add(payload=contract())
    Caller(wire).call(request("http://deploy:pa%3Ass@127.0.0.1:8000/crons/cleanup"))  # type: ignore[arg-type]
    sent = wire.calls[0]
    assert sent.url == URL and sent.headers["Authorization"] == "Basic ZGVwbG95OnBhOnNz"


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
    wire: Wire,
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


def test_the_summary_comes_from_the_json_contract(wire: Wire) -> None:
    outcome = call(wire, json=contract(summary={"deleted": 42}))
    assert outcome.summary == {"deleted": 42} and outcome.endpoint_status == "success"


def test_a_json_body_that_is_not_the_contract_has_no_summary(wire: Wire) -> None:
    outcome = call(wire, json={"summary": "looks like it", "ok": True})
    assert outcome.status == "success" and outcome.summary is None


def test_invalid_json_on_200_is_a_success_with_the_excerpt_kept(
    wire: Wire,
) -> None:
    outcome = call(wire, body="OK, done {not json", content_type="application/json")
    assert outcome.status == "success" and outcome.summary is None
    assert outcome.response_excerpt == "OK, done {not json"


def test_an_ndjson_stream_is_judged_by_its_last_line(wire: Wire) -> None:
    lines = [{"log": f"step {i}"} for i in range(2000)] + [contract("error", error="late boom")]
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    outcome = call(wire, body=body, content_type="application/x-ndjson")
    assert outcome.status == "error" and outcome.error == "job failed: late boom"
    assert outcome.truncated and len(outcome.response_excerpt or "") == 4096


def test_a_redirect_is_not_followed(wire: Wire) -> None:
    outcome = call(wire, status=302, headers={"Location": "http://127.0.0.1:8000/login"})
    assert outcome.status == "error" and outcome.http_status == 302
    assert outcome.error == "HTTP 302: redirect to http://127.0.0.1:8000/login not followed"
    assert len(wire.calls) == 1


def test_retry_after_is_passed_on_for_the_retry_decision(wire: Wire) -> None:
    outcome = call(wire, status=429, headers={"Retry-After": "30"})
    assert outcome.retry_after == "30"
    decision = decide_retry(outcome, 1, RetryPolicy(), now=SLOT, rng=random.Random())
    assert decision.retry and decision.delay_s == 30.0


# -- bodies -----------------------------------------------------------------------------------


def test_a_huge_body_is_cut_to_the_excerpt(wire: Wire) -> None:
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


def test_an_endless_body_is_read_only_up_to_max_body_bytes(wire: Wire) -> None:
    raw = Endless()
    caller = Caller(wire, excerpt_bytes=100, json_limit_bytes=1000, max_body_bytes=1 << 20)  # type: ignore[arg-type]
    outcome = call(wire, caller, body=io.BufferedReader(raw))
    assert outcome.response_excerpt == "y" * 100 and outcome.truncated
    assert raw.read_bytes < 2 << 20


def test_a_cut_multibyte_character_is_replaced_not_an_error(wire: Wire) -> None:
    outcome = call(wire, Caller(wire, excerpt_bytes=5), body="ééé".encode())  # type: ignore[arg-type]
    assert outcome.response_excerpt == "éé\ufffd"


# -- failures ---------------------------------------------------------------------------------


def raising(exc: BaseException) -> dict[str, Any]:
    return {"body": exc}


errors = urllib3.exceptions
REFUSED = errors.NewConnectionError(
    None,  # type: ignore[arg-type]
    "Failed to establish a new connection: [Errno 111] Connection refused",
)
REFUSED.__cause__ = ConnectionRefusedError(111, "Connection refused")

FAILURE_TABLE = [
    (
        errors.ConnectTimeoutError(None, "timed out"),
        "timeout",
        "timeout",
        "connect timeout after 5 s to 127.0.0.1:8000",
    ),
    (
        errors.ReadTimeoutError(None, URL, "Read timed out."),  # type: ignore[arg-type]
        "timeout",
        "timeout",
        "no response within 5 s from 127.0.0.1:8000",
    ),
    (REFUSED, "error", "connection_error", "connection refused to 127.0.0.1:8000"),
    (
        errors.ProtocolError("weird"),
        "error",
        "connection_error",
        "connection error to 127.0.0.1:8000",
    ),
    (
        errors.ProtocolError("Connection broken", errors.IncompleteRead(10, 5)),
        "error",
        "connection_error",
        "response from 127.0.0.1:8000 broke off before its end",
    ),
    (
        errors.ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed")),
        "error",
        "connection_error",
        "connection closed by 127.0.0.1:8000 before it answered",
    ),
    (
        errors.DecodeError("bad gzip"),
        "error",
        "connection_error",
        "response from 127.0.0.1:8000 could not be decoded (Content-Encoding)",
    ),
    (
        errors.LocationParseError("bad"),
        "error",
        "invalid_request",
        "invalid request: LocationParseError: Failed to parse: bad",
    ),
]


@pytest.mark.parametrize(("exc", "status", "kind", "error"), FAILURE_TABLE)
def test_exceptions_become_outcomes(
    wire: Wire, exc: BaseException, status: str, kind: str, error: str
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
    {"body": errors.ProtocolError(f"POST {URL}?cronToken={TOKEN} X-Cron-Token: {TOKEN}")},
    {"body": errors.LocationParseError(f"{URL}?cronToken={TOKEN}")},
    {"body": ValueError(f"Invalid header value X-Cron-Token: {TOKEN}")},
    {"body": f"{'a' * 4080}{TOKEN}"},
]


@pytest.mark.parametrize("kw", LEAKY_RESPONSES)
def test_the_token_never_appears_in_any_outcome_field(wire: Wire, kw: dict[str, Any]) -> None:
    outcome = call(wire, **kw)
    assert leaks(outcome) == []


def test_a_token_in_the_url_query_is_redacted_from_unmatched_url_errors(
    wire: Wire,
) -> None:
    wire.add(body=errors.LocationParseError(f"{URL}?cronToken={TOKEN}"))
    outcome = Caller(wire).call(request(f"{URL}?cronToken={TOKEN}"))  # type: ignore[arg-type]
    assert outcome.kind == "invalid_request" and leaks(outcome) == []


def test_a_bearer_token_is_redacted_too(wire: Wire) -> None:
    wire.add(payload={"error": f"got Bearer {TOKEN}"}, status=401)
    caller = Caller(wire)  # type: ignore[arg-type]
    outcome = caller.call(CallRequest("POST", URL, {"Authorization": f"Bearer {TOKEN}"}))
    assert outcome.error == f"HTTP 401: got {REDACTED}"


# -- sessions and timing ----------------------------------------------------------------------


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


def test_duration_comes_from_the_injected_clock(wire: Wire) -> None:
    outcome = call(wire, Caller(wire, clock=Ticking()), json=contract())  # type: ignore[arg-type]
    assert outcome.duration_ms > 0 and outcome.duration_ms % 250 == 0


def test_a_stream_that_outlives_the_timeout_is_a_timeout(wire: Wire) -> None:
    body = io.BufferedReader(Endless())
    wire.add(body=body, content_type="application/x-ndjson")
    outcome = Caller(wire, clock=Ticking()).call(request(timeout_s=0.1))  # type: ignore[arg-type]
    assert (outcome.status, outcome.kind, outcome.http_status) == ("timeout", "timeout", 200)
    assert outcome.error == "no complete response within 0.1 s"


def test_a_reset_keep_alive_connection_is_sent_once_more(wire: Wire) -> None:
    reset = errors.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    wire.add(body=reset)
    wire.add(payload={"status": "success", "summary": {"n": 1}})
    outcome = Caller(wire).call(request())  # type: ignore[arg-type]
    assert (outcome.status, outcome.http_status, len(wire.calls)) == ("success", 200, 2)


def test_a_refused_connection_is_not_sent_again(wire: Wire) -> None:
    wire.add(body=REFUSED)
    outcome = Caller(wire).call(request())  # type: ignore[arg-type]
    assert (outcome.kind, len(wire.calls)) == ("connection_error", 1)


def test_a_second_reset_is_an_error_not_a_loop(wire: Wire) -> None:
    for _ in range(3):
        wire.add(body=errors.ProtocolError("Connection aborted.", ConnectionResetError()))
    outcome = Caller(wire).call(request())  # type: ignore[arg-type]
    assert (outcome.kind, len(wire.calls)) == ("connection_error", 2)
    assert outcome.error is not None and "reset" in outcome.error


def test_a_job_header_replaces_a_default_whatever_its_case(wire: Wire) -> None:
    wire.add(payload=contract())
    headers = {**cron_headers(TOKEN, "e1", SLOT, "schedule", 1), "user-agent": "mine/1"}
    Caller(wire).call(CallRequest("POST", URL, headers))  # type: ignore[arg-type]
    sent = wire.calls[0].headers
    assert sent["user-agent"] == "mine/1" and "User-Agent" not in sent
    assert sent["Accept-Encoding"] == "gzip, deflate"


class BreaksOff(io.RawIOBase):
    """A body whose connection is reset after its first bytes."""

    def __init__(self) -> None:
        self.sent = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.sent:
            raise ConnectionResetError(104, "Connection reset by peer")
        self.sent = True
        buffer[:5] = b'{"sta'
        return 5


def test_a_response_that_breaks_off_after_its_head_is_not_sent_again(wire: Wire) -> None:
    wire.add(body=io.BufferedReader(BreaksOff()), content_type="application/json")
    outcome = Caller(wire).call(request())  # type: ignore[arg-type]
    assert len(wire.calls) == 1  # the job ran: a second copy could run it twice
    assert (outcome.kind, outcome.http_status) == ("connection_error", None)
    assert outcome.error == "connection reset by 127.0.0.1:8000"


def test_a_payload_that_is_not_json_is_an_invalid_request(wire: Wire) -> None:
    wire.add(payload=contract())
    outcome = Caller(wire).call(request(json={"x": float("nan")}))  # type: ignore[arg-type]
    assert (outcome.kind, wire.calls) == ("invalid_request", [])
