"""The UI's pages and forms through the test client, on both backends: what shows, what changes."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.config import Settings
from gateway.store.jobs import create_job
from gateway.store.jobs import get_job
from gateway.store.keys import create_key
from gateway.store.models import Gateway
from gateway.store.models import Job
from gateway.store.models import Key
from gateway.store.models import Run
from gateway.store.run_queries import recent_runs_of
from gateway.store.runs import new_execution_id
from tests.fakes import FakeClock
from tests.test_web_auth import login


@pytest.fixture
def csrf(client: FlaskClient) -> str:
    return login(client)


def job(settings: Settings, clock: FakeClock, name: str, **fields: Any) -> Job:
    data = {"name": name, "url": f"/crons/{name}", "schedule": "*/5 * * * *", **fields}
    return create_job(data, clock.now(), settings=settings)


def run(
    j: Job, clock: FakeClock, status: str = "success", minutes_ago: int = 0, **fields: Any
) -> Run:
    queued = clock.now() - timedelta(minutes=minutes_ago)
    return Run.create(
        execution_id=new_execution_id(),
        job=j,
        trigger=fields.pop("trigger", "schedule"),
        status=status,
        queued_at=queued,
        started_at=queued,
        finished_at=queued + timedelta(seconds=1) if status != "running" else None,
        duration_ms=fields.pop("duration_ms", 1000 if status != "running" else None),
        **fields,
    )


def rows(html: str) -> list[str]:
    """Return the job names of the jobs table's body rows, in order."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<tr data-job="([^"]+)"', body)


def snapshot() -> list[tuple[Any, ...]]:
    jobs = Job.select().order_by(Job.id).tuples()
    return [*jobs, ("runs", Run.select().count()), ("keys", Key.select().count())]


# --- the jobs page ------------------------------------------------------------------------


def test_the_jobs_page_shows_a_row_per_job_with_words_next_run_strip_and_buttons(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    a = job(settings, clock, "backup", schedule="30 2 * * *", tz="Europe/Berlin", tags=["db"])
    job(settings, clock, "report", schedule=None, title="Weekly report")
    for i in range(25):
        run(a, clock, "error" if i % 5 == 0 else "success", minutes_ago=100 - i)
    html = client.get("/").text
    assert rows(html) == ["backup", "report"]
    assert "At 02:30 (Europe/Berlin)" in html and "On demand only" in html
    assert "Weekly report" in html and ">db</a>" in html
    assert "2026-11-24 01:30:00 UTC" in html and "in 16 h" in html  # next run, both ways
    backup_row = html.split('data-job="backup"', 1)[1].split("</tr>", 1)[0]
    assert backup_row.count('class="tick ') == 20  # the last 20 runs, not all 25
    assert backup_row.count("tick bad") == 4 and "1.0 s" in backup_row
    assert html.count(">Run now</button>") == 2 and html.count(">Pause</button>") == 2


def test_filters_by_tag_status_state_and_text(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    job(settings, clock, "a-one", tags=["db_x"], description="Nightly VACUUM")
    job(settings, clock, "a-two", tags=["dbax"])
    job(settings, clock, "b-three", tags=["web"])
    Job.update(last_status="error").where(Job.name == "a-two").execute()
    client.post("/jobs/b-three/pause", data={"csrf": csrf})
    assert rows(client.get("/?tag=db_x").text) == ["a-one"]  # `_` is no wildcard
    assert rows(client.get("/?status=error").text) == ["a-two"]
    assert rows(client.get("/?status=never").text) == ["a-one", "b-three"]
    assert rows(client.get("/?state=paused").text) == ["b-three"]
    assert rows(client.get("/?state=enabled&q=A-").text) == ["a-one", "a-two"]
    assert rows(client.get("/?q=vacuum").text) == ["a-one"]
    assert "No job matches these filters." in client.get("/?q=nothing-like-it").text


def test_pages_of_jobs_go_forward_and_back_by_name(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    for i in range(60):
        Job.create(name=f"job-{i:03d}", url="/x", created_at=clock.now(), updated_at=clock.now())
    first = client.get("/")
    assert rows(first.text) == [f"job-{i:03d}" for i in range(50)]
    later = re.search(r'href="(/\?after=[^"]+)" rel="next"', first.text)
    assert later and 'rel="prev"' not in first.text
    second = client.get(later.group(1).replace("&amp;", "&"))
    assert rows(second.text) == [f"job-{i:03d}" for i in range(50, 60)]
    assert 'rel="next"' not in second.text
    back = re.search(r'href="(/\?before=[^"]+)" rel="prev"', second.text)
    assert back
    assert rows(client.get(back.group(1)).text) == [f"job-{i:03d}" for i in range(50)]


def test_recent_runs_of_gives_each_job_its_newest_runs_in_one_query(
    settings: Settings, clock: FakeClock
) -> None:
    a, b, c = (job(settings, clock, n) for n in ("a", "b", "c"))
    made = [run(a, clock, minutes_ago=30 - i) for i in range(25)]
    run(b, clock, "error")
    found = recent_runs_of([a.id, b.id, c.id], 20)
    assert [r.id for r in found[a.id]] == [r.id for r in reversed(made[5:])]
    assert [r.status for r in found[b.id]] == ["error"] and found[c.id] == []
    assert found[a.id][0].queued_at == made[-1].queued_at


# --- actions: run now, pause, resume, delete ---------------------------------------------


def test_run_now_queues_a_manual_run_and_links_to_it(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    job(settings, clock, "hello")
    r = client.post("/jobs/hello/run", data={"csrf": csrf, "next": "/?tag=x"})
    assert r.status_code == 302 and r.headers["Location"] == "/?tag=x"
    queued = Run.get()
    assert (queued.trigger, queued.status, queued.payload) == ("manual", "queued", None)
    page = client.get("/?tag=x").text
    assert "Queued a run of hello." in page and f"/runs/{queued.execution_id}" in page


def test_run_now_with_a_payload_and_a_bad_payload_changes_nothing(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    job(settings, clock, "hello")
    r = client.post("/jobs/hello/run", data={"csrf": csrf, "payload": '{"full": true}'})
    assert r.status_code == 302 and r.headers["Location"] == "/jobs/hello"
    assert Run.get().payload == {"full": True}
    before = snapshot()
    r = client.post("/jobs/hello/run", data={"csrf": csrf, "payload": "{nope"})
    assert r.status_code == 400 and "payload: not valid JSON" in r.text
    assert snapshot() == before


def test_pause_and_resume_from_the_jobs_page(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    job(settings, clock, "hello")
    r = client.post("/jobs/hello/pause", data={"csrf": csrf, "next": "/"})
    assert r.status_code == 302
    paused = get_job("hello")
    assert paused is not None and not paused.enabled and paused.next_run_at is None
    page = client.get("/").text
    assert ">Resume</button>" in page and "Paused hello." in page
    client.post("/jobs/hello/resume", data={"csrf": csrf})
    resumed = get_job("hello")
    assert resumed is not None and resumed.enabled and resumed.next_run_at is not None


@pytest.mark.parametrize("action", ["pause", "resume", "run", "delete", "edit"])
def test_an_action_on_an_unknown_job_is_a_404_page_not_a_traceback(
    client: FlaskClient, csrf: str, action: str
) -> None:
    before = snapshot()
    r = client.post(f"/jobs/ghost/{action}", data={"csrf": csrf, "schedule": "* * * * *"})
    assert r.status_code == 404
    assert "no job named 'ghost'" in unescape(r.text) and "Traceback" not in r.text
    assert snapshot() == before


def test_delete_keeps_the_runs_and_the_page_is_gone(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    run(job(settings, clock, "old"), clock)
    r = client.post("/jobs/old/delete", data={"csrf": csrf})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert rows(client.get("/").text) == [] and Run.select().count() == 1
    assert client.get("/jobs/old").status_code == 404


# --- the job page -------------------------------------------------------------------------


def test_the_job_page_shows_ten_fire_times_with_dst_notes_and_charts(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    j = job(settings, clock, "spring", schedule="30 2 * 3 0", tz="Europe/Berlin")
    for i in range(8):
        run(j, clock, "error" if i == 3 else "success", minutes_ago=600 - 60 * i, duration_ms=i)
    html = client.get("/jobs/spring").text
    times = html.split('<ol class="times">', 1)[1].split("</ol>", 1)[0]
    assert times.count("<li>") == 10
    assert "Sun 2027-03-28 03:00:00 CEST" in times and "moved" in times  # 02:30 is skipped
    assert "At 02:30, only on Sunday, only in March (Europe/Berlin)" in html
    assert html.count('<svg class="chart"') == 2 and html.count("<rect class=") == 8
    assert "88% of 8 runs" in html
    assert '<datalist id="zones">' in html and '<option value="Europe/Berlin">' in html


def test_history_filters_and_pages_backwards_by_id(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    j = job(settings, clock, "busy")
    made = [run(j, clock, "error" if i % 2 else "success", minutes_ago=60 - i) for i in range(30)]
    html = client.get("/jobs/busy").text
    shown = re.findall(r'<tr data-run="([^"]+)"', html)
    assert shown == [r.execution_id for r in reversed(made[5:])]
    older = re.search(r'href="(/jobs/busy\?[^"]*before=\d+)" rel="next"', html)
    assert older
    rest = re.findall(
        r'<tr data-run="([^"]+)"', client.get(older.group(1).replace("&amp;", "&")).text
    )
    assert rest == [r.execution_id for r in reversed(made[:5])]
    errors = re.findall(r'<tr data-run="([^"]+)"', client.get("/jobs/busy?status=error").text)
    assert errors == [r.execution_id for r in reversed(made) if r.status == "error"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schedule", "0 0 31 2 *", "day-of-month: 31 never occurs in February"),
        ("schedule", "61 * * * *", "minute"),
        ("tz", "Mars/Olympus", "tz: 'Mars/Olympus' is not a known IANA time zone"),
        ("timeout", "ten", "timeout: 'ten' is not a whole number"),
        ("max_attempts", "99", "max_attempts: 99 is out of range"),
        ("payload_json", "[1,", "payload: not valid JSON"),
        ("overlap", "sometimes", "overlap: 'sometimes' is not one of"),
    ],
)
def test_a_bad_edit_shows_the_message_and_what_was_typed_and_changes_nothing(
    client: FlaskClient,
    csrf: str,
    settings: Settings,
    clock: FakeClock,
    field: str,
    value: str,
    message: str,
) -> None:
    job(settings, clock, "hello")
    before = snapshot()
    r = client.post("/jobs/hello/edit", data={"csrf": csrf, "schedule": "0 3 * * *", field: value})
    assert r.status_code == 400, r.text
    page = unescape(r.text)
    assert message in page and "Traceback" not in page
    if field != "overlap":  # a select cannot show what it does not offer
        assert f'value="{value}"' in page or f">{value}</textarea>" in page
    assert snapshot() == before


def test_an_edit_saves_schedule_zone_policies_tags_and_payload(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    job(settings, clock, "hello", retry_abandoned=True)
    form = {
        "csrf": csrf,
        "has_checkboxes": "1",
        "schedule": "15 4 * * MON",
        "tz": "America/New_York",
        "timeout": "30",
        "max_attempts": "3",
        "backoff": "5",
        "overlap": "allow",
        "misfire": "skip",
        "catchup_window": "60",
        "auto_pause_after": "",
        "tags": "ops, nightly",
        "title": "Hello",
        "payload_json": '{"dry_run": false}',
    }
    r = client.post("/jobs/hello/edit", data=form)
    assert r.status_code == 302 and r.headers["Location"] == "/jobs/hello"
    saved = get_job("hello")
    assert saved is not None
    assert (saved.schedule, saved.tz, saved.timeout, saved.max_attempts) == (
        "15 4 * * MON",
        "America/New_York",
        30,
        3,
    )
    assert (saved.overlap, saved.misfire, saved.tags) == ("allow", "skip", ["ops", "nightly"])
    assert saved.payload == {"dry_run": False} and saved.retry_abandoned is False
    assert saved.next_run_at is not None and saved.next_run_at.isoformat().endswith(
        "09:15:00+00:00"
    )
    page = client.get("/jobs/hello").text
    assert "Saved hello." in page and "America/New_York" in page
    client.post("/jobs/hello/edit", data={"csrf": csrf, "schedule": ""})
    on_demand = get_job("hello")
    assert on_demand is not None and on_demand.schedule is None and on_demand.next_run_at is None


def test_the_preview_endpoint_explains_or_names_the_bad_field(
    client: FlaskClient, csrf: str
) -> None:
    ok = client.get("/ui/preview?expr=30+2+*+*+*&tz=Europe/Berlin")
    assert ok.status_code == 200 and ok.json is not None
    assert ok.json["description"] == "At 02:30 (Europe/Berlin)" and len(ok.json["times"]) == 5
    bad = client.get("/ui/preview?expr=0+0+31+2+*")
    assert bad.status_code == 200 and bad.json is not None and not bad.json["ok"]
    assert bad.json["field"] == "schedule" and "February" in bad.json["error"]
    zone = client.get("/ui/preview?expr=*+*+*+*+*&tz=Nowhere")
    assert zone.status_code == 200 and zone.json is not None and zone.json["field"] == "tz"


# --- the run page ---------------------------------------------------------------------------


def test_the_run_page_shows_timings_attempts_and_escapes_the_response(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    j = job(settings, clock, "hello")
    first = run(j, clock, "error", error="HTTP 503 from the app", http_status=503)
    again = Run.create(
        execution_id=first.execution_id,
        job=j,
        trigger="schedule",
        attempt=2,
        status="success",
        queued_at=clock.now(),
        scheduled_for=clock.now() - timedelta(minutes=1),
        lateness_ms=1500,
        duration_ms=42,
        caller="GATEWAY_CRON_TOKEN",
        summary={"deleted": 3},
        response_excerpt='<script>alert("x")</script>',
        log="line one\nline two",
    )
    html = client.get(f"/runs/{again.execution_id}").text
    assert "HTTP 503 from the app" in html and "1.5 s" in html and "42 ms" in html
    assert '"deleted": 3' in unescape(html) and "line two" in html and "GATEWAY_CRON_TOKEN" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)" in html
    assert html.count('<span class="badge') >= 3  # the run's status and each attempt's
    assert "data-poll" not in html  # a finished run stops polling


def test_a_running_run_polls_and_an_unknown_run_is_404(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    going = run(job(settings, clock, "hello"), clock, "running", log="step 1")
    html = client.get(f"/runs/{going.execution_id}").text
    assert 'data-poll="1000"' in html and "live" in html and "step 1" in html
    assert client.get("/runs/not-a-run").status_code == 404


# --- keys and gateways ----------------------------------------------------------------------


def test_a_new_key_shows_its_secret_once_then_is_listed_and_revoked(
    client: FlaskClient, csrf: str, settings: Settings, clock: FakeClock
) -> None:
    job(settings, clock, "hello")
    r = client.post("/keys", data={"csrf": csrf, "name": "ci", "scope": "invoke", "job": "hello"})
    assert r.status_code == 201
    secret = re.search(r'id="new-secret" value="([^"]+)"', r.text)
    assert secret and secret.group(1).startswith("cg_")
    listing = client.get("/keys").text
    assert secret.group(1) not in listing and 'data-key="ci"' in listing
    assert client.post("/keys/ci/revoke", data={"csrf": csrf}).status_code == 302
    assert Key.get(Key.name == "ci").revoked_at is not None
    assert "revoked" in client.get("/keys").text


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"name": "dup", "scope": "invoke"}, 409, "a key named 'dup' already exists"),
        ({"name": "x", "scope": "root"}, 400, "scope must be one of invoke, admin"),
        ({"name": "", "scope": "invoke"}, 400, "name must be 1 to 100 characters"),
        ({"name": "x", "scope": "invoke", "job": "ghost"}, 400, "no job named 'ghost'"),
        ({"name": "x", "scope": "admin", "job": "hello"}, 400, "only invoke keys"),
    ],
)
def test_a_bad_key_form_is_a_message_and_writes_nothing(
    client: FlaskClient,
    csrf: str,
    settings: Settings,
    clock: FakeClock,
    form: dict[str, str],
    status: int,
    message: str,
) -> None:
    job(settings, clock, "hello")
    create_key("dup", "invoke", clock.now())
    before = snapshot()
    r = client.post("/keys", data={"csrf": csrf, **form})
    assert r.status_code == status and message in unescape(r.text)
    assert snapshot() == before


def test_revoking_an_unknown_key_is_404(client: FlaskClient, csrf: str) -> None:
    r = client.post("/keys/ghost/revoke", data={"csrf": csrf})
    assert r.status_code == 404 and "no active key named" in r.text


def test_the_gateways_page_shows_roles_and_heartbeat_age(
    client: FlaskClient, csrf: str, clock: FakeClock
) -> None:
    for instance, age, role in (
        ("gw-a", 3, "active"),
        ("gw-b", 2, "standby"),
        ("gw-c", 300, "active"),
    ):
        seen = clock.now() - timedelta(seconds=age)
        Gateway.create(instance=instance, host="h", pid=1, started_at=seen, seen_at=seen, role=role)
    html = client.get("/gateways").text
    assert "gw-a" in html and "3.0 s" in html and 'badge good">active' in html
    assert 'badge quiet">standby' in html
    assert "silent (was active)" in html
