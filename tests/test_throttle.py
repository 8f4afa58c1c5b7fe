"""Abuse: bad tokens per address are throttled (429 + Retry-After), other addresses are not."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from gateway import create_app
from gateway.config import Settings
from gateway.store.models import Run
from gateway.throttle import Throttle
from gateway.throttle import client_key
from tests.conftest import ADMIN_TOKEN
from tests.conftest import CRON_TOKEN
from tests.conftest import make_jobs
from tests.fakes import FakeClock

ATTACKER = "203.0.113.7"
NEIGHBOUR = "203.0.113.8"
BAD = {"X-Cron-Token": "wrong-token-0123456789"}
GOOD = {"X-Cron-Token": CRON_TOKEN}
LIMITED = {"error": "too many failed attempts, retry later"}


def test_the_limit_is_reached_at_the_nth_failure_in_the_window() -> None:
    throttle = Throttle(failures=3, window_seconds=60)
    for t in (0.0, 10.0):
        throttle.failed("10.0.0.1", t)
    assert throttle.retry_after("10.0.0.1", 10.0) is None
    throttle.failed("10.0.0.1", 20.0)
    assert throttle.retry_after("10.0.0.1", 20.0) == 40  # until the failure at 0 is 60 s old
    assert throttle.retry_after("10.0.0.1", 59.5) == 1
    assert throttle.retry_after("10.0.0.1", 60.0) is None  # the window slid past it
    throttle.failed("10.0.0.1", 61.0)
    assert throttle.retry_after("10.0.0.1", 61.0) == 9  # failures at 10, 20, 61
    assert throttle.retry_after("10.0.0.2", 61.0) is None


def test_memory_is_bounded_by_an_lru_of_addresses() -> None:
    throttle = Throttle(failures=2, window_seconds=60, max_addresses=3)
    for i in range(100):
        for _ in range(5):
            throttle.failed(f"10.0.0.{i}", 1.0)
    assert len(throttle) == 3
    assert throttle.retry_after("10.0.0.99", 1.0) == 60
    assert throttle.retry_after("10.0.0.0", 1.0) is None  # forgotten, not punished


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "unknown"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_addresses_are_counted_per_host(address: str | None, key: str) -> None:
    assert client_key(address) == key


@pytest.fixture
def cron_app(settings: Settings, clock: FakeClock) -> Flask:
    app = create_app(replace(settings, throttle_failures=3), clock=clock)
    make_jobs().init_app(app)
    return app


def post(client: FlaskClient, headers: dict[str, str], address: str) -> TestResponse:
    return client.post("/crons/hello", headers=headers, environ_base={"REMOTE_ADDR": address})


def test_an_address_with_many_bad_tokens_gets_429_until_the_window_passes(
    cron_app: Flask, clock: FakeClock
) -> None:
    client = cron_app.test_client()
    assert post(client, GOOD, ATTACKER).status_code == 200  # e.g. the gateway on this host
    assert [post(client, BAD, ATTACKER).status_code for _ in range(3)] == [401, 401, 401]
    limited = post(client, BAD, ATTACKER)
    assert (limited.status_code, limited.json) == (429, LIMITED)
    assert limited.headers["Retry-After"] == "60"
    # During the penalty a token that was good from this address before still works; any
    # other, right or wrong, is refused unchecked, so guessing gains nothing.
    assert post(client, GOOD, ATTACKER).status_code == 200
    assert post(client, {"X-Cron-Token": ADMIN_TOKEN}, ATTACKER).status_code == 429
    assert post(client, GOOD, NEIGHBOUR).status_code == 200  # other callers go on
    clock.advance(seconds=30)
    assert post(client, BAD, ATTACKER).headers["Retry-After"] == "30"
    clock.advance(seconds=30)
    assert post(client, {"X-Cron-Token": ADMIN_TOKEN}, ATTACKER).status_code == 200
    assert Run.select().count() == 4


def test_calls_without_a_token_and_good_calls_do_not_count(cron_app: Flask) -> None:
    client = cron_app.test_client()
    for _ in range(10):
        assert post(client, {}, ATTACKER).status_code == 401
        assert post(client, GOOD, ATTACKER).status_code == 200
    assert post(client, BAD, ATTACKER).status_code == 401


def test_every_cron_route_is_throttled(cron_app: Flask) -> None:
    client = cron_app.test_client()
    for _ in range(3):
        post(client, BAD, ATTACKER)
    environ = {"REMOTE_ADDR": ATTACKER}
    assert client.get("/crons", headers=GOOD, environ_base=environ).status_code == 429
    status = f"/crons/hello/runs/{'0' * 32}"
    assert client.get(status, headers=GOOD, environ_base=environ).status_code == 429
    assert post(client, GOOD, ATTACKER).status_code == 429  # never good from here before


def test_the_management_api_shares_the_throttle(cron_app: Flask) -> None:
    client = cron_app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    environ = {"REMOTE_ADDR": ATTACKER}
    for _ in range(3):
        wrong = {"Authorization": "Bearer nope-0123456789abcdef"}
        assert client.get("/api/jobs", headers=wrong, environ_base=environ).status_code == 401
    limited = client.get("/api/jobs", headers=admin, environ_base=environ)
    assert limited.status_code == 429
    assert limited.json["error"]["code"] == "rate_limited"
    neighbour = {"REMOTE_ADDR": NEIGHBOUR}
    assert client.get("/api/jobs", headers=admin, environ_base=neighbour).status_code == 200
    assert post(client, GOOD, ATTACKER).status_code == 429  # the same count as the endpoints


def test_bodies_are_limited_app_wide(settings: Settings, clock: FakeClock) -> None:
    client = create_app(settings, clock=clock).test_client()  # no CronJobs on this app
    big = b"x" * (settings.max_body_bytes + 1)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    assert client.post("/api/jobs", data=big, headers=admin).status_code == 413
