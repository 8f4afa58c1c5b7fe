"""The management API's job routes and its doors, through Flask's test client, on both backends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.errors import RateLimitedError
from gateway.store import keys
from gateway.store.models import MODELS
from gateway.store.models import Job
from gateway.store.models import Run
from tests.conftest import ADMIN_TOKEN
from tests.conftest import CRON_TOKEN
from tests.fakes import FakeClock

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JOB = {"name": "report", "url": "/crons/report", "schedule": "0 3 * * *", "tz": "Europe/Berlin"}


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table: equal before and after means nothing was written."""
    return {
        m.__name__: list(m.select().order_by(*m._meta.get_primary_keys()).dicts()) for m in MODELS
    }


def create(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/jobs", json={**JOB, **fields}, headers=AUTH)
    assert response.status_code == 201, response.json
    body: dict[str, Any] = response.json
    return body


def error_of(response: Any) -> tuple[int, str, str | None]:
    """Return (status, code, field), checking the error body has exactly the contract's keys."""
    body = response.json
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}, body
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    return response.status_code, body["error"]["code"], body["error"]["field"]


# --- who may call -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": "Bearer " + "x" * 10_000},
    ],
)
def test_a_missing_or_wrong_token_is_401_on_every_route(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    for method, path in [("GET", "/api/jobs"), ("POST", "/api/jobs"), ("GET", "/api/runs")]:
        response = client.open(path, method=method, headers=headers, json=JOB)
        assert error_of(response) == (401, "unauthorized", None)
    assert Job.select().count() == 0


def test_an_invoke_key_never_opens_the_api(client: FlaskClient, clock: FakeClock) -> None:
    _, secret = keys.create_key("caller", "invoke", clock.now())
    for token in (CRON_TOKEN, secret):
        response = client.get("/api/jobs", headers={"Authorization": f"Bearer {token}"})
        assert error_of(response) == (403, "forbidden", None)


def test_an_admin_key_opens_it_until_it_is_revoked(client: FlaskClient, clock: FakeClock) -> None:
    _, secret = keys.create_key("ops", "admin", clock.now())
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/jobs", headers=headers).json == {"jobs": []}
    assert client.delete("/api/keys/ops", headers=AUTH).status_code == 200
    assert error_of(client.get("/api/jobs", headers=headers)) == (401, "unauthorized", None)


def test_the_bootstrap_admin_token_opens_it(client: FlaskClient) -> None:
    assert client.get("/api/jobs", headers=AUTH).status_code == 200


# --- jobs ---------------------------------------------------------------------------------


def test_create_read_list_edit_and_delete_a_job(client: FlaskClient, clock: FakeClock) -> None:
    created = create(client, tags=["nightly"])
    assert created["name"] == "report" and created["state"] == "enabled"
    assert created["source"] == "api" and created["next_run_at"] == "2026-11-24T02:00:00+00:00"
    assert client.get("/api/jobs/report", headers=AUTH).json == created
    assert client.get("/api/jobs", headers=AUTH).json == {"jobs": [created]}
    assert client.get("/api/jobs?tag=nightly", headers=AUTH).json == {"jobs": [created]}
    assert client.get("/api/jobs?tag=other", headers=AUTH).json == {"jobs": []}

    clock.advance(minutes=1)
    edited = client.patch("/api/jobs/report", json={"schedule": "30 4 * * *"}, headers=AUTH)
    assert edited.status_code == 200
    assert edited.json["schedule"] == "30 4 * * *"
    assert edited.json["next_run_at"] == "2026-11-24T03:30:00+00:00"

    deleted = client.delete("/api/jobs/report", headers=AUTH)
    assert deleted.status_code == 200 and deleted.json["state"] == "deleted"
    assert client.get("/api/jobs", headers=AUTH).json == {"jobs": []}
    listed = client.get("/api/jobs?include_deleted=true", headers=AUTH).json["jobs"]
    assert [j["name"] for j in listed] == ["report"]
    assert error_of(client.patch("/api/jobs/report", json={}, headers=AUTH))[0] == 404


def test_trigger_queues_a_manual_run_with_an_optional_payload(client: FlaskClient) -> None:
    create(client)
    response = client.post("/api/jobs/report/trigger", json={"payload": {"n": 1}}, headers=AUTH)
    assert response.status_code == 202
    run = response.json
    assert (run["status"], run["trigger"], run["job"]) == ("queued", "manual", "report")
    assert response.headers["Location"] == f"/api/runs/{run['execution_id']}"
    bare = client.post("/api/jobs/report/trigger", headers=AUTH)
    assert bare.status_code == 202
    stored = list(Run.select().order_by(Run.id))
    assert [r.payload for r in stored] == [{"n": 1}, None]


def test_pause_with_a_note_and_an_end_then_resume(client: FlaskClient, clock: FakeClock) -> None:
    create(client)
    until = (clock.now() + timedelta(hours=9)).isoformat()
    body = {"note": "database migration", "until": until, "fate": "once"}
    paused = client.post("/api/jobs/report/pause", json=body, headers=AUTH)
    assert paused.status_code == 200, paused.json
    job = paused.json
    assert (job["state"], job["pause_note"], job["pause_fate"]) == (
        "paused",
        "database migration",
        "once",
    )
    assert job["paused_until"] == "2026-11-23T18:00:00+00:00"
    resumed = client.post("/api/jobs/report/resume", headers=AUTH)
    assert resumed.status_code == 200 and resumed.json["state"] == "enabled"
    assert resumed.json["pause_note"] is None


# --- errors: each a clear 4xx naming the field, and nothing written -------------------------

BAD_BODIES = [
    ({**JOB, "schedule": "61 * * * *"}, 400, "invalid_schedule", "schedule"),
    ({**JOB, "schedule": "0 0 31 2 *"}, 400, "invalid_schedule", "schedule"),
    ({**JOB, "tz": "Mars/Olympus"}, 400, "invalid_schedule", "tz"),
    ({**JOB, "timeout": -5}, 400, "invalid", "timeout"),
    ({**JOB, "timeout": "10"}, 400, "invalid", "timeout"),
    ({**JOB, "enabled": "yes"}, 400, "invalid", "enabled"),
    ({**JOB, "tags": "a,b"}, 400, "invalid", "tags"),
    ({**JOB, "name": ""}, 400, "invalid", "name"),
    ({**JOB, "name": "Has Spaces"}, 400, "invalid", "name"),
    ({**JOB, "colour": "blue"}, 400, "invalid", "colour"),
    ({**JOB, "url": "http://169.254.169.254/latest"}, 400, "invalid", "url"),
    ({**JOB, "headers": {"Authorization": "x"}}, 400, "invalid", "headers"),
    ({"url": "/crons/x"}, 400, "invalid", "name"),
]


@pytest.mark.parametrize(("body", "status", "code", "field"), BAD_BODIES)
def test_a_bad_job_is_refused_naming_the_field_and_nothing_is_written(
    client: FlaskClient, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    before = snapshot()
    response = client.post("/api/jobs", json=body, headers=AUTH)
    assert error_of(response) == (status, code, field)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("{bad json", "malformed_json"),
        ("", "malformed_json"),
        ("[1, 2]", "malformed_json"),
        ('"a string"', "malformed_json"),
        ("null", "malformed_json"),
        ('{"name": NaN}', "malformed_json"),
        ("[" * 100_000, "too_large"),
        (b"\xff\xfe{}", "malformed_json"),
    ],
)
def test_malformed_and_oversized_bodies_are_4xx(
    client: FlaskClient, data: str | bytes, code: str
) -> None:
    before = snapshot()
    for path in ("/api/jobs", "/api/keys", "/api/jobs/pause"):
        response = client.post(path, data=data, headers=AUTH, content_type="application/json")
        status = 413 if code == "too_large" else 400
        assert error_of(response) == (status, code, None)
    assert snapshot() == before


@pytest.mark.parametrize("depth", [50, 900, 4000])
def test_a_deeply_nested_body_is_never_a_500(client: FlaskClient, depth: int) -> None:
    data = '{"payload": ' + "[" * depth + "]" * depth + "}"
    create(client)
    response = client.post("/api/jobs/report/trigger", data=data, headers=AUTH)
    assert response.status_code in (202, 400), response.json
    if response.status_code == 202:
        shown = client.get(response.headers["Location"], headers=AUTH)
        assert shown.status_code == 200


def test_a_duplicate_name_is_409_and_the_first_job_stays(client: FlaskClient) -> None:
    create(client)
    before = snapshot()
    response = client.post("/api/jobs", json={**JOB, "url": "/crons/other"}, headers=AUTH)
    assert error_of(response) == (409, "conflict", "name")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("PATCH", "/api/jobs/report", {"timeout": 0}, (400, "invalid", "timeout")),
        ("PATCH", "/api/jobs/report", {"tz": "Nowhere/Atall"}, (400, "invalid_schedule", "tz")),
        ("PATCH", "/api/jobs/report", {"name": "other"}, (400, "invalid", "name")),
        ("PATCH", "/api/jobs/report", {"nope": 1}, (400, "invalid", "nope")),
        ("PATCH", "/api/jobs/missing", {"timeout": 5}, (404, "not_found", "name")),
        ("POST", "/api/jobs/report/trigger", {"data": 1}, (400, "invalid", "data")),
        ("POST", "/api/jobs/missing/trigger", None, (404, "not_found", "name")),
        ("POST", "/api/jobs/report/pause", {"note": 5}, (400, "invalid", "note")),
        ("POST", "/api/jobs/report/pause", {"until": "tomorrow"}, (400, "invalid", "until")),
        (
            "POST",
            "/api/jobs/report/pause",
            {"until": "2026-12-01T00:00"},
            (400, "invalid", "until"),
        ),
        (
            "POST",
            "/api/jobs/report/pause",
            {"until": "2020-01-01T00:00Z"},
            (400, "invalid", "until"),
        ),
        ("POST", "/api/jobs/report/pause", {"fate": "all"}, (400, "invalid", "fate")),
        ("POST", "/api/jobs/report/resume", {"x": 1}, (400, "invalid", "x")),
        ("DELETE", "/api/jobs/missing", None, (404, "not_found", "name")),
        ("GET", "/api/jobs/missing", None, (404, "not_found", "name")),
        ("GET", "/api/jobs?include_deleted=yes", None, (400, "invalid", "include_deleted")),
        ("GET", "/api/jobs?colour=blue", None, (400, "invalid", "colour")),
        ("GET", "/api/nothing/here", None, (404, "not_found", None)),
        ("GET", "/api", None, (404, "not_found", None)),
        ("PUT", "/api/jobs", None, (405, "method_not_allowed", None)),
        ("POST", "/api/jobs/report", None, (405, "method_not_allowed", None)),
        ("GET", "/api/jobs/report/trigger", None, (405, "method_not_allowed", None)),
    ],
)
def test_every_job_route_error_is_json_and_changes_nothing(
    client: FlaskClient, method: str, path: str, body: Any, expected: tuple[int, str, str | None]
) -> None:
    create(client)
    before = snapshot()
    response = client.open(path, method=method, json=body, headers=AUTH)
    assert error_of(response) == expected
    assert snapshot() == before


def test_routes_outside_the_api_keep_their_own_404(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404 and response.mimetype == "text/html"


def test_an_unexpected_exception_is_a_logged_500_without_a_traceback(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("gateway.store.jobs.list_jobs", explode)
    response = client.get("/api/jobs", headers=AUTH)
    assert response.status_code == 500
    assert response.json == {
        "error": {"code": "internal", "message": "internal error", "field": None}
    }
    assert "secret internals" in caplog.text


def test_a_throttled_address_gets_429_with_retry_after(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise RateLimitedError(30)

    monkeypatch.setattr("gateway.api.auth.authenticate", throttled)
    response = client.get("/api/jobs", headers=AUTH)
    assert error_of(response) == (429, "rate_limited", None)
    assert response.headers["Retry-After"] == "30"
