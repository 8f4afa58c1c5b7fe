"""Alerts end to end on both backends: runs recorded by the endpoints, the evaluator with a
FakeClock, and delivery to a real webhook receiver on 127.0.0.1 (dead, then back)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask import request
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from gateway.alerts.delivery import deliver_due
from gateway.alerts.evaluate import AlertEvaluator
from gateway.alerts.evaluate import evaluate_alerts
from gateway.config import Settings
from gateway.store.models import Alert
from gateway.store.models import Job
from tests.conftest import CRON_TOKEN
from tests.e2e.procs import free_port
from tests.fakes import FakeClock
from tests.servers import serving
from tests.smtp_receiver import SmtpReceiver

ROOT = Path(__file__).resolve().parents[1]
HOOK_PATH = "/services/T0000/B0000/secret-part-of-the-url"


class Receiver:
    """A webhook receiver: records each JSON body; answers `status`."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.status = 200
        self.app = Flask("receiver")
        self.app.add_url_rule(HOOK_PATH, "hook", self.hook, methods=["POST"])

    def hook(self) -> Any:
        self.bodies.append(request.get_json())
        return ("ok", self.status) if self.status == 200 else ("no thanks", self.status)


@contextmanager
def serving_on(app: Flask, port: int) -> Iterator[None]:
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def call(client: FlaskClient, job: str) -> None:
    client.post(f"/crons/{job}", headers={"X-Cron-Token": CRON_TOKEN})


def test_a_failure_and_its_recovery_reach_the_webhook_once_each(
    client: FlaskClient, settings: Settings, clock: FakeClock
) -> None:
    receiver = Receiver()
    with serving(receiver.app) as url:
        settings = replace(settings, alert_webhook=url + HOOK_PATH)
        evaluator = AlertEvaluator(settings)
        call(client, "fails")
        assert evaluator.evaluate(clock.now()) == 1
        assert deliver_due(settings, clock.now()) == 1
        for _ in range(3):  # it keeps failing: no more alerts
            clock.advance(minutes=1)
            call(client, "fails")
            assert evaluator.evaluate(clock.now()) == 0
        assert deliver_due(settings, clock.now()) == 0

        clock.advance(minutes=1)
        _make_it_succeed(client, clock)
        assert evaluator.evaluate(clock.now()) == 1
        assert deliver_due(settings, clock.now()) == 1

    failure, recovery = receiver.bodies
    assert failure["text"].startswith(":red_circle: fails failed on its first run (error)")
    assert "the warehouse said no" in failure["text"]
    assert failure["blocks"][0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": failure["text"]},
    }
    assert "*failure* · job `fails`" in failure["blocks"][1]["elements"][0]["text"]
    assert recovery["text"] == ":large_green_circle: fails recovered: it succeeded again"
    rows = list(Alert.select().order_by(Alert.id))
    assert [(a.kind, a.state, a.attempts) for a in rows] == [
        ("failure", "closed", 1),
        ("recovery", "closed", 1),
    ]
    assert all(a.delivered_at is not None and a.next_attempt_at is None for a in rows)


def _make_it_succeed(client: FlaskClient, clock: FakeClock) -> None:
    """Record a success for `fails` the way an external caller's run would be."""
    from gateway.store import runs

    job = Job.get(Job.name == "fails")
    run = runs.start_run(job, runs.Origin(), "cron-box", None, clock.now())
    runs.finish_run(run.id, "success", clock.now(), duration_ms=5)


def test_a_dead_receiver_is_retried_with_backoff_until_it_comes_back(
    client: FlaskClient, settings: Settings, clock: FakeClock
) -> None:
    port = free_port()  # nothing listens there yet
    settings = replace(settings, alert_webhook=f"http://127.0.0.1:{port}{HOOK_PATH}")
    call(client, "fails")
    assert AlertEvaluator(settings).evaluate(clock.now()) == 1

    waits = []
    for _ in range(3):
        assert deliver_due(settings, clock.now()) == 0
        alert = Alert.get()
        waits.append(alert.next_attempt_at - clock.now())
        assert alert.last_error == "webhook unreachable (ConnectionError)"
        assert deliver_due(settings, clock.now()) == 0  # not due again yet
        clock.advance(seconds=waits[-1].total_seconds())
    assert waits == [timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=4)]

    receiver = Receiver()
    receiver.status = 503
    with serving_on(receiver.app, port):
        assert deliver_due(settings, clock.now()) == 0
        alert = Alert.get()
        assert alert.last_error == "webhook answered 503: no thanks"
        assert HOOK_PATH not in (alert.last_error or "")
        clock.advance(seconds=8)
        receiver.status = 200
        assert deliver_due(settings, clock.now()) == 1
    alert = Alert.get()
    assert (alert.attempts, alert.delivered_at, alert.last_error) == (5, clock.now(), None)
    assert len(receiver.bodies) == 2  # the 503 one, and the one that was taken


def test_without_a_channel_alerts_are_recorded_but_not_sent(
    client: FlaskClient, settings: Settings, clock: FakeClock
) -> None:
    call(client, "fails")
    assert evaluate_alerts(settings, clock.now()) == 1
    alert = Alert.get()
    assert (alert.kind, alert.next_attempt_at, alert.attempts) == ("failure", None, 0)


def test_a_watched_job_that_never_runs_turns_late_once(
    client: FlaskClient, settings: Settings, clock: FakeClock
) -> None:
    call(client, "hello")  # */5: the next slot after 09:00 is 09:05; grace 300 s
    Job.update(grace=60).where(Job.name == "hello").execute()
    evaluator = AlertEvaluator(settings)
    assert evaluator.evaluate(clock.now()) == 0
    assert Job.get(Job.name == "hello").late_at == clock.now() + timedelta(minutes=6)
    clock.advance(minutes=6)
    assert evaluator.evaluate(clock.now()) == 1
    clock.advance(hours=2)
    assert evaluator.evaluate(clock.now()) == 0
    (alert,) = Alert.select()
    assert (alert.kind, alert.state) == ("late", "open")
    assert Job.get(Job.name == "hello").late_at is None


def test_alerts_list_shows_delivery(
    client: FlaskClient, settings: Settings, clock: FakeClock, db: str
) -> None:
    call(client, "fails")
    AlertEvaluator(settings).evaluate(clock.now())
    env = {"GATEWAY_DATABASE_URL": db, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "gateway", "alerts", "list"]
    table = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["OPENED", "JOB", "KIND", "STATE", "DELIVERY", "MESSAGE"]
    assert row.split()[2:6] == ["fails", "failure", "open", "no"]
    found = subprocess.run(
        [*argv, "--json", "--open"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    (alert,) = json.loads(found.stdout)
    assert alert["kind"] == "failure" and alert["delivered_at"] is None


@pytest.mark.parametrize("bad", ["hooks.example.com/x", "ftp://example.com/x"])
def test_a_bad_webhook_url_fails_at_start_without_echoing_it(bad: str) -> None:
    from gateway.config import load_settings
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        load_settings({"GATEWAY_ALERT_WEBHOOK": bad}, config_file="/nonexistent.toml")
    assert bad not in str(e.value)


def test_an_alert_goes_by_email_through_a_real_smtp_server(
    client: FlaskClient, settings: Settings, clock: FakeClock
) -> None:
    with SmtpReceiver() as smtp:
        settings = replace(
            settings,
            alert_smtp=f"smtp://alerts%40example.com:{smtp.password}@127.0.0.1:{smtp.port}",
            alert_to=("oncall@example.com", "team@example.com"),
            alert_from="gateway@example.com",
        )
        call(client, "fails")
        assert AlertEvaluator(settings).evaluate(clock.now()) == 1
        assert deliver_due(settings, clock.now()) == 1
    [mail] = smtp.messages
    assert mail.login == "alerts@example.com"
    assert (mail.sender, mail.recipients) == (
        "gateway@example.com",
        ["oncall@example.com", "team@example.com"],
    )
    assert mail.message["Subject"] == "[cron gateway] failure: fails"
    assert "the warehouse said no" in mail.message.get_payload()
    alert = Alert.get()
    assert alert.delivered_at is not None and alert.attempts == 1


def test_a_refused_smtp_login_is_retried_and_says_why(
    client: FlaskClient, settings: Settings, clock: FakeClock
) -> None:
    with SmtpReceiver() as smtp:
        url = f"smtp://alerts:wrong-password@127.0.0.1:{smtp.port}"
        settings = replace(settings, alert_smtp=url, alert_to=("oncall@example.com",))
        call(client, "fails")
        AlertEvaluator(settings).evaluate(clock.now())
        assert deliver_due(settings, clock.now()) == 0
    alert = Alert.get()
    assert alert.delivered_at is None and alert.next_attempt_at > clock.now()
    assert alert.last_error == "e-mail not sent (SMTPAuthenticationError)"
    assert "wrong-password" not in alert.last_error
    assert smtp.messages == []


def test_a_job_only_system_cron_calls_is_watched_by_the_dead_mans_switch(
    settings: Settings, clock: FakeClock
) -> None:
    from gateway.store import runs

    now = clock.now()
    job = Job.create(
        name="nightly-export", url="/crons/nightly-export", schedule="0 3 * * *",
        watch_only=True, created_at=now, updated_at=now,
    )  # fmt: skip
    evaluator = AlertEvaluator(replace(settings, alert_grace_seconds=600))
    assert evaluator.evaluate(clock.now()) == 0  # 09:00: not expected before 03:00 + 10 min
    clock.advance(hours=18, minutes=9)  # 03:09 the next day: still within the grace
    assert evaluator.evaluate(clock.now()) == 0
    clock.advance(minutes=2)
    assert evaluator.evaluate(clock.now()) == 1
    [late] = Alert.select().where(Alert.job == job.id)
    assert (late.kind, late.state) == ("late", "open") and "nightly-export" in late.message
    clock.advance(minutes=5)  # system cron's curl finally comes
    run = runs.start_run(job, runs.Origin(), "cron-box", None, clock.now())
    runs.finish_run(run.id, "success", clock.now(), duration_ms=1200)
    assert evaluator.evaluate(clock.now()) == 1
    kinds = [(a.kind, a.state) for a in Alert.select().order_by(Alert.id)]
    assert kinds == [("late", "closed"), ("recovery", "closed")]


def test_jobs_that_never_ran_are_settled_in_bulk_and_a_late_one_still_alerts(
    settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.alerts import evaluate

    now = clock.now()
    Job.insert_many(
        [
            {"name": f"daily{i}", "url": f"/crons/daily{i}", "schedule": "0 3 * * *",
             "created_at": now, "updated_at": now}
            for i in range(1200)
        ]
    ).execute()  # fmt: skip
    overdue = Job.create(
        name="overdue", url="/crons/overdue", schedule="0 3 * * *",
        created_at=now - timedelta(days=2), updated_at=now,
    )  # fmt: skip
    judged: list[int] = []
    real_judge = evaluate.judge_jobs

    def counting_judge(job_ids: list[int], *args: Any) -> int:
        judged.extend(job_ids)
        return real_judge(job_ids, *args)

    monkeypatch.setattr(evaluate, "judge_jobs", counting_judge)
    evaluator = AlertEvaluator(replace(settings, alert_grace_seconds=600))
    assert evaluator.evaluate(clock.now()) == 1
    assert judged == [overdue.id]  # the 1,200 others needed no judgement of their own
    tomorrow_late = datetime(2026, 11, 24, 3, 10, tzinfo=UTC)
    assert {j.late_at for j in Job.select().where(Job.name != "overdue")} == {tomorrow_late}
    [alert] = Alert.select()
    assert (alert.job_id, alert.kind) == (overdue.id, "late")
    judged.clear()
    assert evaluator.evaluate(clock.now()) == 0 and judged == []


def test_a_change_stamped_by_a_lagging_clock_is_judged_by_the_next_wide_round(
    settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.alerts import evaluate
    from gateway.store import runs

    start, made = clock.now(), clock.now() - timedelta(hours=1)
    late, prompt = (
        Job.create(name=n, url=f"/crons/{n}", schedule="0 3 * * *", created_at=made,
                   updated_at=made)
        for n in ("lagging", "prompt")
    )  # fmt: skip
    evaluator = AlertEvaluator(settings)
    assert evaluator.evaluate(start) == 0  # the first round is wide
    judged: list[int] = []
    real_judge = evaluate.judge_jobs
    monkeypatch.setattr(
        evaluate, "judge_jobs", lambda ids, *a: judged.extend(ids) or real_judge(ids, *a)
    )

    def fail(job: Job, stamped: datetime) -> None:
        run = runs.start_run(job, runs.Origin(), "cron", None, stamped)
        runs.finish_run(run.id, "error", stamped, duration_ms=5, error="boom")

    # After that round, a worker whose clock is 60 s behind records a failure; the gateway's
    # own clock stamps another one.
    fail(late, clock.advance(seconds=10) - timedelta(seconds=60))
    fail(prompt, clock.now())
    evaluator.evaluate(clock.advance(seconds=2))  # a narrow round: LAG past the round before
    assert judged == [prompt.id]
    evaluator.evaluate(clock.advance(seconds=5))
    assert judged == [prompt.id]  # nothing new: neither is read again
    evaluator.evaluate(clock.advance(seconds=15))  # 32 s after the first: wide, MARGIN back
    assert judged == [prompt.id, late.id]
    opened = {(a.job_id, a.kind) for a in Alert.select().where(Alert.state == "open")}
    assert opened == {(prompt.id, "failure"), (late.id, "failure")}


def test_judged_keys_are_kept_by_id_in_an_array_that_grows() -> None:
    from gateway.alerts.evaluate import KeysById

    keys = KeysById()
    assert keys.get(5) is None and 5 not in keys
    keys[5] = -7
    keys[100_000] = 2**63 - 1  # a hash is any signed 64-bit int
    keys[3] = 0  # 0 marks "not judged": a key of 0 is kept as 1, still judged
    assert (keys.get(5), keys.get(100_000), keys.get(3)) == (-7, 2**63 - 1, 1)
    assert 3 in keys and 4 not in keys and keys.get(10**6) is None
    keys[10**9] = 9  # far past the array (a sequence that jumped): no 8 GB array for it
    assert keys.get(10**9) == 9 and len(keys._keys) < 10**6


@pytest.mark.parametrize(
    ("ids", "ranges"),
    [
        ([], []),
        ([7], [(7, 7)]),
        (list(range(1, 1201)), [(1, 500), (501, 1000), (1001, 1200)]),  # at most 500 a range
        ([1, 2, 3, 5000, 5001, 9000], [(1, 3), (5000, 5001), (9000, 9000)]),  # gaps >= 2,000
        ([10, 2009, 2010], [(10, 2009), (2010, 2010)]),  # a range spans less than 2,000 ids
    ],
)
def test_never_run_jobs_are_read_in_ranges_of_ids(ids: list[int], ranges: list[Any]) -> None:
    from array import array

    from gateway.alerts.evaluate import _id_ranges

    assert list(_id_ranges(array("q", ids))) == ranges


@pytest.mark.parametrize("gap", [22, 200], ids=["next-wide-round", "after-a-long-stall"])
def test_a_change_lagging_almost_the_whole_margin_is_still_judged(
    settings: Settings, clock: FakeClock, gap: int
) -> None:
    from gateway.store import runs

    made = clock.now() - timedelta(hours=1)
    job = Job.create(
        name="late", url="/crons/late", schedule="0 3 * * *", created_at=made, updated_at=made
    )
    evaluator = AlertEvaluator(settings)
    evaluator.evaluate(clock.now())  # wide
    # Visible 10 s after that round, stamped by a clock 110 s behind (the margin is 120 s).
    stamped = clock.advance(seconds=10) - timedelta(seconds=110)
    run = runs.start_run(job, runs.Origin(), "cron", None, stamped)
    runs.finish_run(run.id, "error", stamped, duration_ms=5, error="boom")
    evaluator.evaluate(clock.advance(seconds=gap))  # 32 s or 210 s after the wide round
    assert [(a.job_id, a.kind) for a in Alert.select()] == [(job.id, "failure")]


def test_jobs_judged_in_one_batch_are_each_judged_by_their_own_runs(
    settings: Settings, clock: FakeClock
) -> None:
    from gateway.alerts import evaluate
    from gateway.store import runs

    made = clock.now() - timedelta(days=1)

    def make(name: str) -> Job:
        return Job.create(
            name=name, url=f"/crons/{name}", schedule="0 * * * *", created_at=made,
            updated_at=made,
        )  # fmt: skip

    def ran(job: Job, status: str, at: datetime) -> None:
        run = runs.start_run(job, runs.Origin(), "cron", None, at)
        error = None if status == "success" else "boom"
        runs.finish_run(run.id, status, at, duration_ms=5, error=error)

    healthy = [make(f"ok{i:02d}") for i in range(evaluate.JUDGE_BATCH + 10)]  # two batches
    for job in healthy:
        ran(job, "success", clock.now() - timedelta(minutes=30))
    flaky = make("flaky")  # its last success is older than the runs a judgement reads
    ran(flaky, "success", clock.now() - timedelta(hours=23))
    for i in range(evaluate.HISTORY + 5):
        ran(flaky, "error", clock.now() - timedelta(minutes=25 - i))
    never = make("never")
    ran(never, "error", clock.now() - timedelta(minutes=1))

    evaluator = AlertEvaluator(replace(settings, alert_grace_seconds=600))
    assert evaluator.evaluate(clock.now()) == 4
    opened = {(a.job.name, a.kind): a.message for a in Alert.select()}
    assert set(opened) == {
        ("flaky", "failure"), ("flaky", "late"), ("never", "failure"), ("never", "late")
    }  # fmt: skip
    success_at = (clock.now() - timedelta(hours=23)).isoformat()
    assert f"has not succeeded since {success_at}" in opened[("flaky", "late")]
    assert "has not succeeded since never" in opened[("never", "late")]
    assert "failed (error): boom" in opened[("flaky", "failure")]
    assert "failed on its first run (error): boom" in opened[("never", "failure")]
    late_at = {j.name: j.late_at for j in Job.select()}
    # Succeeded at 08:30, so expected by the 09:00 slot, plus 10 minutes of grace.
    assert {late_at[j.name] for j in healthy} == {datetime(2026, 11, 23, 9, 10, tzinfo=UTC)}
    assert (late_at["flaky"], late_at["never"]) == (None, None)  # late already


def test_a_history_is_read_oldest_first_and_its_newest_success_found(
    settings: Settings, clock: FakeClock
) -> None:
    from gateway.alerts.evaluate import histories_of
    from gateway.store import runs

    made = clock.now() - timedelta(hours=1)
    a, b = (
        Job.create(name=n, url=f"/crons/{n}", schedule="0 * * * *", created_at=made,
                   updated_at=made)
        for n in ("a", "b")
    )  # fmt: skip
    done = {a.id: ["success", "error", "success", "error"], b.id: ["error", "error"]}
    for minute in range(4):  # interleaved, so the two jobs' run ids alternate
        for job in (a, b):
            statuses = done[job.id]
            if minute < len(statuses):
                at = made + timedelta(minutes=minute)
                run = runs.start_run(job, runs.Origin(), "cron", None, at)
                runs.finish_run(run.id, statuses[minute], at, duration_ms=1)
    histories, successes = histories_of([b.id, a.id])
    assert [f.status for f in histories[a.id]] == done[a.id]
    assert [f.status for f in histories[b.id]] == done[b.id]
    assert successes == {a.id: made + timedelta(minutes=2)}


def test_a_job_the_rules_choke_on_holds_up_no_other_in_its_batch(
    settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from gateway.alerts import rules
    from gateway.store import runs

    made = clock.now() - timedelta(days=1)
    jobs = [
        Job.create(name=n, url=f"/crons/{n}", schedule="0 * * * *", created_at=made,
                   updated_at=made)
        for n in ("first", "poison", "last")
    ]  # fmt: skip
    for job in jobs:
        run = runs.start_run(job, runs.Origin(), "cron", None, clock.now())
        runs.finish_run(run.id, "error", clock.now(), duration_ms=1, error="boom")
    real_judge = rules.judge

    def judge(job: rules.Expectation, *args: Any) -> rules.Verdict:
        if job.name == "poison":
            raise ZeroDivisionError("a bug in a rule")
        return real_judge(job, *args)

    monkeypatch.setattr(rules, "judge", judge)
    # Its deadline passed: a late job is looked at every round, changed or not.
    Job.update(late_at=made).where(Job.id == jobs[1].id).execute()
    evaluator = AlertEvaluator(settings)
    assert evaluator.evaluate(clock.now()) == 4  # failure and late, for first and last
    opened = {(a.job.name, a.kind) for a in Alert.select()}
    assert opened == {("first", "failure"), ("first", "late"), ("last", "failure"),
                      ("last", "late")}  # fmt: skip
    assert f"alerts: judging job {jobs[1].id} failed" in caplog.text
    caplog.clear()
    assert evaluator.evaluate(clock.advance(seconds=1)) == 0
    assert "judging" not in caplog.text  # passed over until it changes, late or not
    evaluator.evaluate(clock.advance(minutes=15))
    assert f"alerts: judging job {jobs[1].id} failed" in caplog.text  # or for a while
    run = runs.start_run(jobs[1], runs.Origin(), "cron", None, clock.now())
    runs.finish_run(run.id, "success", clock.now(), duration_ms=1)
    monkeypatch.setattr(rules, "judge", real_judge)  # fixed, and it ran again
    evaluator.evaluate(clock.advance(seconds=1))
    assert Job.get_by_id(jobs[1].id).late_at == datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
