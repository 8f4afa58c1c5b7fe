"""Crontab import on realistic files: curl lines become jobs, tokens become hashed keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway import tokens
from gateway.cli import main
from gateway.config import Settings
from gateway.importer import LineError
from gateway.importer import import_crontab
from gateway.importer import parse_curl
from gateway.store.jobs import job_as_dict
from gateway.store.keys import verify_key
from gateway.store.models import Job
from gateway.store.models import Key
from tests.fakes import FakeClock

DATA = Path(__file__).parent / "data" / "crontabs"
SHOP_SECRET = "s3cr3t-shop-cron-4f7a9c1e8b2d"


def _settings(db: str, *targets: str) -> Settings:
    return Settings(database_url=db, allowed_targets=targets, cron_token="gateway-own-token-0123")


def _jobs() -> dict[str, dict[str, Any]]:
    return {j.name: job_as_dict(j) for j in Job.select()}


def _import(name: str, db: str, clock: FakeClock, *targets: str, **kw: Any) -> Any:
    text = (DATA / name).read_text()
    return import_crontab(text, clock.now(), settings=_settings(db, *targets), **kw)


def test_a_laravel_app_crontab(db: str, clock: FakeClock) -> None:
    report = _import("laravel-app.crontab", db, clock, "shop.example.com")
    assert [(s["line"], s["reason"][:29]) for s in report.skipped] == [
        (8, "not a curl command: * * * * *")
    ]
    assert report.refused == [
        {"line": 15, "reason": "the command uses credentials (-u), which a job cannot carry"}
    ]
    jobs = _jobs()
    assert sorted(jobs) == ["prune-carts", "refresh-rates", "send-reminders", "weekly-digest"]
    reminders = jobs["send-reminders"]
    assert (reminders["schedule"], reminders["method"], reminders["timeout"]) == (
        "*/5 * * * *",
        "GET",
        30,
    )
    assert (reminders["headers"], reminders["source"], reminders["tz"]) == ({}, "import", "UTC")
    carts = jobs["prune-carts"]
    assert (carts["method"], carts["payload"], carts["timeout"]) == ("POST", {"days": 30}, 600)
    digest = jobs["weekly-digest"]
    assert (digest["method"], digest["url"]) == (
        "POST",
        "https://shop.example.com/api/cron/weekly-digest?segment=all",
    )
    assert jobs["refresh-rates"]["url"] == "https://shop.example.com/api/cron/refresh-rates"
    assert jobs["refresh-rates"]["schedule"] == "@hourly"
    # One secret on four lines (a variable, a header, a query parameter): one key, hashed.
    assert report.keys == [
        {"lines": [11, 12, 13, 14], "name": "imported-shop-example-com", "created": True}
    ]
    key = Key.get(Key.name == "imported-shop-example-com")
    assert (key.scope, key.secret_hash) == ("invoke", tokens.hash_token(SHOP_SECRET))
    caller = verify_key(SHOP_SECRET, clock.now())
    assert caller is not None and caller.name == "imported-shop-example-com"
    assert SHOP_SECRET not in json.dumps([report.jobs, report.keys])


def test_cron_tz_mailto_macros_and_duplicate_names(db: str, clock: FakeClock) -> None:
    report = _import("reports-cron-tz.crontab", db, clock, "reports.example.com")
    jobs = _jobs()
    assert {n: (j["schedule"], j["tz"], j["method"]) for n, j in jobs.items()} == {
        "daily-report": ("30 7 * * MON-FRI", "Europe/Berlin", "POST"),
        "daily-report-2": ("0 18 * * 5", "Europe/Berlin", "POST"),
        "sync-ledger": ("0 */6 * * *", "UTC", "GET"),
        "sync-ledger-2": ("@daily", "UTC", "GET"),
    }
    assert jobs["daily-report"]["payload"] == {"format": "pdf"}
    assert jobs["daily-report"]["headers"] == {}
    assert [r["line"] for r in report.refused] == [10, 11]
    assert report.refused[0]["reason"] == "@reboot is not a schedule"
    assert "host 'unknown.example.org' is not an allowed target" in report.refused[1]["reason"]
    assert [k["name"] for k in report.keys] == ["imported-reports-example-com"]


def test_a_system_crontab_with_user_fields_and_other_commands(db: str, clock: FakeClock) -> None:
    report = _import("mixed-system.crontab", db, clock)
    assert [s["line"] for s in report.skipped] == [5, 6, 7, 10]
    assert [r["line"] for r in report.refused] == [11]
    assert "not JSON" in report.refused[0]["reason"]
    jobs = _jobs()
    assert sorted(jobs) == ["cleanup-sessions", "sync-inventory"]
    assert jobs["cleanup-sessions"]["url"] == "http://127.0.0.1:8000/crons/cleanup-sessions"
    # The token came from a variable the crontab does not set: nothing to move, said so.
    inventory = next(j for j in report.jobs if j["name"] == "sync-inventory")
    assert (inventory["key"], "$APP_CRON_TOKEN" in inventory["note"]) == (None, True)
    assert report.keys == [] and Key.select().count() == 0


def test_a_dry_run_changes_nothing_and_shows_no_secret(db: str, clock: FakeClock) -> None:
    report = _import("laravel-app.crontab", db, clock, "shop.example.com", dry_run=True)
    assert len(report.jobs) == 4 and report.keys[0]["created"] is False
    assert Job.select().count() == 0 and Key.select().count() == 0
    assert SHOP_SECRET not in json.dumps([report.jobs, report.keys])


def test_importing_twice_reuses_the_key(db: str, clock: FakeClock) -> None:
    _import("laravel-app.crontab", db, clock, "shop.example.com")
    again = _import("laravel-app.crontab", db, clock, "shop.example.com")
    assert again.keys[0] == {
        "lines": [11, 12, 13, 14],
        "name": "imported-shop-example-com",
        "created": False,
    }
    assert Key.select().count() == 1


U = "https://a.example/x"


@pytest.mark.parametrize(
    ("command", "fields"),
    [
        (f"curl {U}", ("GET", U, {}, None, None)),
        (f"curl -d '{{}}' {U}", ("POST", U, {}, {}, None)),
        (f"curl -sSfm 7 -XPUT {U}", ("PUT", U, {}, None, 7)),
        (f"curl --max-time=2.5 --url {U}", ("GET", U, {}, None, 3)),
        (f"curl -H 'Accept: text/plain' {U}", ("GET", U, {"Accept": "text/plain"}, None, None)),
        (f"curl -o /dev/null -w '\\%{{http_code}}' {U}", ("GET", U, {}, None, None)),
        (f"curl {U}?a=1\\%202 % stdin text", ("GET", f"{U}?a=1%202", {}, None, None)),
    ],
)
def test_curl_options_are_read(command: str, fields: tuple[Any, ...]) -> None:
    call = parse_curl(command, {})
    assert (call.method, call.url, call.headers, call.payload, call.timeout) == fields


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("wget -q https://a.example/x", "not curl"),
        ("curl https://a.example/x https://a.example/y", "expected one URL"),
        ("curl -d @body.json https://a.example/x", "a file"),
        ("curl -b session=1 https://a.example/x", "cookies"),
        ("curl 'https://a.example/x", "cannot read the command"),
    ],
)
def test_curl_commands_that_cannot_be_jobs(command: str, error: str) -> None:
    with pytest.raises(LineError, match=error):
        parse_curl(command, {})


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture
def env(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db)
    monkeypatch.setenv("GATEWAY_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("GATEWAY_ALLOWED_TARGETS", "shop.example.com")


def test_the_command_reports_each_line_and_exits_1_for_refused_lines(
    env: None, capsys: Any
) -> None:
    code, out, err = _cli(["import", "crontab", str(DATA / "laravel-app.crontab")], capsys)
    assert (code, err) == (1, "")
    assert out.splitlines()[0].startswith("line 8: skipped: not a curl command")
    assert "line 11: job send-reminders: */5 * * * * UTC, GET https://shop.example.com/" in out
    assert "line 15: refused: the command uses credentials (-u)" in out
    assert "new key imported-shop-example-com: the token on lines 11, 12, 13, 14" in out
    assert out.splitlines()[-1] == "imported 4 jobs; skipped 1 lines, refused 1"
    assert SHOP_SECRET not in out


def test_the_command_as_json_and_a_missing_file(env: None, capsys: Any, tmp_path: Path) -> None:
    argv = ["import", "crontab", str(DATA / "laravel-app.crontab"), "--dry-run", "--json"]
    code, out, _ = _cli(argv, capsys)
    assert (code, len(json.loads(out)["jobs"])) == (1, 4)
    code, out, err = _cli(["import", "crontab", str(tmp_path / "none")], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: cannot read ") and len(err.splitlines()) == 1
