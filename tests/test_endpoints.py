"""Cron endpoints through Flask's test client, on a real database: the JSON contract and doors."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from peewee import OperationalError

from gateway import CronJobs
from gateway import create_app
from gateway.config import Settings
from gateway.endpoints import views
from gateway.endpoints.context import RunContext
from gateway.errors import GatewayError
from gateway.store import keys
from gateway.store import leases
from gateway.store import run_queries
from gateway.store import runs
from gateway.store.models import Job
from gateway.store.models import Run
from tests.conftest import ADMIN_TOKEN
from tests.conftest import CRON_TOKEN
from tests.fakes import FakeClock

AUTH = {"X-Cron-Token": CRON_TOKEN}


def _runs(job: str) -> list[Run]:
    return list(Run.select().join(Job).where(Job.name == job).order_by(Run.id))


def _wait_for(job: str, status: str, seconds: float = 5.0) -> Run:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [r for r in _runs(job) if r.status == status]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no {status} run of {job} within {seconds} s: {_runs(job)}")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Cron-Token": "wrong-token-0123456789"},
        {"Authorization": f"Basic {CRON_TOKEN}"},
        {"Authorization": "Bearer "},
        {"X-Cron-Token": "x" * 10_000},
    ],
)
def test_a_call_without_a_good_token_is_401_without_hints(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    for method, path in [("POST", "/crons/hello"), ("POST", "/crons/nope"), ("GET", "/crons")]:
        response = client.open(path, method=method, headers=headers)
        assert (response.status_code, response.json) == (401, {"error": "unauthorized"})
    assert Run.select().count() == 0


def test_both_header_forms_run_the_job_and_record_it(client: FlaskClient) -> None:
    for headers in (AUTH, {"Authorization": f"Bearer {CRON_TOKEN}"}):
        response = client.post("/crons/hello", json={"n": 1}, headers=headers)
        assert response.status_code == 200
        body = response.json
        assert body["status"] == "success" and body["job"] == "hello"
        assert body["summary"] == {"payload": {"n": 1}, "trigger": "external"}
        assert set(body) == {"execution_id", "job", "status", "duration_ms", "summary", "error"}
    stored = _runs("hello")
    assert [r.status for r in stored] == ["success", "success"]
    assert stored[0].caller == "GATEWAY_CRON_TOKEN" and stored[0].log == "hello from attempt 1"
    assert stored[0].duration_ms is not None and stored[0].finished_at is not None


def test_the_query_token_works_only_when_enabled(client: FlaskClient, app: object) -> None:
    assert client.get(f"/crons/hello?cronToken={CRON_TOKEN}").status_code == 401
    cron = app.extensions["cron_gateway"]  # type: ignore[attr-defined]
    cron.settings = type(cron.settings)(**{**cron.settings.__dict__, "allow_query_token": True})
    assert client.get(f"/crons/hello?cronToken={CRON_TOKEN}").status_code == 200


def test_an_unknown_job_is_404_after_the_token_check(client: FlaskClient) -> None:
    response = client.post("/crons/nope", headers=AUTH)
    assert response.status_code == 404 and "nope" in response.json["error"]


def test_a_stored_key_works_and_a_per_job_key_only_for_its_job(
    client: FlaskClient, clock: FakeClock
) -> None:
    _, secret = keys.create_key("ci", "invoke", clock.now(), job="hello")
    assert client.post("/crons/hello", headers={"X-Cron-Token": secret}).status_code == 200
    assert client.post("/crons/fails", headers={"X-Cron-Token": secret}).status_code == 403
    assert _runs("hello")[0].caller == "ci"
    keys.revoke_key("ci", clock.now())
    assert client.post("/crons/hello", headers={"X-Cron-Token": secret}).status_code == 401
    assert client.post("/crons/hello", headers={"X-Cron-Token": ADMIN_TOKEN}).status_code == 200


def test_a_failing_job_is_500_with_the_message_and_the_stack_is_only_stored(
    client: FlaskClient,
) -> None:
    response = client.post("/crons/fails", headers=AUTH)
    assert response.status_code == 500
    assert response.json["error"] == "RuntimeError: the warehouse said no"
    assert "Traceback" not in response.text and 'File "' not in response.text
    run = _runs("fails")[0]
    assert run.status == "error" and "Traceback" in run.error_stack
    assert Job.get(Job.name == "fails").consecutive_failures == 1


def test_a_job_that_skips_itself_is_200_skipped(client: FlaskClient) -> None:
    response = client.post("/crons/skips", headers=AUTH)
    assert response.status_code == 200
    assert (response.json["status"], response.json["error"]) == ("skipped", "nothing to do today")
    assert _runs("skips")[0].status == "skipped"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"data": "{not json", "content_type": "application/json"}, "not valid JSON"),
        ({"data": b"\xff\xfe", "content_type": "application/json"}, "not valid JSON"),
        ({"headers": {"X-Cron-Execution-Id": "123"}}, "X-Cron-Execution-Id"),
        ({"headers": {"X-Cron-Trigger": "cosmic-ray"}}, "X-Cron-Trigger"),
        ({"headers": {"X-Cron-Attempt": "0"}}, "X-Cron-Attempt"),
        ({"headers": {"X-Cron-Attempt": "two"}}, "X-Cron-Attempt"),
        ({"headers": {"X-Cron-Scheduled-For": "yesterday"}}, "X-Cron-Scheduled-For"),
        ({"headers": {"X-Cron-Scheduled-For": "2026-01-01T00:00:00"}}, "offset"),
    ],
)
def test_bad_input_is_a_clear_400_and_records_nothing(
    client: FlaskClient, kwargs: dict[str, object], fragment: str
) -> None:
    kwargs = dict(kwargs)  # the table is shared by both backends' runs
    headers = {**AUTH, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    response = client.post("/crons/hello", headers=headers, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 400
    assert fragment in response.json["error"]
    assert Run.select().count() == 0


def test_an_oversized_body_is_413_and_other_methods_405(client: FlaskClient) -> None:
    response = client.post("/crons/hello", data="x" * 20_000, headers=AUTH)
    assert response.status_code == 413 and "error" in response.json
    assert client.put("/crons/hello", headers=AUTH).status_code == 405
    assert Run.select().count() == 0


def test_the_manifest_lists_the_declared_jobs(client: FlaskClient) -> None:
    assert client.get("/crons").status_code == 401
    jobs = {j["name"]: j for j in client.get("/crons", headers=AUTH).json["jobs"]}
    assert jobs["hello"]["schedule"] == "*/5 * * * *" and jobs["hello"]["tags"] == ["demo"]
    assert jobs["hello"]["url"] == "/crons/hello" and jobs["background"]["mode"] == "async"


def test_a_held_lock_answers_409_and_records_a_skipped_run(
    client: FlaskClient, clock: FakeClock
) -> None:
    leases.acquire("job:hello", "someone-else", timedelta(seconds=60), clock.now())
    response = client.post("/crons/hello", headers=AUTH)
    assert response.status_code == 409
    assert response.json["status"] == "skipped" and "in progress" in response.json["error"]
    assert [r.status for r in _runs("hello")] == ["skipped"]
    clock.advance(seconds=61)  # the holder died: its lease expires and the next call runs
    assert client.post("/crons/hello", headers=AUTH).status_code == 200


def test_the_lock_is_released_after_every_kind_of_end(client: FlaskClient) -> None:
    for name in ("hello", "fails", "skips"):
        client.post(f"/crons/{name}", headers=AUTH)
        assert leases.current(f"job:{name}") is None


def test_a_gateway_call_attaches_to_its_run_and_a_replay_is_409(
    client: FlaskClient, clock: FakeClock
) -> None:
    job = Job.create(
        name="hello", url="/crons/hello", created_at=clock.now(), updated_at=clock.now()
    )
    slot = clock.now() - timedelta(milliseconds=1500)
    run = Run.create(
        execution_id=runs.new_execution_id(),
        job=job,
        trigger="schedule",
        scheduled_for=slot,
        status="dispatched",
        queued_at=slot,
    )
    headers = {
        **AUTH,
        "X-Cron-Execution-Id": run.execution_id,
        "X-Cron-Scheduled-For": slot.isoformat(),
        "X-Cron-Trigger": "schedule",
        "X-Cron-Attempt": "1",
    }
    response = client.post("/crons/hello", headers=headers)
    assert response.status_code == 200 and response.json["execution_id"] == run.execution_id
    assert response.json["summary"]["trigger"] == "schedule"
    stored = Run.get_by_id(run.id)
    assert stored.status == "success" and stored.caller == "GATEWAY_CRON_TOKEN"
    replay = client.post("/crons/hello", headers=headers)
    assert replay.status_code == 409
    assert Run.select().count() == 1 and leases.current("job:hello") is None


def test_a_gateway_call_whose_run_moved_meanwhile_is_409_and_frees_the_lock(
    client: FlaskClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = Job.create(
        name="hello", url="/crons/hello", created_at=clock.now(), updated_at=clock.now()
    )
    run = Run.create(
        execution_id=runs.new_execution_id(),
        job=job,
        trigger="manual",
        status="dispatched",
        queued_at=clock.now(),
    )
    read = Run.get_or_none

    def read_then_moved(*where: Any) -> Run | None:  # the reaper moves it after this read
        found = read(*where)
        if found is not None and found.id == run.id:
            Run.update(status="abandoned").where(Run.id == run.id).execute()
        return found

    monkeypatch.setattr(Run, "get_or_none", read_then_moved)
    headers = {**AUTH, "X-Cron-Execution-Id": run.execution_id, "X-Cron-Trigger": "manual"}
    response = client.post("/crons/hello", headers=headers)
    assert response.status_code == 409 and "moved on" in response.json["error"]
    # Not written over as running. (The move made here is undone with the refused attach;
    # the reaper's, made by another connection, would stay.)
    assert Run.get_by_id(run.id).status != "running"
    assert leases.current("job:hello") is None


def test_an_external_call_runs_six_statements_and_no_savepoint(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.store.db import database

    assert client.post("/crons/hello", headers=AUTH).status_code == 200  # the job's id is read
    seen: list[str] = []
    execute_sql = database.obj.execute_sql
    request_thread = threading.get_ident()  # the test client calls in this thread

    def counted(sql: str, params: Any = None) -> Any:
        if threading.get_ident() == request_thread:  # not a heartbeat's, say
            seen.append(sql)
        return execute_sql(sql, params)

    monkeypatch.setattr(database.obj, "execute_sql", counted)
    assert client.post("/crons/hello", headers=AUTH).status_code == 200
    # The stale check, the lease, the run; its end, the job's counters, the lease's release
    # (BEGIN and COMMIT are not counted here).
    assert len(seen) == 6 and not [sql for sql in seen if "SAVEPOINT" in sql.upper()], seen


def test_an_async_job_answers_202_at_once_and_records_its_end(client: FlaskClient) -> None:
    started = time.monotonic()
    response = client.post("/crons/background", headers=AUTH)
    assert response.status_code == 202 and time.monotonic() - started < 0.2
    body = response.json
    assert body["status"] == "running"
    assert body["status_url"] == f"/crons/background/runs/{body['execution_id']}"
    run = _wait_for("background", "success")
    assert run.summary == {"done": True} and run.progress_done == 1
    status = client.get(body["status_url"], headers=AUTH)
    assert status.status_code == 200 and status.json["status"] == "success"
    assert client.get(body["status_url"]).status_code == 401
    assert client.get("/crons/background/runs/not-a-uuid", headers=AUTH).status_code == 404


def test_a_streamed_job_sends_one_line_per_event_and_the_result_last(
    client: FlaskClient,
) -> None:
    response = client.post("/crons/streamed", headers=AUTH)
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0]["status"] == "running"
    assert [e["log"] for e in lines if "log" in e] == ["step 0", "step 1", "step 2"]
    assert lines[-1]["status"] == "success" and lines[-1]["summary"] == {"steps": 3}
    assert _wait_for("streamed", "success").log == "step 0\nstep 1\nstep 2"


def test_the_stored_log_is_bounded_and_keeps_the_newest_lines(client: FlaskClient) -> None:
    assert client.post("/crons/chatty", headers=AUTH).status_code == 200
    log = _runs("chatty")[0].log
    assert len(log) <= 2000 + 40
    assert log.startswith("[") and "earlier lines dropped" in log.splitlines()[0]
    assert log.endswith("line 499 " + "x" * 20)


def test_no_token_reaches_a_response_or_a_stored_row(client: FlaskClient) -> None:
    response = client.post("/crons/leaky", headers={"Authorization": f"Bearer {CRON_TOKEN}"})
    assert response.status_code == 500 and CRON_TOKEN not in response.text
    assert "[redacted]" in response.json["error"]
    for run in Run.select():
        assert CRON_TOKEN not in json.dumps(run_queries.run_as_dict(run))
        assert CRON_TOKEN not in " ".join(str(v) for v in run.__data__.values())


def test_should_stop_turns_true_past_the_timeout_and_on_cancel(
    settings: Settings, clock: FakeClock
) -> None:
    app = create_app(settings, clock=clock)
    cron = CronJobs(app)
    seen: list[bool] = []

    @cron.job("bounded", timeout=60)
    def bounded(ctx: RunContext) -> Any:
        seen.append(ctx.should_stop())
        clock.advance(seconds=61)  # the job ran past its timeout
        seen.append(ctx.should_stop())
        return None

    @cron.job("cancelable", timeout=60)
    def cancelable(ctx: RunContext) -> Any:
        Run.update(cancel_requested_at=clock.now()).where(
            Run.execution_id == ctx.execution_id
        ).execute()
        deadline = time.monotonic() + 5
        while not ctx.should_stop() and time.monotonic() < deadline:
            time.sleep(0.01)  # the heartbeat (every 0.05 s here) brings the request
        return {"stopped": ctx.should_stop()}

    client = app.test_client()
    assert client.post("/crons/bounded", headers=AUTH).status_code == 200
    assert seen == [False, True]
    response = client.post("/crons/cancelable", headers=AUTH)
    assert response.json["summary"] == {"stopped": True}


@pytest.mark.parametrize(
    ("name", "kwargs", "field"),
    [
        ("Bad Name", {}, "name"),
        ("x" * 101, {}, "name"),
        ("ok", {"schedule": "61 * * * *"}, "schedule"),
        ("ok", {"tz": "Mars/Olympus"}, "tz"),
        ("ok", {"mode": "later"}, "mode"),
        ("ok", {"timeout": 0}, "timeout"),
    ],
)
def test_a_bad_declaration_fails_at_import_naming_the_field(
    name: str, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(GatewayError) as e:
        CronJobs().job(name, **kwargs)
    assert e.value.field == field


def test_a_job_declared_twice_is_an_error() -> None:
    cron = CronJobs()
    cron.job("twice")(lambda ctx: None)
    with pytest.raises(GatewayError, match="twice"):
        cron.job("twice")


def test_a_canceled_holder_gives_the_lock_to_its_replacement(
    client: FlaskClient, clock: FakeClock
) -> None:
    job = Job.create(
        name="hello", url="/crons/hello", created_at=clock.now(), updated_at=clock.now()
    )
    old = runs.enqueue(job, "manual", clock.now())
    Run.update(status="canceled").where(Run.id == old.id).execute()
    leases.acquire("job:hello", old.execution_id, timedelta(seconds=60), clock.now())
    assert client.post("/crons/hello", headers=AUTH).status_code == 200


def test_a_database_outage_before_the_job_starts_delays_the_run_instead_of_failing_it(
    client: FlaskClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connection drops after the job's lock was taken and before the run was recorded
    # (a PostgreSQL restart between two statements): the endpoint waits, tries again, and the
    # lock it took on the first try is still its own.
    real_start, failures = runs.start_run, [OperationalError("server closed the connection")] * 2

    def flaky_start(*args: Any, **kwargs: Any) -> Run:
        if failures:
            raise failures.pop()
        return real_start(*args, **kwargs)

    monkeypatch.setattr(runs, "start_run", flaky_start)
    waited_before = len(clock.waits)
    response = client.post("/crons/hello", headers=AUTH)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "success"
    assert [r.status for r in _runs("hello")] == ["success"]
    assert leases.current("job:hello") is None
    assert clock.waits[waited_before:] == [0.1, 0.2]  # backoff, on the injected clock


def test_a_database_down_for_longer_than_the_wait_is_503_with_retry_after(
    client: FlaskClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr(views, "job_ref", down)
    started = clock.monotonic()
    response = client.post("/crons/hello", headers=AUTH)
    assert response.status_code == 503
    assert response.json == {"error": "database unavailable, retry later"}
    assert response.headers["Retry-After"] == "5"
    assert clock.monotonic() - started == pytest.approx(10.0)  # database_wait_seconds
    assert _runs("hello") == [] and leases.current("job:hello") is None


def test_one_heartbeat_thread_serves_every_run_of_a_process(client: FlaskClient) -> None:
    import threading

    for _ in range(20):
        assert client.post("/crons/hello", headers=AUTH).status_code == 200
    names = [t.name for t in threading.enumerate()]
    assert names.count("heartbeats") == 1 and not any(n.startswith("heartbeat-") for n in names)


def test_an_admission_whose_commit_went_through_is_resumed_not_repeated(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lock and the running row were committed, then the connection died before the
    # answer came (PostgreSQL can lose a COMMIT's answer): the next try must pick them up.
    real, lost = views._execution, [OperationalError("server closed the connection")]

    def answer_lost(*args: Any) -> Any:
        if lost:
            raise lost.pop()
        return real(*args)

    monkeypatch.setattr(views, "_execution", answer_lost)
    response = client.post("/crons/hello", headers=AUTH)
    assert response.status_code == 200 and response.json["status"] == "success"
    assert [r.status for r in _runs("hello")] == ["success"]
    assert leases.current("job:hello") is None
