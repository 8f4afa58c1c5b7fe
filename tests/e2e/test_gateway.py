"""The gateway end to end: gunicorn (2 workers) + `python -m gateway scheduler` + a SQLite file.

An every-second job fires once per slot and on time; `jobs pause` stops it; `jobs trigger`
runs at once. Jobs are added, paused and triggered with the CLI, as an operator would.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

import pytest

from gateway.store.db import close_database
from gateway.store.db import ensure_open
from gateway.store.models import ACTIVE_STATUSES
from gateway.store.models import Job
from gateway.store.models import Run
from tests.e2e.gateway_procs import GatewayProc
from tests.e2e.gateway_procs import cli
from tests.e2e.gateway_procs import gateway_set
from tests.e2e.gateway_procs import now
from tests.e2e.gateway_procs import runs_of
from tests.e2e.gateway_procs import table
from tests.e2e.procs import Server
from tests.e2e.procs import wait_until

pytestmark = pytest.mark.e2e

WINDOW = 10  # seconds of every-second slots watched
SECOND = timedelta(seconds=1)


@pytest.fixture(scope="module")
def backend() -> str:
    """These tests run on a SQLite file only (the conftest's `server` uses this backend)."""
    return "sqlite"


@dataclass
class Ticking:
    server: Server
    gateway: GatewayProc
    first: datetime  # the job's first slot
    end: datetime  # first + WINDOW: slots before this are the window's


@pytest.fixture(scope="module")
def ticking(server: Server) -> Iterator[Ticking]:
    """An active gateway and the app's job `fast` every second, watched for WINDOW seconds."""
    ensure_open(server.db_url)
    try:
        with gateway_set(server) as gateways:
            gw = gateways.start()
            gw.wait_role("active", 10)
            # The gateway read the app's manifest at start; the operator reschedules `fast`.
            wait_until(
                lambda: Job.get_or_none(Job.name == "fast"),
                10,
                "the gateway's start-up sync to create job 'fast' from the app's manifest",
            )
            cli(server, "jobs", "edit", "fast", "--schedule", "* * * * * *")
            job = Job.get(Job.name == "fast")
            assert job.next_run_at is not None, "an every-second job has a next slot"
            first = job.next_run_at
            end = first + WINDOW * SECOND

            def window_done() -> bool:
                if now() < end:
                    return False
                rows = [r for r in runs_of("fast") if r.scheduled_for and r.scheduled_for < end]
                return bool(rows) and all(_recorded(r) for r in rows)

            wait_until(window_done, WINDOW + 5, "the window to pass and its runs to end", 0.2)
            yield Ticking(server, gw, first, end)
    finally:
        close_database()


def _recorded(run: Run) -> bool:
    """Return True once the run ended and the gateway stored what it saw over HTTP."""
    return run.status not in ACTIVE_STATUSES and (
        run.http_status is not None or run.status == "missed"
    )


def test_every_second_job_fires_each_slot_once_on_time(ticking: Ticking) -> None:
    ensure_open(ticking.server.db_url)
    every = runs_of("fast")
    rows = [
        r
        for r in every
        if r.scheduled_for is not None and ticking.first <= r.scheduled_for < ticking.end
    ]
    shown = table(every)
    per_slot = Counter((r.scheduled_for, r.attempt) for r in rows)
    twice = [slot for slot, n in per_slot.items() if n > 1]
    assert not twice, f"slots fired more than once: {twice}\n{shown}"
    assert len(rows) >= WINDOW - 1, f"{len(rows)} runs in {WINDOW} s, expected >= 9\n{shown}"
    expected = {ticking.first + i * SECOND for i in range(WINDOW)}
    missing = sorted(expected - {r.scheduled_for for r in rows})
    assert len(missing) <= 1, f"slots never run: {missing}\n{shown}"
    assert Counter(r.status for r in rows) == {"success": len(rows)}, shown
    assert {r.trigger for r in rows} == {"schedule"}
    assert {r.attempt for r in rows} == {1}
    assert {r.http_status for r in rows} == {200}, shown
    assert {r.gateway for r in rows} == {ticking.gateway.instance}, shown
    for r in rows:
        assert r.summary == {"ok": True, "payload": None, "trigger": "schedule"}, r.summary
        assert r.duration_ms is not None and r.duration_ms >= 0
        assert r.started_at is not None and r.finished_at is not None
    assert all(r.lateness_ms is not None for r in rows), f"lateness not recorded\n{shown}"
    late = sorted(r.lateness_ms or 0 for r in rows)
    p50, worst = statistics.median(late), late[-1]
    # What the endpoint saw: its start minus the slot (the request's whole way, claim included).
    at_app = sorted(
        int((r.started_at - r.scheduled_for).total_seconds() * 1000)
        for r in rows
        if r.started_at and r.scheduled_for
    )
    print(
        f"every-second job: {len(rows)} runs; lateness_ms p50 {p50} ms, max {worst} ms: {late}; "
        f"endpoint start - slot p50 {statistics.median(at_app)} ms, max {at_app[-1]} ms: {at_app}"
    )
    assert at_app[-1] < 1000, f"endpoint starts late: {at_app}"
    assert p50 < 250 and worst < 1000, f"late: p50 {p50} ms, max {worst} ms\n{shown}"


def test_pause_stops_the_job(ticking: Ticking) -> None:
    server = ticking.server
    ensure_open(server.db_url)
    if not Job.get(Job.name == "fast").enabled:  # run alone after the trigger test
        cli(server, "jobs", "resume", "fast")
    seen = {r.id for r in runs_of("fast")}
    wait_until(
        lambda: any(r.id not in seen and r.status == "success" for r in runs_of("fast")),
        4,
        "the job to be firing before the pause",
    )
    cli(server, "jobs", "pause", "fast")
    paused_at = now()
    before = {r.id for r in runs_of("fast")}  # every claim committed before the pause
    job = Job.get(Job.name == "fast")
    assert not job.enabled and job.next_run_at is None
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        new = [r for r in runs_of("fast") if r.id not in before]
        assert not new, f"runs after the pause at {paused_at.isoformat()}:\n{table(new)}"
        time.sleep(0.1)
    wait_until(
        lambda: all(r.status not in ACTIVE_STATUSES for r in runs_of("fast")),
        3,
        "the runs claimed before the pause to end",
    )


def test_manual_trigger_is_sent_within_a_second(ticking: Ticking) -> None:
    server = ticking.server
    ensure_open(server.db_url)
    cli(server, "jobs", "pause", "fast")  # only the manual runs go (a paused job may be run)
    wait_until(
        lambda: all(r.status not in ACTIVE_STATUSES for r in runs_of("fast")),
        3,
        "no run of fast in flight",
    )
    timings = []
    for i in range(3):
        started = time.monotonic()
        out = cli(server, "jobs", "trigger", "fast", "--payload", json.dumps({"n": i}), "--json")
        execution_id = json.loads(out.stdout)["execution_id"]

        def ended(execution_id: str = execution_id) -> Run | None:
            # Ended by the endpoint, then the gateway adds what it saw over HTTP.
            run: Run | None = Run.get_or_none(Run.execution_id == execution_id)
            if run is None or run.status in ACTIVE_STATUSES or run.http_status is None:
                return None
            return run

        run = wait_until(ended, 5, f"manual run {execution_id} to end", interval=0.01)
        observed = time.monotonic() - started  # includes the CLI's own start (about 0.3 s)
        assert run.finished_at is not None
        queued_to_end = (run.finished_at - run.queued_at).total_seconds()
        timings.append((round(queued_to_end, 3), round(observed, 3)))
        assert (run.status, run.trigger, run.http_status) == ("success", "manual", 200), table(
            [run]
        )
        assert run.scheduled_for is None and run.gateway == ticking.gateway.instance
        assert run.summary == {"ok": True, "payload": {"n": i}, "trigger": "manual"}
        assert queued_to_end < 1.5, f"manual run took {queued_to_end:.3f} s from queued to end"
    print(f"manual triggers (queued->ended s, CLI start->seen ended s): {timings}")
