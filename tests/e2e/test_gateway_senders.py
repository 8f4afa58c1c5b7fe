"""The gateway with sender processes (`gateway_senders = 2`), end to end: gunicorn, the gateway
process and its two senders, a SQLite file. A sender killed with -9 is replaced and loses no
run; SIGTERM stops them all; so does killing the gateway itself with -9.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store.db import close_database
from gateway.store.db import ensure_open
from gateway.store.models import Run
from gateway.store.runs import enqueue
from tests.e2e.gateway_procs import GatewayProc
from tests.e2e.gateway_procs import GatewaySet
from tests.e2e.gateway_procs import gateway_set
from tests.e2e.gateway_procs import now
from tests.e2e.gateway_procs import put_job
from tests.e2e.gateway_procs import table
from tests.e2e.procs import Server
from tests.e2e.procs import wait_until
from tests.pids import ended as pid_ended

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def backend() -> str:
    return "sqlite"


@pytest.fixture
def gateways(start_server: Callable[..., Server]) -> Iterator[GatewaySet]:
    server = start_server()
    ensure_open(server.db_url)
    try:
        with gateway_set(server, gateway_senders=2) as started:
            yield started
    finally:
        close_database()


def senders_of(gw: GatewayProc) -> list[int]:
    """Return the pids of the gateway's sender processes (not multiprocessing's tracker)."""
    found = []
    for pid in _children(gw.pid):
        command = _command(pid)
        if "multiprocessing.spawn" in command and "resource_tracker" not in command:
            found.append(pid)
    return sorted(found)


def _children(pid: int) -> list[int]:
    """Return the children of every thread of `pid` (a sender is started by a thread)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def ended(run_id: int) -> Run | None:
    run: Run = Run.get_by_id(run_id)
    return run if run.status not in ("queued", "dispatched", "running") else None


def recorded(run_id: int) -> Run | None:
    """Return the run once it ended and the gateway stored the HTTP answer it got."""
    run = ended(run_id)
    return run if run is not None and run.http_status is not None else None


def test_a_killed_sender_is_replaced_and_its_run_is_ended_by_its_endpoint(
    gateways: GatewaySet,
) -> None:
    gw = gateways.start()
    gw.wait_role("active", 10)
    wait_until(lambda: len(senders_of(gw)) == 2, 20, "two sender processes")
    first = senders_of(gw)
    fast = put_job("fast")
    done = enqueue(fast, "manual", now())
    run = wait_until(lambda: recorded(done.id), 10, "a manual run of fast to be recorded")
    assert (run.status, run.http_status, run.gateway) == ("success", 200, gw.instance)

    slow = put_job("forever")
    held = enqueue(slow, "manual", now(), payload={"seconds": 2})
    wait_until(
        lambda: Run.get_by_id(held.id).status == "running", 10, "the call to be at its endpoint"
    )
    for pid in first:  # the one making the call among them
        os.kill(pid, signal.SIGKILL)
    run = wait_until(lambda: ended(held.id), 15, "the held run to end")
    # The endpoint had it: it ran to its end and recorded it; nobody sent it twice.
    assert run.status == "success" and run.summary == {"slept": 2.0}, table([run])
    assert Run.select().where(Run.job == slow.id).count() == 1

    wait_until(
        lambda: len(senders_of(gw)) == 2 and not set(senders_of(gw)) & set(first),
        20,
        "two new sender processes",
    )
    again = enqueue(fast, "manual", now())
    run = wait_until(lambda: recorded(again.id), 10, "a run after the restart to be recorded")
    assert (run.status, run.http_status) == ("success", 200), table([run])
    assert "sender process 0" in gw.proc.report() or "sender process 1" in gw.proc.report()

    replaced = senders_of(gw)
    gw.proc.popen.send_signal(signal.SIGTERM)
    assert gw.proc.popen.wait(timeout=15) == 0, gw.proc.report()
    wait_until(lambda: all(pid_ended(p) for p in replaced), 10, "the senders to exit with it")


def test_senders_exit_when_their_gateway_is_killed(gateways: GatewaySet) -> None:
    gw = gateways.start()
    gw.wait_role("active", 10)
    wait_until(lambda: len(senders_of(gw)) == 2, 20, "two sender processes")
    pids = senders_of(gw)
    gw.proc.popen.send_signal(signal.SIGKILL)
    gw.proc.popen.wait(timeout=10)
    # Orphans read the end of their pipe and exit: no sender calls on for a dead gateway.
    wait_until(lambda: all(pid_ended(p) for p in pids), 10, "the orphaned senders to exit")
