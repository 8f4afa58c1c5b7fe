"""Doctor: each check says OK, WARN or FAIL with a fix, against a real local HTTP server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gateway.cli import main
from gateway.clock import SYSTEM_CLOCK
from gateway.doctor import Check
from gateway.doctor import run_checks
from gateway.store.models import Gateway
from gateway.store.models import Job
from tests.conftest import ADMIN_TOKEN
from tests.conftest import CRON_TOKEN
from tests.fakes import FakeClock
from tests.servers import serving


@pytest.fixture
def app_url(app: Flask) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture
def env(db: str, app_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no var/cron-token here
    return {
        "GATEWAY_DATABASE_URL": db,
        "GATEWAY_APP_URL": app_url,
        "GATEWAY_CRON_TOKEN": CRON_TOKEN,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_CONFIG": str(tmp_path / "none.toml"),
    }


def _by_name(checks: list[Check]) -> dict[str, tuple[str, str]]:
    return {c.name.split(" http")[0]: (c.status, c.message) for c in checks}


def _beat(seen_ago: timedelta, role: str = "active") -> None:
    seen = SYSTEM_CLOCK.now() - seen_ago
    Gateway.create(instance="gw-1", host="box", pid=1, started_at=seen, seen_at=seen, role=role)


def _job(name: str, url: str) -> None:
    now = SYSTEM_CLOCK.now()
    Job.create(name=name, url=url, schedule="0 * * * *", created_at=now, updated_at=now)


def test_a_healthy_setup_is_all_ok(env: dict[str, str], app_url: str) -> None:
    _job("hello", "/crons/hello")
    _beat(timedelta(seconds=1))
    checks = run_checks(SYSTEM_CLOCK, env, env["GATEWAY_CONFIG"])
    assert [(c.name, c.status) for c in checks] == [
        ("config", "OK"),
        ("database", "OK"),
        ("cron token", "OK"),
        ("admin token", "OK"),
        (f"target {app_url}", "OK"),
        ("clock", "OK"),
        ("gateway", "OK"),
    ]
    assert "1 jobs: hello" in checks[4].message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_problems_are_named_with_a_fix(env: dict[str, str], app_url: str) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}"
    _job("gone", f"{dead}/crons/gone")
    _beat(timedelta(minutes=5))
    env = {k: v for k, v in env.items() if k not in ("GATEWAY_CRON_TOKEN", "GATEWAY_ADMIN_TOKEN")}
    skewed = FakeClock(SYSTEM_CLOCK.now() + timedelta(seconds=30))
    checks = run_checks(skewed, env, env["GATEWAY_CONFIG"])
    found = _by_name(checks)
    assert found["cron token"][0] == "FAIL"
    assert found["admin token"][0] == "WARN"
    app_check = next(c for c in checks if c.name == f"target {app_url}")
    assert (app_check.status, app_check.message) == ("OK", "answers HTTP (GATEWAY_APP_URL)")
    dead_check = next(c for c in checks if c.name == f"target {dead}")
    assert dead_check.status == "FAIL" and "1 jobs: gone" in dead_check.message
    assert dead_check.fix.startswith("start the app")
    assert found["clock"][0] == "WARN"
    assert found["gateway"][0] == "FAIL" and "heartbeat stale" in found["gateway"][1]


def test_no_gateway_and_a_stopped_one_are_warnings(env: dict[str, str]) -> None:
    assert _by_name(run_checks(SYSTEM_CLOCK, env, env["GATEWAY_CONFIG"]))["gateway"][0] == "WARN"
    _beat(timedelta(hours=1), role="stopped")
    found = _by_name(run_checks(SYSTEM_CLOCK, env, env["GATEWAY_CONFIG"]))
    assert found["gateway"][0] == "WARN" and found["gateway"][1].startswith("stopped")


def test_a_bad_setting_stops_at_the_config_check(tmp_path: Path) -> None:
    env = {"GATEWAY_DATABASE_URL": "mysql://x", "GATEWAY_CONFIG": str(tmp_path / "none.toml")}
    [check] = run_checks(SYSTEM_CLOCK, env, env["GATEWAY_CONFIG"])
    assert (check.name, check.status) == ("config", "FAIL")
    assert "GATEWAY_DATABASE_URL must start with" in check.message


def test_an_unreachable_database_fails(tmp_path: Path) -> None:
    env = {
        "GATEWAY_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{_closed_port()}/none",
        "GATEWAY_CONFIG": str(tmp_path / "none.toml"),
    }
    checks = run_checks(SYSTEM_CLOCK, env, env["GATEWAY_CONFIG"])
    assert [(c.name, c.status) for c in checks] == [("config", "OK"), ("database", "FAIL")]
    assert checks[1].message.startswith("cannot reach the database: OperationalError")


def test_the_command_prints_each_check_and_exits_1_on_fail(
    env: dict[str, str], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GATEWAY_CRON_TOKEN")
    with pytest.raises(SystemExit) as info:
        main(["doctor"])
    out = capsys.readouterr().out
    assert info.value.code == 1
    assert out.splitlines()[0].startswith("OK    config: settings load")
    assert "FAIL  cron token: no GATEWAY_CRON_TOKEN" in out
    assert "      fix: set GATEWAY_CRON_TOKEN" in out
    monkeypatch.setenv("GATEWAY_CRON_TOKEN", CRON_TOKEN)
    _beat(timedelta(seconds=0))
    with pytest.raises(SystemExit) as info:
        main(["doctor", "--json"])
    checks = json.loads(capsys.readouterr().out)
    assert info.value.code == 0
    assert {c["status"] for c in checks} == {"OK"}
