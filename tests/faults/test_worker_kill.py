"""kill -9 of a gunicorn worker in the middle of a run, blocking and async, with a gateway.

The job writes its worker's pid to a file and blocks; the test kills that pid. Nobody calls the
job again meanwhile (overlap `forbid` skips its slots at the gateway while it runs), so it is
the gateway's reaper that marks the run *abandoned*, once its heartbeat is older than
lease_seconds; the next slot then runs normally.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import ABANDONED_BY_WORKER
from tests.e2e.gateway_procs import HOUSEKEEPING
from tests.e2e.gateway_procs import now
from tests.e2e.gateway_procs import put_job
from tests.e2e.gateway_procs import runs_of
from tests.e2e.gateway_procs import table
from tests.e2e.procs import gunicorn_workers
from tests.e2e.procs import wait_until
from tests.faults.conftest import EVERY_SECOND
from tests.faults.conftest import HEARTBEAT_SECONDS
from tests.faults.conftest import LEASE_SECONDS
from tests.faults.conftest import Stack
from tests.faults.conftest import needs_postgres
from tests.faults.conftest import not_terminal
from tests.faults.conftest import pause_all
from tests.faults.conftest import running_stack
from tests.faults.conftest import wait_idle
from tests.faults.report import record

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

# The reaper runs every HOUSEKEEPING s and the last heartbeat came up to HEARTBEAT_SECONDS
# before the kill: the run is abandoned at most this long after it.
ABANDON_WITHIN = LEASE_SECONDS + HOUSEKEEPING + HEARTBEAT_SECONDS + 1.0


def kill_during_run(stack: Stack, job: str) -> dict[str, object]:
    """Arm `job`, let it hang in a worker, kill -9 that worker; return the figures."""
    (stack.workdir / f"arm-{job}").write_text("")
    put_job(job, EVERY_SECOND)
    pid_file = stack.workdir / f"pid-{job}"
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 10, f"{job}'s pid"))
    assert pid in gunicorn_workers(stack.server.proc.pid), f"{pid} is not a gunicorn worker"

    def running() -> Run | None:
        found = [r for r in runs_of(job) if r.status == "running"]
        return found[0] if found else None

    run = wait_until(running, 5, f"{job}'s run to be running")
    time.sleep(2 * HEARTBEAT_SECONDS)  # a few heartbeats: the run is alive and well
    os.kill(pid, signal.SIGKILL)
    killed_at, killed = now(), time.monotonic()

    def abandoned() -> Run | None:
        row: Run = Run.get_by_id(run.id)
        return row if row.status != "running" else None

    ended = wait_until(abandoned, ABANDON_WITHIN + 5, f"{job}'s run to leave running", 0.05)
    seen_after = time.monotonic() - killed
    marked_after = (ended.finished_at - killed_at).total_seconds()

    def next_success() -> Run | None:
        later = [
            r
            for r in runs_of(job)
            if r.status == "success" and r.scheduled_for and r.scheduled_for > ended.scheduled_for
        ]
        return later[0] if later else None

    ok = wait_until(next_success, 8, f"a slot of {job} after the abandoned one to succeed", 0.05)
    pause_all([job])
    wait_idle(LEASE_SECONDS + 5)
    rows = runs_of(job)
    between = [r for r in rows if ended.scheduled_for < r.scheduled_for < ok.scheduled_for]
    shown = table(rows)
    assert ended.status == "abandoned", f"{job}: the killed run ended {ended.status}\n{shown}"
    assert ended.error == ABANDONED_BY_WORKER, shown
    assert marked_after <= ABANDON_WITHIN, (
        f"{job}: abandoned {marked_after:.2f} s after kill -9 (lease {LEASE_SECONDS} s)\n{shown}"
    )
    assert not not_terminal(rows), shown
    assert [r for r in rows if r.status == "abandoned"] == [ended], shown
    assert not [r for r in rows if r.status == "error"], shown
    return {
        "abandoned_after_s": round(marked_after, 2),
        "seen_by_test_after_s": round(seen_after, 2),
        "next_success_after_abandon_s": round(
            (ok.finished_at - ended.finished_at).total_seconds(), 2
        ),
        "slots_between": "/".join(r.status for r in between) or "none",
    }


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=needs_postgres)])
def test_worker_killed_during_blocking_and_async_runs(backend: str, tmp_path: Path) -> None:
    with running_stack(backend, tmp_path) as stack:
        gw = stack.gateways.start()
        blocking = kill_during_run(stack, "victim")
        background = kill_during_run(stack, "victim-async")
        reaper_lines = gw.proc.output().count("run(s) abandoned: their gateway or worker died")
        slots = {j.name: j.run_count for j in Job.select().where(Job.name.startswith("victim"))}
    record(
        f"kill -9 of a gunicorn worker ({backend}, lease_seconds={LEASE_SECONDS:g}, "
        f"heartbeat {HEARTBEAT_SECONDS:g} s)",
        blocking=blocking,
        async_=background,
        reaper_log_lines=reaper_lines,
        slots_claimed=slots,
    )
    assert reaper_lines >= 2, "the gateway's reaper logged the abandoned runs"
