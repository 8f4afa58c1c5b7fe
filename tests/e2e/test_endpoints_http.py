"""Cron endpoints over real HTTP: gunicorn (2 gthread workers) on SQLite and on PostgreSQL.

The app is tests/e2e/app_under_test.py; heartbeat 0.2 s, lease 2 s (a tmp gateway.toml).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import psycopg2
import pytest
import requests

from gateway.store import leases
from gateway.store import run_queries
from gateway.store import runs
from gateway.store.models import Run
from tests.e2e.procs import Server
from tests.e2e.procs import alive
from tests.e2e.procs import parent_of
from tests.e2e.procs import start_gunicorn
from tests.e2e.procs import wait_until

pytestmark = pytest.mark.e2e

RESULT_FIELDS = {"execution_id", "job", "status", "duration_ms", "summary", "error"}
JOBS = {"fast", "slow", "streamed", "background", "boom", "forever"}
LEASE_SECONDS = 2.0  # what start_gunicorn writes to gateway.toml


def _statuses(job: str) -> Counter[str]:
    return Counter(r.status for r in run_queries.list_runs(job=job, limit=100))


# -- 1. status codes -------------------------------------------------------------------------


def test_status_codes_over_http(server: Server, store: Callable[[Server], None]) -> None:
    unauthorized = {"error": "unauthorized"}
    basic = "Basic " + base64.b64encode(f"cron:{server.token}".encode()).decode()
    for headers in (
        {},
        {"X-Cron-Token": "wrong-token-0123456789"},
        {"Authorization": basic},
        {"Authorization": f"Basic {server.token}"},
    ):
        for method, path in (("POST", "/crons/fast"), ("POST", "/crons/nope"), ("GET", "/crons")):
            r = server.call(path, method, headers=headers)
            assert (r.status_code, r.json()) == (401, unauthorized), (method, path, headers)
            assert r.headers["Content-Type"] == "application/json"
    # ?cronToken= is off by default: refused like no token at all.
    r = server.call(f"/crons/fast?cronToken={server.token}", headers={})
    assert (r.status_code, r.json()) == (401, unauthorized)

    r = server.call("/crons/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]

    r = server.call("/crons/fast", json={"n": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == RESULT_FIELDS
    assert body["job"] == "fast" and body["status"] == "success" and body["error"] is None
    assert body["summary"] == {"ok": True, "payload": {"n": 1}, "trigger": "external"}
    assert isinstance(body["duration_ms"], int) and body["duration_ms"] >= 0

    r = server.call("/crons/fast", headers={"Authorization": f"Bearer {server.token}"})
    assert r.status_code == 200 and r.json()["status"] == "success"

    r = server.call("/crons/boom")
    assert r.status_code == 500, r.text
    body = r.json()
    assert set(body) == RESULT_FIELDS
    assert body["status"] == "error" and "the warehouse said no" in body["error"]
    assert "Traceback" not in r.text and 'File "' not in r.text, r.text

    r = server.call(
        "/crons/fast",
        data=b'{"not": json',
        headers={"X-Cron-Token": server.token, "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert "JSON" in r.json()["error"]

    r = server.call("/crons/fast", data=b"x" * (1024 * 1024 + 1))
    assert r.status_code == 413, r.text
    assert "error" in r.json()

    r = server.call("/crons", "GET")
    assert r.status_code == 200
    listed = {job["name"]: job for job in r.json()["jobs"]}
    assert set(listed) == JOBS
    assert listed["fast"]["schedule"] == "*/5 * * * *"
    assert listed["fast"]["url"] == "/crons/fast"
    assert listed["streamed"]["mode"] == "stream"

    r = server.call("/crons/fast", "PUT")
    assert r.status_code == 405

    store(server)
    assert _statuses("fast") == {"success": 2}
    assert _statuses("boom") == {"error": 1}
    failed = run_queries.list_runs(job="boom")[0]
    assert failed.error_stack and "Traceback" in failed.error_stack  # stored, not returned
    # The refused ?cronToken= call is in the access log, redacted.
    wait_until(lambda: "cronToken=[redacted]" in server.proc.output(), 5, "the access log line")
    assert server.token not in server.proc.output()


def test_an_oversized_chunked_body_is_413_too(
    server: Server, store: Callable[[Server], None]
) -> None:
    """Without Content-Length the limit must hold as well (werkzeug stops reading at it)."""
    limit = 1024 * 1024  # Settings.max_body_bytes, the default

    def chunks(head: bytes) -> Iterator[bytes]:
        yield head
        for _ in range(limit // 65536 + 1):
            yield b" " * 65536
        yield b"this part is not JSON"

    answers = []
    for head in (b"x", b'{"a": 1}'):
        r = server.call("/crons/no-such-job", data=chunks(head))
        assert r.status_code == 404  # unknown job: checked before the body is read
        r = server.call("/crons/fast", data=chunks(head))
        answers.append((head, r.status_code, r.text[:200]))
    store(server)
    ran = [r.payload for r in run_queries.list_runs(job="fast", limit=100) if r.payload == {"a": 1}]
    assert [code for _, code, _ in answers] == [413, 413] and not ran, (
        "gateway/endpoints/views.py _payload(): a chunked body (no Content-Length) larger than"
        " max_body_bytes is silently cut at the limit by request.get_data(), then parsed: "
        f"400 'not valid JSON' or, if the first {limit} bytes parse, 200 and the job runs with"
        f" the cut payload; answers: {answers}"
    )


# -- 2. overlap across workers ---------------------------------------------------------------


def test_concurrent_calls_of_a_slow_job_one_runs_two_are_skipped(
    server: Server, store: Callable[[Server], None]
) -> None:
    barrier = threading.Barrier(3)
    answers: list[requests.Response | BaseException] = []

    def call() -> None:
        barrier.wait(timeout=5)
        try:
            answers.append(server.call("/crons/slow"))
        except BaseException as e:  # reported below, not lost in the thread
            answers.append(e)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=15)
    assert not any(t.is_alive() for t in threads)
    assert all(isinstance(a, requests.Response) for a in answers), answers
    responses = [a for a in answers if isinstance(a, requests.Response)]
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409, 409], [(r.status_code, r.text) for r in responses]
    for r in responses:
        body = r.json()
        if r.status_code == 409:
            assert body["status"] == "skipped" and "in progress" in body["error"], body
        else:
            assert body["status"] == "success", body

    store(server)
    assert _statuses("slow") == {"success": 1, "skipped": 2}


# -- 3. streaming ----------------------------------------------------------------------------


def test_streamed_lines_arrive_before_the_job_ends(
    server: Server, store: Callable[[Server], None]
) -> None:
    started = time.monotonic()
    arrivals: list[tuple[float, dict[str, Any]]] = []
    with requests.post(
        server.url + "/crons/streamed",
        headers={"X-Cron-Token": server.token},
        stream=True,
        timeout=15,
    ) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("application/x-ndjson")
        for line in r.iter_lines():
            if line:
                arrivals.append((time.monotonic() - started, json.loads(line)))
    total = time.monotonic() - started

    first_at, first = arrivals[0]
    assert first_at < 1.0, arrivals
    logged_at = next(at for at, event in arrivals if event.get("log") == "first line")
    assert logged_at < 1.0, f"the first ctx.log line came after {logged_at:.2f} s"
    assert total >= 1.4, arrivals
    last = arrivals[-1][1]
    assert set(last) == RESULT_FIELDS, last
    assert last["status"] == "success" and last["summary"] == {"lines": 2}
    assert [e["log"] for _, e in arrivals if "log" in e] == ["first line", "second line"]

    store(server)
    run = run_queries.find_run(last["execution_id"])
    assert run is not None and run.status == "success"
    assert run.log == "first line\nsecond line"


# -- 4. async --------------------------------------------------------------------------------


def test_async_job_answers_202_at_once_and_ends_success(
    server: Server, store: Callable[[Server], None]
) -> None:
    started = time.monotonic()
    r = server.call("/crons/background")
    elapsed = time.monotonic() - started
    assert r.status_code == 202, r.text
    assert elapsed < 0.5, f"202 took {elapsed:.2f} s"
    body = r.json()
    execution_id, status_url = body["execution_id"], body["status_url"]
    assert status_url == f"/crons/background/runs/{execution_id}"

    assert server.call(status_url, "GET", headers={}).status_code == 401

    def finished() -> dict[str, Any] | None:
        answer = server.call(status_url, "GET")
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data if data["status"] not in ("queued", "dispatched", "running") else None

    final = wait_until(finished, 5, "the async run to end", interval=0.1)
    assert final["status"] == "success", final
    assert final["summary"] == {"done": True}
    assert final["progress"] == {"done": 1, "total": 1}

    store(server)
    run = run_queries.find_run(execution_id)
    assert run is not None and run.status == "success" and run.duration_ms >= 900


# -- 5. kill -9 of the worker ----------------------------------------------------------------


def test_a_killed_worker_leaves_an_abandoned_run_never_a_running_one(
    start_server: Callable[..., Server], store: Callable[[Server], None], tmp_path: Any
) -> None:
    server = start_server()
    store(server)
    pid_file = tmp_path / "forever.pid"
    outcome: list[Any] = []

    def call_forever() -> None:
        try:
            outcome.append(server.call("/crons/forever", json={"pid_file": str(pid_file)}))
        except requests.RequestException as e:
            outcome.append(e)

    caller = threading.Thread(target=call_forever)
    caller.start()
    try:
        pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 10, "pid file"))
        assert parent_of(pid) == server.proc.pid, "the job did not run in a gunicorn worker"
        run = wait_until(
            lambda: next(iter(run_queries.list_runs(job="forever", status="running")), None),
            5,
            "the running run in the store",
        )
        # The heartbeat stores the log while the job runs.
        wait_until(
            lambda: Run.get_by_id(run.id).log == f"worker pid {pid}", 3, "the heartbeat's log"
        )

        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: not alive(pid), 5, f"worker {pid} to die")
    finally:
        caller.join(timeout=20)
    assert outcome and isinstance(outcome[0], requests.ConnectionError), outcome

    # Wait (bounded) until the dead worker's lease has expired by the clock the app uses.
    lease = leases.current("job:forever")
    assert lease is not None and lease.holder == run.execution_id
    wait_until(
        lambda: datetime.now(UTC) > lease.expires_at + timedelta(seconds=0.1),
        LEASE_SECONDS + 1.0,
        "the dead worker's lease to expire",
    )
    unattended = Run.get_by_id(run.id).status
    print(f"status of the dead worker's run after lease expiry, before any new call: {unattended}")

    # The next call of the job takes the expired lease over and marks the old run abandoned.
    r = server.call("/crons/forever", json={"seconds": 0})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "success"
    old = Run.get_by_id(run.id)
    assert old.status == "abandoned", (
        f"run {old.execution_id} of a worker killed with -9 is {old.status!r} after the lease"
        " expired and a new call ran"
    )
    assert old.finished_at is not None and old.error == runs.ABANDONED_BY_WORKER
    assert time.monotonic() - killed_at < LEASE_SECONDS + 2.5
    assert _statuses("forever") == {"abandoned": 1, "success": 1}
    assert server.proc.running(), "gunicorn's master should survive a worker's death"


# -- 6. no token in logs or rows -------------------------------------------------------------


def test_the_token_never_reaches_the_log_or_the_store(
    start_server: Callable[..., Server], store: Callable[[Server], None]
) -> None:
    server = start_server(GATEWAY_ALLOW_QUERY_TOKEN="1")
    token = server.token

    r = server.call(f"/crons/fast?cronToken={token}", headers={})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "success"
    r = server.call("/crons/fast", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    r = server.call("/crons/fast", json={"note": "plain header"})
    assert r.status_code == 200, r.text
    r = server.call(f"/crons/boom?cronToken={token}", headers={})
    assert r.status_code == 500, r.text
    r = server.call(f"/crons/fast?cronToken={token}-wrong&x=1", headers={})
    assert r.status_code == 401, r.text
    r = server.call(f"/crons?cronToken={token}", "GET", headers={})
    assert r.status_code == 200, r.text
    with requests.post(
        f"{server.url}/crons/streamed?cronToken={token}", stream=True, timeout=15
    ) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines[-1]["status"] == "success", lines
    for line in lines:
        assert token not in json.dumps(line)

    store(server)
    assert _statuses("fast") == {"success": 3}

    # Stop gunicorn so that every line it would write is in the file.
    server.proc.stop(signal.SIGTERM)
    output = server.proc.output()
    assert "cronToken=[redacted]" in output, "the access log lines are not in the output file"
    assert token not in output, [line for line in output.splitlines() if token in line]

    leaks = [(table, row) for table, row in _all_rows(server.db_url) if token in repr(row)]
    assert not leaks, leaks


def _all_rows(db_url: str) -> list[tuple[str, tuple[Any, ...]]]:
    """Return every row of every table of the store, straight from the database driver."""
    rows: list[tuple[str, tuple[Any, ...]]] = []
    if db_url.startswith("sqlite"):
        path = db_url.split("sqlite:///", 1)[1]
        with sqlite3.connect(path) as conn:
            tables = [
                t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for table in tables:
                rows += [(table, row) for row in conn.execute(f'SELECT * FROM "{table}"')]
        conn.close()
        assert "run" in tables
        return rows
    parts = urlsplit(db_url)
    options = parse_qs(parts.query)["options"][0]
    schema = options.split("search_path=", 1)[1]
    base = parts._replace(query="").geturl()
    with psycopg2.connect(base) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        )
        tables = [t for (t,) in cur.fetchall()]
        for table in tables:
            cur.execute(f'SELECT * FROM "{schema}"."{table}"')
            rows += [(table, row) for row in cur.fetchall()]
    conn.close()
    assert "run" in tables
    return rows


def test_a_custom_access_log_format_with_the_token_headers_stays_redacted(
    tmp_path: Path,
) -> None:
    """gateway/logs.py lists the X-Cron-Token and Authorization atoms as redacted: check it."""
    log_format = '%(h)s "%(r)s" %(s)s tok=%({x-cron-token}i)s auth=%({authorization}i)s'
    token = "e2e-" + "0123456789abcdef" * 2
    server = start_gunicorn(
        tmp_path,
        f"sqlite:///{tmp_path / 'gateway.db'}",
        token,
        GUNICORN_CMD_ARGS=f"--access-logformat '{log_format}'",
    )
    try:
        assert server.call("/crons/fast").status_code == 200
        r = server.call("/crons/fast", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
    finally:
        server.proc.stop(signal.SIGTERM)
        print(server.proc.report())
    lines = [line for line in server.proc.output().splitlines() if "/crons/fast" in line]
    assert len(lines) == 2 and "auth=[redacted]" in lines[1], lines
    assert not [line for line in lines if token in line], (
        "gateway/logs.py RedactingLogger.atoms: the '{x-cron-token}i' atom goes through"
        " tokens.redact(value) with no secrets, which only rewrites 'cronToken=' and 'Bearer'"
        f" patterns, so a bare X-Cron-Token header value is logged verbatim: {lines}"
    )
