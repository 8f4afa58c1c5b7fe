"""The API's schedule preview, keys, gateways and fleet routes; both backends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.store import gateways
from gateway.store.models import MODELS
from gateway.store.models import Gateway
from gateway.store.models import Key
from tests.conftest import ADMIN_TOKEN
from tests.fakes import FakeClock

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def snapshot() -> dict[str, list[dict[str, Any]]]:
    return {
        m.__name__: list(m.select().order_by(*m._meta.get_primary_keys()).dicts()) for m in MODELS
    }


def _error(response: Any) -> tuple[int, str, str | None]:
    error = response.json["error"]
    return response.status_code, error["code"], error["field"]


# --- preview --------------------------------------------------------------------------------


def test_preview_shows_offsets_dst_notes_and_words(client: FlaskClient) -> None:
    query = "expr=30+2+*+*+*&tz=Europe/Berlin&count=3&after=2026-03-28T00:00:00Z"
    body = client.get(f"/api/schedule/preview?{query}", headers=AUTH).json
    assert body["description"] == "At 02:30 (Europe/Berlin)" and body["fixed_time"] is True
    assert [(t["at"], t["offset"]) for t in body["times"]] == [
        ("2026-03-28T02:30:00+01:00", "+01:00"),
        ("2026-03-29T03:00:00+02:00", "+02:00"),
        ("2026-03-30T02:30:00+02:00", "+02:00"),
    ]
    assert body["times"][0]["note"] is None and body["times"][1]["note"].startswith("moved")
    assert body["times"][1]["utc"] == "2026-03-29T01:00:00+00:00"


def test_preview_defaults_to_utc_five_times_from_the_clock(
    client: FlaskClient, clock: FakeClock
) -> None:
    body = client.get("/api/schedule/preview?expr=H+*+*+*+*&name=report", headers=AUTH).json
    assert body["tz"] == "UTC" and len(body["times"]) == 5
    assert body["after"] == clock.now().isoformat()
    assert body["times"][0]["at"] > clock.now().isoformat()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", (400, "invalid", "expr")),
        ("expr=+", (400, "invalid", "expr")),
        ("expr=61+*+*+*+*", (400, "invalid_schedule", "expr")),
        ("expr=0+0+31+2+*", (400, "invalid_schedule", "expr")),
        ("expr=*+*+*+*+*+*+*", (400, "invalid_schedule", "expr")),
        ("expr=0+3+*+*+*&tz=Mars/Olympus", (400, "invalid_schedule", "tz")),
        ("expr=0+3+*+*+*&tz=../../etc/passwd", (400, "invalid_schedule", "tz")),
        ("expr=0+3+*+*+*&count=0", (400, "invalid", "count")),
        ("expr=0+3+*+*+*&count=101", (400, "invalid", "count")),
        ("expr=0+3+*+*+*&count=five", (400, "invalid", "count")),
        ("expr=0+3+*+*+*&after=now", (400, "invalid", "after")),
        ("expr=0+3+*+*+*&zone=UTC", (400, "invalid", "zone")),
    ],
)
def test_bad_previews_are_400_naming_the_parameter(
    client: FlaskClient, query: str, expected: tuple[int, str, str]
) -> None:
    assert _error(client.get(f"/api/schedule/preview?{query}", headers=AUTH)) == expected


# --- keys -----------------------------------------------------------------------------------


def test_a_key_secret_is_shown_once_and_works_at_once(client: FlaskClient) -> None:
    created = client.post("/api/keys", json={"name": "deploy", "scope": "admin"}, headers=AUTH)
    assert created.status_code == 201
    secret = created.json["secret"]
    assert secret.startswith("cg_") and created.json["prefix"] == secret[:9]
    listed = client.get("/api/keys", headers=AUTH).json["keys"]
    assert [k["name"] for k in listed] == ["deploy"] and "secret" not in listed[0]
    assert secret not in str(listed) and Key.get().secret_hash != secret
    used = client.get("/api/jobs", headers={"Authorization": f"Bearer {secret}"})
    assert used.status_code == 200
    assert client.get("/api/keys", headers=AUTH).json["keys"][0]["last_used_at"] is not None


def test_invoke_keys_per_job_and_revocation(client: FlaskClient) -> None:
    client.post("/api/jobs", json={"name": "report", "url": "/crons/report"}, headers=AUTH)
    body = {"name": "report-caller", "scope": "invoke", "job": "report"}
    created = client.post("/api/keys", json=body, headers=AUTH)
    assert created.status_code == 201 and created.json["job"] == "report"
    revoked = client.delete("/api/keys/report-caller", headers=AUTH)
    assert revoked.status_code == 200 and revoked.json["revoked_at"] is not None
    active = client.get("/api/keys?include_revoked=false", headers=AUTH).json["keys"]
    assert active == []
    assert len(client.get("/api/keys", headers=AUTH).json["keys"]) == 1
    again = client.delete("/api/keys/report-caller", headers=AUTH)
    assert _error(again) == (404, "not_found", "name")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"scope": "admin"}, (400, "invalid", "name")),
        ({"name": "", "scope": "admin"}, (400, "invalid", "name")),
        ({"name": 5, "scope": "admin"}, (400, "invalid", "name")),
        ({"name": "k"}, (400, "invalid", "scope")),
        ({"name": "k", "scope": "root"}, (400, "invalid", "scope")),
        ({"name": "k", "scope": "admin", "job": "report"}, (400, "invalid", "job")),
        ({"name": "k", "scope": "invoke", "secret": "mine"}, (400, "invalid", "secret")),
        ({"name": "taken", "scope": "invoke"}, (409, "conflict", "name")),
    ],
)
def test_bad_keys_are_refused_and_nothing_is_written(
    client: FlaskClient, body: dict[str, Any], expected: tuple[int, str, str]
) -> None:
    client.post("/api/keys", json={"name": "taken", "scope": "invoke"}, headers=AUTH)
    before = snapshot()
    assert _error(client.post("/api/keys", json=body, headers=AUTH)) == expected
    assert snapshot() == before


# --- gateways -------------------------------------------------------------------------------


def test_gateways_show_role_and_heartbeat_age(client: FlaskClient, clock: FakeClock) -> None:
    now = clock.now()
    # Rows as the gateways write them (register's upsert is the scheduler's business).
    Gateway.create(
        instance="gw-1",
        host="host-a",
        pid=4242,
        started_at=now - timedelta(minutes=5),
        seen_at=now - timedelta(minutes=5),
        role="standby",
    )
    gateways.beat("gw-1", now - timedelta(seconds=3), "active")
    Gateway.create(
        instance="gw-2",
        host="host-b",
        pid=99,
        started_at=now - timedelta(hours=1),
        seen_at=now - timedelta(hours=1),
        role="standby",
    )
    body = client.get("/api/gateways", headers=AUTH).json["gateways"]
    assert [(g["instance"], g["role"], g["alive"]) for g in body] == [
        ("gw-1", "active", True),
        ("gw-2", "standby", False),
    ]
    assert body[0]["heartbeat_age_seconds"] == 3.0 and body[0]["pid"] == 4242
    assert body[0]["host"] == "host-a" and body[0]["started_at"] == "2026-11-23T08:55:00+00:00"


# --- fleet ----------------------------------------------------------------------------------


def _jobs(client: FlaskClient) -> None:
    for name, tags in (("a", ["db"]), ("b", ["db"]), ("c", [])):
        job = {"name": name, "url": f"/crons/{name}", "schedule": "*/5 * * * *", "tags": tags}
        assert client.post("/api/jobs", json=job, headers=AUTH).status_code == 201


def test_pause_and_resume_many_by_tag_or_names(client: FlaskClient, clock: FakeClock) -> None:
    _jobs(client)
    until = (clock.now() + timedelta(hours=9)).isoformat()
    body = {"tag": "db", "note": "database migration", "until": until}
    paused = client.post("/api/jobs/pause", json=body, headers=AUTH)
    assert paused.status_code == 200
    assert [(j["name"], j["state"], j["pause_fate"]) for j in paused.json["jobs"]] == [
        ("a", "paused", "missed"),
        ("b", "paused", "missed"),
    ]
    assert paused.json["jobs"][0]["pause_note"] == "database migration"
    assert client.get("/api/jobs/c", headers=AUTH).json["state"] == "enabled"
    resumed = client.post("/api/jobs/resume", json={"names": ["a", "b"]}, headers=AUTH)
    assert [j["state"] for j in resumed.json["jobs"]] == ["enabled", "enabled"]
    once = client.post("/api/jobs/pause", json={"names": ["c"], "fate": "once"}, headers=AUTH)
    assert once.json["jobs"][0]["pause_fate"] == "once"


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/api/jobs/pause", {}, (400, "invalid", "tag")),
        ("/api/jobs/pause", {"tag": "db", "names": ["a"]}, (400, "invalid", "tag")),
        ("/api/jobs/pause", {"names": []}, (400, "invalid", "names")),
        ("/api/jobs/pause", {"names": "a"}, (400, "invalid", "names")),
        ("/api/jobs/pause", {"names": ["a", "nope"]}, (404, "not_found", "name")),
        ("/api/jobs/pause", {"tag": "nobody"}, (404, "not_found", "tag")),
        ("/api/jobs/pause", {"tag": "db", "fate": "all"}, (400, "invalid", "fate")),
        ("/api/jobs/pause", {"tag": "db", "until": "2020-01-01T00:00Z"}, (400, "invalid", "until")),
        ("/api/jobs/pause", {"tag": "db", "why": "x"}, (400, "invalid", "why")),
        ("/api/jobs/resume", {"tag": "db", "note": "x"}, (400, "invalid", "note")),
        ("/api/jobs/resume", {"names": ["nope"]}, (404, "not_found", "name")),
    ],
)
def test_bad_fleet_selections_change_no_job(
    client: FlaskClient, path: str, body: dict[str, Any], expected: tuple[int, str, str]
) -> None:
    _jobs(client)
    before = snapshot()
    assert _error(client.post(path, json=body, headers=AUTH)) == expected
    assert snapshot() == before
