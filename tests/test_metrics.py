"""/metrics and /healthz through the test client, on both backends: figures come from the store."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from gateway import create_app
from gateway.config import Settings
from gateway.store import gateways
from gateway.store.models import Alert
from gateway.store.models import Job
from gateway.store.models import Run
from tests.conftest import CRON_TOKEN
from tests.conftest import make_jobs
from tests.fakes import FakeClock

METRICS_TOKEN = "metrics-token-0123456789"


def scrape(
    client: FlaskClient, **headers: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of /metrics as {(name, sorted labels): value}."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def call(client: FlaskClient, job: str) -> int:
    return client.post(f"/crons/{job}", headers={"X-Cron-Token": CRON_TOKEN}).status_code


def test_metrics_count_runs_by_job_status_and_trigger(client: FlaskClient) -> None:
    assert call(client, "hello") == 200
    assert call(client, "hello") == 200
    assert call(client, "fails") == 500

    samples = scrape(client)

    assert samples[("cron_gateway_database_up", ())] == 1
    key = (("job", "hello"), ("status", "success"), ("trigger", "external"))
    assert samples[("cron_gateway_runs_last_hour", key)] == 2
    key = (("job", "fails"), ("status", "error"), ("trigger", "external"))
    assert samples[("cron_gateway_runs_last_hour", key)] == 1
    assert samples[("cron_gateway_jobs", (("state", "active"),))] == 2
    assert samples[("cron_gateway_job_consecutive_failures", (("job", "fails"),))] == 1
    assert ("cron_gateway_job_last_success_timestamp_seconds", (("job", "fails"),)) not in samples


def test_last_success_survives_a_later_failure(client: FlaskClient, clock: FakeClock) -> None:
    assert call(client, "hello") == 200
    succeeded = Run.get().finished_at
    clock.advance(minutes=5)
    Job.update(last_status="error", last_run_at=clock.now()).execute()  # a failure came after

    samples = scrape(client)

    key = ("cron_gateway_job_last_success_timestamp_seconds", (("job", "hello"),))
    assert samples[key] == succeeded.timestamp()


def test_histograms_cover_the_last_hour_only(client: FlaskClient, clock: FakeClock) -> None:
    assert call(client, "hello") == 200
    assert call(client, "hello") == 200
    Run.update(duration_ms=2500, lateness_ms=300).execute()

    samples = scrape(client)
    assert samples[("cron_gateway_run_duration_seconds_count", ())] == 2
    assert samples[("cron_gateway_run_duration_seconds_sum", ())] == 5.0
    assert samples[("cron_gateway_run_duration_seconds_bucket", (("le", "1.0"),))] == 0
    assert samples[("cron_gateway_run_duration_seconds_bucket", (("le", "5.0"),))] == 2
    assert samples[("cron_gateway_run_lateness_seconds_bucket", (("le", "0.5"),))] == 2

    clock.advance(minutes=61)
    samples = scrape(client)
    assert samples[("cron_gateway_run_duration_seconds_count", ())] == 0
    assert not [k for k in samples if k[0] == "cron_gateway_runs_last_hour"]


def test_gateways_are_up_while_their_heartbeat_is_fresh(
    client: FlaskClient, clock: FakeClock, settings: Settings
) -> None:
    gateways.register("gw-1", "host", 1, clock.now(), "active")
    clock.advance(seconds=3)
    samples = scrape(client)
    assert samples[("cron_gateway_gateway_up", (("instance", "gw-1"), ("role", "active")))] == 1
    age = ("cron_gateway_gateway_heartbeat_age_seconds", (("instance", "gw-1"),))
    assert samples[age] == 3

    clock.advance(seconds=settings.gateway_lease_seconds)
    samples = scrape(client)
    assert samples[("cron_gateway_gateway_up", (("instance", "gw-1"), ("role", "active")))] == 0

    gateways.retire("gw-1", clock.now())
    assert not [k for k in scrape(client) if k[0] == "cron_gateway_gateway_up"]


def test_open_alerts_are_counted_by_kind(client: FlaskClient, clock: FakeClock) -> None:
    assert call(client, "hello") == 200
    job = Job.get(Job.name == "hello")
    Alert.create(job=job, kind="late", state="open", opened_at=clock.now(), message="late")
    Alert.create(
        job=job,
        kind="failure",
        state="closed",
        opened_at=clock.now(),
        message="x",
        next_attempt_at=clock.now(),
    )
    samples = scrape(client)
    assert samples[("cron_gateway_alerts_open", (("kind", "late"),))] == 1
    assert ("cron_gateway_alerts_open", (("kind", "failure"),)) not in samples
    assert samples[("cron_gateway_alerts_undelivered", ())] == 1


def test_http_requests_are_counted_by_route_template(client: FlaskClient) -> None:
    before = scrape(client)
    key = (
        "cron_gateway_http_requests_total",
        (("method", "POST"), ("route", "/crons/<name>"), ("status", "200")),
    )
    assert call(client, "hello") == 200
    assert scrape(client)[key] == before.get(key, 0) + 1


def test_metrics_token_guards_the_page_when_set(settings: Settings, clock: FakeClock) -> None:
    app = create_app(replace(settings, metrics_token=METRICS_TOKEN), clock=clock)
    client = app.test_client()

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert (
        scrape(client, Authorization=f"Bearer {METRICS_TOKEN}")[("cron_gateway_database_up", ())]
        == 1
    )


def test_healthz_reports_the_database_and_the_gateway(
    client: FlaskClient, clock: FakeClock, settings: Settings
) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "database": "ok",
        "gateway": {"status": "absent", "heartbeat_age_seconds": None},
    }
    assert client.get("/healthz?gateway=1").status_code == 503

    gateways.register("gw-1", "host", 1, clock.now(), "active")
    clock.advance(seconds=2)
    response = client.get("/healthz?gateway=1")
    assert response.status_code == 200
    assert response.json["gateway"] == {"status": "ok", "heartbeat_age_seconds": 2.0}

    clock.advance(seconds=settings.gateway_lease_seconds)
    response = client.get("/healthz?gateway=1")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["gateway"]["status"] == "stale"
    assert client.get("/healthz").status_code == 200  # the app itself is fine


def test_healthz_and_metrics_say_when_the_database_is_down(clock: FakeClock) -> None:
    secret = "postgres-password-0123456789"
    settings = Settings(database_url=f"postgresql://u:{secret}@127.0.0.1:1/none")
    app: Flask = create_app(settings, clock=clock)
    make_jobs().init_app(app)
    client = app.test_client()

    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "unreachable"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "cron_gateway_database_up 0.0" in metrics.text
    assert secret not in response.text + metrics.text


def test_scrape_reads_the_store_quickly(client: FlaskClient, clock: FakeClock) -> None:
    """A smoke bound only; the 10,000-job figure is measured in bench/ (see docs)."""
    assert call(client, "hello") == 200
    samples = scrape(client)
    assert samples[("cron_gateway_scrape_store_seconds", ())] < timedelta(seconds=5).seconds
