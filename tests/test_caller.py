"""Caller: one HTTP call → Outcome. Every call goes over a real connection on 127.0.0.1 to a
scripted server (tests/wire_server.py) that answers, misbehaves and records what it got."""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
import threading
import time
import zlib
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any
from urllib.parse import quote

import pycurl
import pytest

from gateway import outbound
from gateway.scheduler.caller import Caller
from gateway.scheduler.caller import CallRequest
from gateway.scheduler.caller import Outcome
from gateway.scheduler.caller import _Decoder
from gateway.scheduler.caller import cron_headers
from gateway.scheduler.policy import RetryPolicy
from gateway.scheduler.retry import decide_retry
from gateway.tokens import REDACTED
from tests.wire_server import Answer
from tests.wire_server import Endless
from tests.wire_server import Hangup
from tests.wire_server import Raw
from tests.wire_server import Reset
from tests.wire_server import ScriptedServer
from tests.wire_server import Silence
from tests.wire_server import chunked
from tests.wire_server import head
from tests.wire_server import refusing_port
from tests.wire_server import response
from tests.wire_server import unaccepting_port

TOKEN = "s3cret-T0KEN-0123456789abcdef"
PATH = "/crons/cleanup"
SLOT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
UNPARSABLE = f"http://127.0.0.1:99999{PATH}?cronToken={TOKEN}"  # a port out of range

MakeCaller = Callable[..., Caller]


def contract(status: str = "success", **extra: Any) -> dict[str, Any]:
    body = {"execution_id": "e1", "job": "cleanup", "status": status, "duration_ms": 12}
    return {**body, "summary": None, "error": None, **extra}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as scripted:
        yield scripted


@pytest.fixture
def make_caller() -> Iterator[MakeCaller]:
    """Caller(**options), each closed after the test."""
    made: list[Caller] = []

    def make(**options: Any) -> Caller:
        made.append(Caller(**options))
        return made[-1]

    yield make
    for caller in made:
        caller.close()


@pytest.fixture
def caller(make_caller: MakeCaller) -> Caller:
    return make_caller()


def request(server: ScriptedServer, url: str | None = None, **changes: Any) -> CallRequest:
    headers = cron_headers(TOKEN, "e1", SLOT, "schedule", 1)
    call = CallRequest("POST", url or server.url(PATH), headers, {"k": 1}, 5.0)
    return dataclasses.replace(call, **changes)


def script(server: ScriptedServer, answer: Answer | dict[str, Any]) -> None:
    """Queue `answer`: an Answer, or ScriptedServer.add's options (`json` for `payload`)."""
    if isinstance(answer, dict):
        options = dict(answer)
        if "json" in options:
            options["payload"] = options.pop("json")
        server.add(**options)
    else:
        server.push(answer)


def call(server: ScriptedServer, caller: Caller, **answer: Any) -> Outcome:
    script(server, answer)
    return caller.call(request(server))


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


def test_the_request_goes_out_with_headers_and_json(server: ScriptedServer, caller: Caller) -> None:
    call(server, caller, json=contract())
    [sent] = server.requests
    assert (sent.method, sent.target, sent.body) == ("POST", PATH, b'{"k": 1}')
    assert sent.header("X-Cron-Token") == TOKEN and sent.header("X-Cron-Attempt") == "1"
    assert sent.header("Content-Type") == "application/json"
    assert sent.header("Host") == server.target
    assert sent.header("User-Agent") == "cron-gateway" and sent.header("Accept") == "*/*"
    assert sent.header("Accept-Encoding") == "gzip, deflate"


def test_user_info_in_the_url_becomes_basic_auth_not_part_of_the_url(
    server: ScriptedServer, caller: Caller
) -> None:
    server.add(payload=contract())
    caller.call(request(server, f"http://deploy:pa%3Ass@{server.target}{PATH}"))
    [sent] = server.requests
    assert sent.target == PATH and sent.header("Host") == server.target
    assert sent.header("Authorization") == "Basic ZGVwbG95OnBhOnNz"


def test_a_job_header_replaces_a_default_whatever_its_case(
    server: ScriptedServer, caller: Caller
) -> None:
    server.add(payload=contract())
    headers = {**cron_headers(TOKEN, "e1", SLOT, "schedule", 1), "user-agent": "mine/1"}
    caller.call(CallRequest("POST", server.url(PATH), headers))
    [sent] = server.requests
    assert sent.names("User-Agent") == ["user-agent"] and sent.header("user-agent") == "mine/1"
    assert sent.header("Accept-Encoding") == "gzip, deflate"


def test_a_job_content_type_is_sent_instead_of_json(server: ScriptedServer, caller: Caller) -> None:
    server.add(payload=contract())
    caller.call(request(server, headers={"content-type": "application/vnd.x+json"}))
    [sent] = server.requests
    assert sent.names("Content-Type") == ["content-type"] and sent.body == b'{"k": 1}'


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
    server: ScriptedServer,
    caller: Caller,
    code: int,
    body: Any,
    status: str,
    error: str | None,
    accepted: bool,
) -> None:
    kw = {"body": body} if isinstance(body, str) or body is None else {"json": body}
    outcome = call(server, caller, status=code, **kw)
    assert (outcome.status, outcome.error, outcome.accepted) == (status, error, accepted)
    assert outcome.kind == "http" and outcome.http_status == code


def test_the_summary_comes_from_the_json_contract(server: ScriptedServer, caller: Caller) -> None:
    outcome = call(server, caller, json=contract(summary={"deleted": 42}))
    assert outcome.summary == {"deleted": 42} and outcome.endpoint_status == "success"


def test_a_json_body_that_is_not_the_contract_has_no_summary(
    server: ScriptedServer, caller: Caller
) -> None:
    outcome = call(server, caller, json={"summary": "looks like it", "ok": True})
    assert outcome.status == "success" and outcome.summary is None


def test_invalid_json_on_200_is_a_success_with_the_excerpt_kept(
    server: ScriptedServer, caller: Caller
) -> None:
    outcome = call(server, caller, body="OK, done {not json", content_type="application/json")
    assert outcome.status == "success" and outcome.summary is None
    assert outcome.response_excerpt == "OK, done {not json"


def test_a_chunked_ndjson_stream_is_judged_by_its_last_line(
    server: ScriptedServer, caller: Caller
) -> None:
    lines = [{"log": f"step {i}"} for i in range(2000)] + [contract("error", error="late boom")]
    parts = [json.dumps(line).encode() + b"\n" for line in lines]
    server.push(Raw(chunked(200, parts, {"Content-Type": "application/x-ndjson"})))
    outcome = caller.call(request(server))
    assert outcome.status == "error" and outcome.error == "job failed: late boom"
    assert outcome.truncated and len(outcome.response_excerpt or "") == 4096


def test_a_redirect_is_not_followed(server: ScriptedServer, caller: Caller) -> None:
    login = server.url("/login")
    outcome = call(server, caller, status=302, headers={"Location": login})
    assert outcome.status == "error" and outcome.http_status == 302
    assert outcome.error == f"HTTP 302: redirect to {login} not followed"
    assert len(server.requests) == 1


def test_retry_after_is_passed_on_for_the_retry_decision(
    server: ScriptedServer, caller: Caller
) -> None:
    outcome = call(server, caller, status=429, headers={"Retry-After": "30"})
    assert outcome.retry_after == "30"
    decision = decide_retry(outcome, 1, RetryPolicy(), now=SLOT, rng=random.Random())
    assert decision.retry and decision.delay_s == 30.0


# -- bodies -----------------------------------------------------------------------------------


def test_a_huge_body_is_cut_to_the_excerpt(server: ScriptedServer, caller: Caller) -> None:
    outcome = call(server, caller, body=b"x" * (3 << 20))
    assert outcome.response_excerpt == "x" * 4096 and outcome.truncated
    assert outcome.status == "success"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("gzip", lambda data: gzip.compress(data[:20]) + gzip.compress(data[20:])),  # 2 members
        ("gzip", lambda data: gzip.compress(data) + b"\0" * 64),  # zero padding after it
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw, as some servers send it
        ("gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),  # applied in order
    ],
)
def test_an_encoded_body_is_decoded(
    server: ScriptedServer,
    caller: Caller,
    encoding: str,
    compress: Callable[[bytes], bytes],
) -> None:
    body = compress(json.dumps(contract(summary={"deleted": 42})).encode())
    headers = {"Content-Encoding": encoding}
    outcome = call(server, caller, body=body, headers=headers, content_type="application/json")
    assert outcome.summary == {"deleted": 42} and outcome.status == "success"


def test_an_endless_body_is_read_only_up_to_max_body_bytes(
    server: ScriptedServer, make_caller: MakeCaller
) -> None:
    endless = Endless(head(200, {"Content-Type": "text/plain"}))  # no length: until closed
    server.push(endless)
    caller = make_caller(excerpt_bytes=100, json_limit_bytes=1000, max_body_bytes=1 << 20)
    started = time.monotonic()
    outcome = caller.call(request(server))
    assert time.monotonic() - started < 5.0
    assert outcome.response_excerpt == "y" * 100 and outcome.truncated
    assert endless.stopped.wait(5.0)  # the client closed the connection under the stream


def test_a_cut_multibyte_character_is_replaced_not_an_error(
    server: ScriptedServer, make_caller: MakeCaller
) -> None:
    outcome = call(server, make_caller(excerpt_bytes=5), body="ééé".encode())
    assert outcome.response_excerpt == "éé\ufffd"


# -- failures ---------------------------------------------------------------------------------

BROKEN_OFF = head(200, {"Content-Type": "application/json", "Content-Length": "100"}) + b'{"sta'
NOT_GZIP = response(200, b"not gzip", {"Content-Encoding": "gzip"})

FAILURE_TABLE = [
    # (what the server does, status, kind, error, requests the server saw)
    pytest.param(
        Silence(), "timeout", "timeout", "no response within 0.5 s from {t}", 1, id="silence"
    ),
    pytest.param(
        Raw(BROKEN_OFF, close=True),
        "error",
        "connection_error",
        "response from {t} broke off before its end",
        1,
        id="short-body",
    ),
    pytest.param(
        Hangup(),  # on a new connection: not sent again (the endpoint may have read it)
        "error",
        "connection_error",
        "connection closed by {t} before it answered",
        1,
        id="hangup",
    ),
    pytest.param(
        Reset(BROKEN_OFF, delay_s=0.2),  # the job ran: a second copy could run it twice
        "error",
        "connection_error",
        "connection reset by {t}",
        1,
        id="reset-in-body",
    ),
    pytest.param(
        Raw(NOT_GZIP),
        "error",
        "connection_error",
        "response from {t} could not be decoded (Content-Encoding)",
        1,
        id="bad-gzip",
    ),
]


@pytest.mark.parametrize(("answer", "status", "kind", "error", "seen"), FAILURE_TABLE)
def test_failures_become_outcomes(
    server: ScriptedServer,
    caller: Caller,
    answer: Answer,
    status: str,
    kind: str,
    error: str,
    seen: int,
) -> None:
    server.push(answer)
    outcome = caller.call(request(server, timeout_s=0.5))
    assert (outcome.status, outcome.kind, outcome.error) == (
        status,
        kind,
        error.format(t=server.target),
    )
    assert outcome.http_status is None and len(server.requests) == seen


def test_a_connect_that_hangs_is_a_connect_timeout(caller: Caller) -> None:
    with unaccepting_port() as port:
        url = f"http://127.0.0.1:{port}{PATH}"
        outcome = caller.call(CallRequest("POST", url, {}, {"k": 1}, timeout_s=0.5))
    assert (outcome.status, outcome.kind, outcome.http_status) == ("timeout", "timeout", None)
    assert outcome.error == f"connect timeout after 0.5 s to 127.0.0.1:{port}"


def test_a_refused_connection_names_the_target_and_is_not_sent_again(
    caller: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    connects: list[Any] = []
    real_open = outbound.SocketOpener.__call__

    def opened(opener: outbound.SocketOpener, purpose: int, address: Any) -> Any:  # a spy
        connects.append(address[3])
        return real_open(opener, purpose, address)

    monkeypatch.setattr(outbound.SocketOpener, "__call__", opened)
    with refusing_port() as port:
        outcome = caller.call(CallRequest("POST", f"http://127.0.0.1:{port}/", timeout_s=2.0))
    assert (outcome.status, outcome.kind, outcome.http_status) == (
        "error",
        "connection_error",
        None,
    )
    assert outcome.error == f"connection refused to 127.0.0.1:{port}"
    assert connects == [("127.0.0.1", port)]


def test_garbage_instead_of_a_status_line_is_a_connection_error(
    server: ScriptedServer, caller: Caller
) -> None:
    server.push(Raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", close=True))
    outcome = caller.call(request(server))
    assert (outcome.status, outcome.kind, outcome.http_status) == (
        "error",
        "connection_error",
        None,
    )
    assert (outcome.error or "").startswith(f"connection error to {server.target}")


def test_a_second_reset_is_an_error_not_a_loop(server: ScriptedServer, caller: Caller) -> None:
    server.add(payload=contract())  # the first call leaves a kept-alive connection
    server.push(Reset())  # then a reset as soon as a request is read, every time
    assert caller.call(request(server)).status == "success"
    outcome = caller.call(request(server))  # kept-alive, reset; once more on a new one, reset
    assert (outcome.kind, len(server.requests)) == ("connection_error", 3)
    assert outcome.error is not None and "reset" in outcome.error
    assert [sent.connection for sent in server.requests] == [1, 1, 2]


@pytest.mark.parametrize("url", [f"127.0.0.1:8000{PATH}", "http://[::1/crons/x", UNPARSABLE])
def test_a_url_without_a_scheme_or_that_does_not_parse_is_an_invalid_request(
    caller: Caller, url: str
) -> None:
    outcome = caller.call(CallRequest("POST", url))
    assert (outcome.status, outcome.kind, outcome.http_status) == (
        "error",
        "invalid_request",
        None,
    )


def test_a_payload_that_is_not_json_is_an_invalid_request(
    server: ScriptedServer, caller: Caller
) -> None:
    server.add(payload=contract())
    outcome = caller.call(request(server, json={"x": float("nan")}))
    assert (outcome.kind, server.requests) == ("invalid_request", [])


# -- secrets ----------------------------------------------------------------------------------


def leaks(outcome: Outcome) -> list[str]:
    return [
        name
        for name, value in dataclasses.asdict(outcome).items()
        if TOKEN in repr(value) or quote(TOKEN, safe="") in repr(value)
    ]


ECHOING_STATUS_LINE = f"POST {PATH}?cronToken={TOKEN} X-Cron-Token: {TOKEN}\r\n\r\n".encode()
BAD_HEADER = {**cron_headers(TOKEN, "e1", SLOT, "schedule", 1), "X-Trace": f"1\n{TOKEN}"}

LEAKY_RESPONSES = [
    # (what the server does, changes to the request)
    pytest.param({"json": contract(summary={"echo": TOKEN, TOKEN: [TOKEN]})}, {}, id="summary"),
    pytest.param({"json": contract("error", error=f"bad {TOKEN}"), "status": 500}, {}, id="error"),
    pytest.param({"json": {"error": f"unauthorized {TOKEN}"}, "status": 401}, {}, id="401"),
    pytest.param(
        {"status": 302, "headers": {"Location": f"http://x/login?cronToken={TOKEN}"}},
        {},
        id="location",
    ),
    pytest.param({"status": 429, "headers": {"Retry-After": TOKEN}}, {}, id="retry-after"),
    pytest.param(Raw(ECHOING_STATUS_LINE, close=True), {}, id="status-line"),
    pytest.param({"json": contract()}, {"url": UNPARSABLE}, id="unparsable-url"),
    pytest.param({"json": contract()}, {"headers": BAD_HEADER}, id="header-value"),
    pytest.param({"body": f"{'a' * 4080}{TOKEN}"}, {}, id="excerpt-cut"),
]


@pytest.mark.parametrize(("answer", "changes"), LEAKY_RESPONSES)
def test_the_token_never_appears_in_any_outcome_field(
    server: ScriptedServer,
    caller: Caller,
    answer: Answer | dict[str, Any],
    changes: dict[str, Any],
) -> None:
    script(server, answer)
    outcome = caller.call(request(server, **changes))
    assert leaks(outcome) == []


def test_a_header_value_with_a_newline_is_refused_before_it_is_sent(
    server: ScriptedServer, caller: Caller
) -> None:
    server.add(payload=contract())
    outcome = caller.call(request(server, headers=BAD_HEADER))
    assert (outcome.kind, server.requests) == ("invalid_request", [])
    assert outcome.error == (
        "invalid request: ValueError: invalid header value for 'X-Trace': a line break or NUL"
    )


def test_a_token_in_the_url_query_is_redacted_from_unmatched_url_errors(caller: Caller) -> None:
    outcome = caller.call(CallRequest("POST", UNPARSABLE))  # no token header: only the query
    assert outcome.kind == "invalid_request" and leaks(outcome) == []


def test_a_bearer_token_is_redacted_too(server: ScriptedServer, caller: Caller) -> None:
    server.add(payload={"error": f"got Bearer {TOKEN}"}, status=401)
    outcome = caller.call(
        CallRequest("POST", server.url(PATH), {"Authorization": f"Bearer {TOKEN}"})
    )
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


def test_duration_comes_from_the_injected_clock(
    server: ScriptedServer, make_caller: MakeCaller
) -> None:
    outcome = call(server, make_caller(clock=Ticking()), json=contract())
    assert outcome.duration_ms > 0 and outcome.duration_ms % 250 == 0


def test_a_stream_that_outlives_the_timeout_is_a_timeout(
    server: ScriptedServer, make_caller: MakeCaller
) -> None:
    ndjson = head(200, {"Content-Type": "application/x-ndjson", "Transfer-Encoding": "chunked"})
    endless = Endless(ndjson, b'{"log": "still going"}\n' * 1000, chunked=True)
    server.push(endless)
    outcome = make_caller(clock=Ticking()).call(request(server, timeout_s=0.1))
    assert (outcome.status, outcome.kind, outcome.http_status) == ("timeout", "timeout", 200)
    assert outcome.error == "no complete response within 0.1 s"
    assert endless.stopped.wait(5.0)


def test_a_kept_alive_connection_the_server_dropped_is_not_used(
    server: ScriptedServer, caller: Caller
) -> None:
    server.add(payload={"status": "success", "summary": {"n": 1}})
    assert caller.call(request(server)).status == "success"
    server.reset_idle()  # the server drops the kept-alive connection without telling
    outcome = caller.call(request(server))
    assert (outcome.status, outcome.http_status) == ("success", 200)
    assert [sent.connection for sent in server.requests] == [1, 2]


def test_a_kept_alive_connection_closed_under_the_request_is_sent_once_more(
    server: ScriptedServer, caller: Caller
) -> None:
    server.add(payload=contract())
    server.push(Hangup())  # the second request, on the kept-alive connection: read, no answer
    server.add(payload=contract(summary={"n": 2}))
    caller.call(request(server))
    outcome = caller.call(request(server))
    assert (outcome.status, outcome.summary) == ("success", {"n": 2})
    assert [sent.connection for sent in server.requests] == [1, 1, 2]


def test_when_the_server_dropped_every_idle_connection_each_thread_opens_a_new_one(
    server: ScriptedServer, caller: Caller
) -> None:
    # Three call threads, each with its kept-alive connection, idle past the server's
    # keep-alive (gunicorn's is 2 s): none of their next calls may fail on a dead one.
    together = threading.Barrier(3)

    def call_in_step() -> str:
        together.wait(5)  # so that each of the three threads makes one call
        return caller.call(request(server)).status

    with ThreadPoolExecutor(3) as pool:
        for _ in range(6):
            server.add(payload=contract())
        first = list(pool.map(lambda _: call_in_step(), range(3)))
        server.reset_idle()
        second = list(pool.map(lambda _: call_in_step(), range(3)))
    assert first == second == ["success"] * 3
    assert sorted(sent.connection for sent in server.requests) == [1, 2, 3, 4, 5, 6]


def test_bytes_after_the_last_gzip_member_are_ignored_however_the_reads_fall() -> None:
    decoder = _Decoder("gzip")
    body = gzip.compress(b'{"status": "success"}')
    assert decoder.decode(body + b"\0", 1 << 20) == b'{"status": "success"}'  # one byte more
    assert decoder.decode(b"\0" * 63, 1 << 20) == b""  # the rest of the padding, next read


def test_no_answer_on_a_kept_alive_connection_is_a_response_timeout_not_a_connect_one(
    server: ScriptedServer, caller: Caller
) -> None:
    server.add(payload=contract())
    server.push(Silence())  # the second request, on the kept-alive connection: read, no answer
    assert caller.call(request(server)).status == "success"
    outcome = caller.call(request(server, timeout_s=0.5))
    assert (outcome.status, outcome.kind) == ("timeout", "timeout")
    assert outcome.error == f"no response within 0.5 s from {server.target}"  # it was sent
    assert [sent.connection for sent in server.requests] == [1, 1]


def test_a_header_value_beyond_ascii_is_sent_as_latin_1(
    server: ScriptedServer, caller: Caller
) -> None:
    server.add(payload=contract())
    outcome = caller.call(request(server, headers={"X-Region": "Zürich"}))
    assert outcome.status == "success" and server.requests[0].header("X-Region") == "Zürich"
    emoji = caller.call(request(server, headers={"X-Mood": "☀"}))  # not latin-1: not sent
    assert emoji.kind == "invalid_request" and len(server.requests) == 1


def test_a_handle_that_fails_is_an_outcome_not_an_exception(
    server: ScriptedServer, caller: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = pycurl.Curl()
    closed.close()  # as Caller.close() at shutdown can leave one under a thread
    monkeypatch.setattr(caller.pools, "handle", lambda: closed)
    outcome = caller.call(request(server))
    assert (outcome.status, outcome.kind, outcome.http_status) == (
        "error",
        "connection_error",
        None,
    )
    assert (outcome.error or "").startswith("call not made: libcurl handle error")
    assert server.requests == []
