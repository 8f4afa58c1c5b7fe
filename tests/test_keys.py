"""Keys: `python -m gateway keys create|list|revoke`, list_keys/key_as_dict, instant revocation."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask

from gateway import create_app
from gateway.cli import main
from gateway.config import Settings
from gateway.store import keys
from gateway.store.jobs import ensure_job
from gateway.store.models import Key
from tests.conftest import make_jobs
from tests.fakes import FakeClock

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def env(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db)
    monkeypatch.setenv("GATEWAY_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("GATEWAY_JOBS_FILE", str(tmp_path / "jobs.toml"))


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_create_prints_the_secret_once_and_stores_only_its_hash(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["keys", "create", "deploy", "--scope", "invoke"], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "created key 'deploy' (invoke)"
    secret = lines[1].removeprefix("secret: ")
    assert secret.startswith("cg_") and len(secret) > 40
    assert "will not be shown again" in lines[2]
    key = Key.get(Key.name == "deploy")
    assert secret not in repr(key.__data__) and key.secret_hash != secret
    assert keys.verify_key(secret, NOW) == keys.Caller("deploy", "invoke")

    code, out, _ = run_cli(["keys", "list"], capsys)
    assert code == 0 and secret not in out and key.secret_hash not in out
    assert out.splitlines()[1].split()[:3] == ["deploy", "invoke", "-"]


def test_create_json_has_the_secret_and_list_json_never(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_job("report", {"url": "/crons/report"}, NOW)
    argv = ["keys", "create", "r", "--scope", "invoke", "--job", "report", "--json"]
    code, out, _ = run_cli(argv, capsys)
    created = json.loads(out)
    assert code == 0 and created["job"] == "report" and created["secret"].startswith("cg_")
    run_cli(["keys", "create", "ops", "--scope", "admin"], capsys)
    code, out, _ = run_cli(["keys", "list", "--json"], capsys)
    listed = json.loads(out)
    assert [k["name"] for k in listed] == ["ops", "r"]
    assert all(
        set(k) == {"name", "scope", "job", "prefix", "created_at", "last_used_at", "revoked_at"}
        for k in listed
    )
    assert created["secret"] not in out and listed[1]["prefix"] == created["prefix"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "create", "k", "--scope", "root"], "'root' is not one of"),
        (["keys", "create", "k", "--scope", "invoke", "--job", "nope"], "no job named 'nope'"),
        (["keys", "create", "k", "--scope", "admin", "--job", "report"], "only invoke keys"),
        (["keys", "create", "", "--scope", "admin"], "name must be 1 to 100 characters"),
        (["keys", "create", "taken", "--scope", "admin"], "a key named 'taken' already exists"),
        (["keys", "revoke", "nope"], "no active key named 'nope'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    env: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    keys.create_key("taken", "invoke", NOW)
    ensure_job("report", {"url": "/crons/report"}, NOW)
    code, out, err = run_cli(argv, capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert [k.name for k in keys.list_keys()] == ["taken"]


def test_revoke_marks_it_and_list_shows_it(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    keys.create_key("old", "invoke", NOW)
    assert run_cli(["keys", "revoke", "old"], capsys)[:2] == (0, "key 'old' revoked\n")
    assert run_cli(["keys", "revoke", "old"], capsys)[0] == 2  # already revoked
    code, out, _ = run_cli(["keys", "list"], capsys)
    assert "revoked" in out.splitlines()[1]
    assert run_cli(["keys", "list", "--active"], capsys)[1] == "no keys\n"
    assert [k.name for k in keys.list_keys(include_revoked=False)] == []


def _worker(settings: Settings, clock: FakeClock) -> Flask:
    app = create_app(settings, clock=clock)
    make_jobs().init_app(app)
    return app


def test_revocation_is_effective_at_once_in_every_worker(
    settings: Settings, clock: FakeClock, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two apps on one database stand for two gunicorn workers: neither caches keys.
    workers = [_worker(settings, clock).test_client() for _ in range(2)]
    _, secret = keys.create_key("rotating", "invoke", clock.now())
    headers = {"Authorization": f"Bearer {secret}"}
    assert [w.post("/crons/hello", headers=headers).status_code for w in workers] == [200, 200]
    assert run_cli(["keys", "revoke", "rotating"], capsys)[0] == 0
    assert [w.post("/crons/hello", headers=headers).status_code for w in workers] == [401, 401]


def test_a_job_key_runs_only_its_job_and_last_use_is_kept(
    settings: Settings, clock: FakeClock
) -> None:
    client = _worker(settings, clock).test_client()
    ensure_job("hello", {"url": "/crons/hello"}, clock.now())
    _, secret = keys.create_key("hello-only", "invoke", clock.now(), job="hello")
    headers = {"X-Cron-Token": secret}
    assert client.post("/crons/hello", headers=headers).status_code == 200
    assert client.post("/crons/skips", headers=headers).status_code == 403
    shown = keys.key_as_dict(Key.get(Key.name == "hello-only"))
    assert shown["last_used_at"] == clock.now().isoformat()
