"""Signed calls: sign/verify tables, CronJobs refusing bad signatures, the gateway signing."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway import CronJobs
from gateway import create_app
from gateway import signing
from gateway import tokens
from gateway.config import Settings
from gateway.config import load_settings
from gateway.endpoints.context import RunContext
from gateway.errors import ConfigError
from gateway.scheduler.loop import LoopSettings
from gateway.scheduler.loop import Scheduler
from gateway.store.models import Gateway
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import enqueue
from tests.conftest import CRON_TOKEN
from tests.fakes import FakeClock
from tests.servers import serving

SECRET = "signing-secret-current-0123456789"
NEXT = "signing-secret-next-0123456789"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
T = int(NOW.timestamp())
AUTH = {"X-Cron-Token": CRON_TOKEN}
seen: list[dict[str, Any]] = []


def test_the_signature_is_hmac_sha256_of_time_method_path_and_body() -> None:
    expected = hmac.new(
        SECRET.encode(), f"{T}.POST./crons/report?x=1.".encode() + b'{"a":1}', hashlib.sha256
    ).hexdigest()
    assert signing.sign(SECRET, "post", "/crons/report?x=1", b'{"a":1}', NOW) == (
        f"t={T},v1={expected}"
    )


GOOD = signing.sign(SECRET, "POST", "/crons/report", b"{}", NOW)


@pytest.mark.parametrize(
    ("header", "secrets", "method", "path", "body", "seconds_later", "ok"),
    [
        (GOOD, [SECRET], "POST", "/crons/report", b"{}", 0, True),
        (GOOD, [NEXT, SECRET], "POST", "/crons/report", b"{}", 0, True),  # rotation
        (GOOD, [NEXT], "POST", "/crons/report", b"{}", 0, False),
        (GOOD, [], "POST", "/crons/report", b"{}", 0, False),
        (GOOD, [SECRET], "GET", "/crons/report", b"{}", 0, False),
        (GOOD, [SECRET], "POST", "/crons/other", b"{}", 0, False),
        (GOOD, [SECRET], "POST", "/crons/report?x=1", b"{}", 0, False),
        (GOOD, [SECRET], "POST", "/crons/report", b"{ }", 0, False),
        (GOOD, [SECRET], "POST", "/crons/report", b"{}", 300, True),
        (GOOD, [SECRET], "POST", "/crons/report", b"{}", -300, True),
        (GOOD, [SECRET], "POST", "/crons/report", b"{}", 301, False),  # a replay, later
        (GOOD, [SECRET], "POST", "/crons/report", b"{}", -301, False),  # from the future
        (
            GOOD.upper().replace("T=", "t=").replace("V1=", "v1="),
            [SECRET],
            "POST",
            "/crons/report",
            b"{}",
            0,
            True,
        ),  # hex case does not matter
        (GOOD.replace(f"t={T}", f"t={T + 1}"), [SECRET], "POST", "/crons/report", b"{}", 0, False),
        (f"{GOOD},v1={'0' * 64}", [SECRET], "POST", "/crons/report", b"{}", 0, True),
        (GOOD.split(",")[1], [SECRET], "POST", "/crons/report", b"{}", 0, False),  # no t
        (GOOD.split(",")[0], [SECRET], "POST", "/crons/report", b"{}", 0, False),  # no v1
        (f"t={T},t={T},{GOOD.split(',')[1]}", [SECRET], "POST", "/crons/report", b"{}", 0, False),
        (f"t=-{T},v1=x", [SECRET], "POST", "/crons/report", b"{}", 0, False),
        ("", [SECRET], "POST", "/crons/report", b"{}", 0, False),
        ("garbage", [SECRET], "POST", "/crons/report", b"{}", 0, False),
        (GOOD + "," + "v1=a" * 300, [SECRET], "POST", "/crons/report", b"{}", 0, False),
    ],
)
def test_verify(
    header: str,
    secrets: list[str],
    method: str,
    path: str,
    body: bytes,
    seconds_later: int,
    ok: bool,
) -> None:
    now = NOW + timedelta(seconds=seconds_later)
    assert signing.verify(header, secrets, method, path, body, now) is ok


def test_sign_call_signs_the_path_and_body_the_caller_sends() -> None:
    header = signing.sign_call(SECRET, "post", "http://h:1/a b?q=é", {"x": "é"}, NOW)
    assert header is not None
    body = b'{"x": "\\u00e9"}'
    assert signing.verify(header, [SECRET], "POST", "/a%20b?q=%C3%A9", body, NOW)
    assert signing.sign_call(None, "POST", "http://h/", None, NOW) is None
    assert signing.sign_call(SECRET, "GET", "http://[nope/", None, NOW) is None
    # Escapes as urllib3 writes them on the request line (upper case, unreserved not decoded)
    escaped = signing.sign_call(SECRET, "POST", "http://h/x?x=%7e&p=%41", None, NOW)
    assert escaped is not None
    assert signing.verify(escaped, [SECRET], "POST", "/x?x=%7E&p=%41", b"", NOW)
    assert signing.sign_call(SECRET, "POST", "http://h/", {"x": float("nan")}, NOW) is None


def test_signatures_are_redacted_from_log_text() -> None:
    assert tokens.redact(f"got {GOOD} there") == f"got t={T},v1={tokens.REDACTED} there"
    assert signing.secret_parts(GOOD) == (GOOD, GOOD.split("v1=")[1])


def test_settings_read_the_secrets_and_check_them() -> None:
    env = {
        "GATEWAY_SIGNING_SECRET": SECRET,
        "GATEWAY_SIGNING_SECRET_NEXT": NEXT,
        "GATEWAY_REQUIRE_SIGNATURE": "1",
        "GATEWAY_CONFIG": "/nonexistent.toml",
    }
    settings = load_settings(env)
    assert settings.signing_secrets == (SECRET, NEXT) and settings.require_signature
    assert SECRET not in repr(settings)
    with pytest.raises(ConfigError, match="GATEWAY_REQUIRE_SIGNATURE needs"):
        load_settings({"GATEWAY_REQUIRE_SIGNATURE": "1", "GATEWAY_CONFIG": "/none.toml"})
    with pytest.raises(ConfigError, match="at least 16"):
        load_settings({"GATEWAY_SIGNING_SECRET": "short", "GATEWAY_CONFIG": "/none.toml"})


# --- CronJobs verifies ----------------------------------------------------------------------


def signed_app(settings: Settings, clock: FakeClock, **changes: Any) -> Flask:
    app = create_app(replace(settings, signing_secret=SECRET, **changes), clock=clock)
    cron = CronJobs(app)

    @cron.job("echo")
    def echo(ctx: RunContext) -> Any:
        seen.append({"trigger": ctx.trigger, "payload": ctx.payload})
        return {"ok": True}

    return app


def headers_for(
    path: str, body: bytes, now: datetime, secret: str = SECRET, method: str = "POST"
) -> dict[str, str]:
    return {
        **AUTH,
        "Content-Type": "application/json",
        "X-Cron-Signature": signing.sign(secret, method, path, body, now),
    }


def test_a_good_signature_runs_the_job(settings: Settings, clock: FakeClock) -> None:
    client = signed_app(settings, clock).test_client()
    body = b'{"n": 1}'
    path = "/crons/echo?from=test"
    response = client.post(path, data=body, headers=headers_for(path, body, clock.now()))
    assert response.status_code == 200, response.json
    assert Run.get().status == "success"


@pytest.mark.parametrize(
    "bad",
    [
        {"X-Cron-Signature": signing.sign(SECRET, "POST", "/crons/echo", b'{"n": 2}', NOW)},
        {"X-Cron-Signature": signing.sign(SECRET, "POST", "/crons/other", b'{"n": 1}', NOW)},
        {"X-Cron-Signature": signing.sign("x" * 20, "POST", "/crons/echo", b'{"n": 1}', NOW)},
        {"X-Cron-Signature": "t=1,v1=00"},
        {"X-Cron-Signature": ""},
    ],
)
def test_a_bad_signature_is_401_and_records_nothing(
    settings: Settings, clock: FakeClock, bad: dict[str, str]
) -> None:
    client = signed_app(settings, clock).test_client()
    response = client.post("/crons/echo", data=b'{"n": 1}', headers={**AUTH, **bad})
    assert (response.status_code, response.json) == (401, {"error": "unauthorized"})
    assert Run.select().count() == 0 and Job.select().count() == 0


def test_an_old_signature_is_a_replay(settings: Settings, clock: FakeClock) -> None:
    client = signed_app(settings, clock).test_client()
    headers = headers_for("/crons/echo", b"", clock.now())
    clock.advance(seconds=301)
    assert client.post("/crons/echo", headers=headers).status_code == 401
    assert Run.select().count() == 0


def test_the_next_secret_is_accepted_during_a_rotation(
    settings: Settings, clock: FakeClock
) -> None:
    client = signed_app(settings, clock, signing_secret_next=NEXT).test_client()
    headers = headers_for("/crons/echo", b"", clock.now(), secret=NEXT, method="GET")
    assert client.get("/crons/echo", headers=headers).status_code == 200


def test_unsigned_calls_pass_unless_a_signature_is_required(
    settings: Settings, clock: FakeClock
) -> None:
    assert (
        signed_app(settings, clock).test_client().post("/crons/echo", headers=AUTH).status_code
        == 200
    )
    strict = signed_app(settings, clock, require_signature=True).test_client()
    assert strict.post("/crons/echo", headers=AUTH).status_code == 401
    assert strict.get("/crons", headers=AUTH).status_code == 200  # discovery stays unsigned
    assert Run.select().count() == 1


def test_without_a_secret_a_signature_is_not_checked(client: FlaskClient) -> None:
    headers = {**AUTH, "X-Cron-Signature": "t=1,v1=00"}
    assert client.post("/crons/hello", headers=headers).status_code == 200


def test_the_signature_never_reaches_the_stored_run(settings: Settings, clock: FakeClock) -> None:
    app = signed_app(settings, clock)
    cron = app.extensions["cron_gateway"]

    @cron.job("snoop")
    def snoop(ctx: RunContext) -> Any:
        from flask import request

        ctx.log(f"sig {request.headers['X-Cron-Signature']}")
        raise RuntimeError(request.headers["X-Cron-Signature"])

    headers = headers_for("/crons/snoop", b"", clock.now())
    response = app.test_client().post("/crons/snoop", headers=headers)
    assert response.status_code == 500
    run = Run.get()
    signature = headers["X-Cron-Signature"].split("v1=")[1]
    stored = f"{run.log} {run.error} {run.error_stack} {response.get_data(as_text=True)}"
    assert signature not in stored and "[redacted]" in run.log


# --- the gateway signs ------------------------------------------------------------------------


@pytest.fixture
def strict_url(settings: Settings, clock: FakeClock) -> Iterator[str]:
    seen.clear()
    with serving(signed_app(settings, clock, require_signature=True)) as url:
        yield url


def make_scheduler(settings: Settings, clock: FakeClock, url: str, secret: str | None) -> Scheduler:
    s = Scheduler(
        replace(settings, app_url=url, signing_secret=secret),
        CRON_TOKEN,
        clock=clock,
        pacing=LoopSettings(workers=2, per_host=2),
        rng=random.Random(1),
    )
    Gateway.create(
        instance=s.instance, host="h", pid=1, started_at=clock.now(), seen_at=clock.now()
    )
    return s


def run_job(scheduler: Scheduler, clock: FakeClock, **fields: Any) -> Run:
    job = Job.create(
        name="echo",
        url="/crons/echo?via=gateway",
        created_at=clock.now(),
        updated_at=clock.now(),
        payload={"é": 1},
        **fields,
    )
    enqueue(job, "manual", clock.now())
    try:
        scheduler.run_once()
        assert scheduler.drain(10)
    finally:
        scheduler.dispatcher.close()
    return Run.select().order_by(Run.id.desc()).get()


def test_the_gateway_signs_and_a_strict_endpoint_accepts(
    settings: Settings, clock: FakeClock, strict_url: str
) -> None:
    run = run_job(make_scheduler(settings, clock, strict_url, SECRET), clock)
    assert (run.status, run.http_status) == ("success", 200)
    assert seen == [{"trigger": "manual", "payload": {"é": 1}}]


def test_an_unsigned_job_is_refused_by_a_strict_endpoint(
    settings: Settings, clock: FakeClock, strict_url: str
) -> None:
    run = run_job(make_scheduler(settings, clock, strict_url, SECRET), clock, signed=False)
    assert (run.status, run.http_status) == ("error", 401)
    assert seen == []


def test_a_gateway_with_the_wrong_secret_is_refused(
    settings: Settings, clock: FakeClock, strict_url: str
) -> None:
    run = run_job(make_scheduler(settings, clock, strict_url, NEXT), clock)
    assert (run.status, run.http_status) == ("error", 401)
