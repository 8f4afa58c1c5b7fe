"""Fixtures: a database on each backend, a fake clock, settings, and a test app with cron jobs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway import CronJobs
from gateway import create_app
from gateway.config import Settings
from gateway.endpoints.context import RunContext
from gateway.store.db import close_database
from gateway.store.db import ensure_open
from tests.backends import BACKENDS
from tests.backends import database_url
from tests.backends import postgres_url
from tests.fakes import FakeClock

CRON_TOKEN = "test-cron-token-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"


def _backend_params() -> list[Any]:
    off = pytest.mark.skip(reason="PostgreSQL tests switched off by GATEWAY_TEST_POSTGRES=off")
    return [
        pytest.param(b, marks=[off] if b == "postgres" and postgres_url() is None else [])
        for b in BACKENDS
    ]


@pytest.fixture(params=_backend_params())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: SQLite file, then PostgreSQL schema."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[str]:
    """The models opened on an empty database (schema created); closed afterwards."""
    ensure_open(db_url)
    yield db_url
    close_database()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))


@pytest.fixture
def settings(db: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db,
        jobs_file=str(tmp_path / "no-jobs.toml"),  # tests declare their jobs themselves
        cron_token=CRON_TOKEN,
        admin_token=ADMIN_TOKEN,
        heartbeat_seconds=0.05,
        lease_seconds=5.0,
        log_limit_bytes=2000,
        max_body_bytes=10_000,
    )


def make_jobs() -> CronJobs:
    """The jobs the endpoint tests call."""
    cron = CronJobs()

    @cron.job("hello", schedule="*/5 * * * *", tags=["demo"], description="says hello")
    def hello(ctx: RunContext) -> Any:
        ctx.log(f"hello from attempt {ctx.attempt}")
        return {"payload": ctx.payload, "trigger": ctx.trigger}

    @cron.job("fails")
    def fails(ctx: RunContext) -> Any:
        ctx.log("about to fail")
        raise RuntimeError("the warehouse said no")

    @cron.job("skips")
    def skips(ctx: RunContext) -> Any:
        ctx.skip("nothing to do today")

    @cron.job("chatty")
    def chatty(ctx: RunContext) -> Any:
        for i in range(500):
            ctx.log(f"line {i:03d} " + "x" * 20)
        return {"lines": 500}

    @cron.job("background", mode="async")
    def background(ctx: RunContext) -> Any:
        time.sleep(0.2)
        ctx.progress(1, 1)
        return {"done": True}

    @cron.job("streamed", mode="stream")
    def streamed(ctx: RunContext) -> Any:
        for i in range(3):
            ctx.log(f"step {i}")
            ctx.progress(i + 1, 3)
        return {"steps": 3}

    @cron.job("leaky")
    def leaky(ctx: RunContext) -> Any:
        ctx.log(f"my token is {CRON_TOKEN}")
        raise ValueError(f"bad token {CRON_TOKEN}")

    return cron


@pytest.fixture
def app(settings: Settings, clock: FakeClock) -> Flask:
    app = create_app(settings, clock=clock)
    make_jobs().init_app(app)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
