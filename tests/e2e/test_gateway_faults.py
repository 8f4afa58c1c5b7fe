"""The gateway under faults, with real processes: kill -9, a standby taking over, SIGTERM.

gunicorn (2 workers) serves tests/e2e/app_under_test.py; `python -m gateway scheduler` runs in
its own process on the same SQLite file, with a 3 s gateway lease (tests/e2e/gateway_procs.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from datetime import datetime
from datetime import timedelta

import pytest

from gateway.scheduler.loop import ACTIVE_LEASE
from gateway.store import claims
from gateway.store import leases
from gateway.store.db import close_database
from gateway.store.db import ensure_open
from gateway.store.models import ACTIVE_STATUSES
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import TERMINAL_STATUSES
from gateway.store.runs import enqueue
from tests.e2e.gateway_procs import GATEWAY_LEASE
from tests.e2e.gateway_procs import HOUSEKEEPING
from tests.e2e.gateway_procs import GatewayProc
from tests.e2e.gateway_procs import GatewaySet
from tests.e2e.gateway_procs import gateway_set
from tests.e2e.gateway_procs import now
from tests.e2e.gateway_procs import put_job
from tests.e2e.gateway_procs import runs_of
from tests.e2e.gateway_procs import table
from tests.e2e.procs import Server
from tests.e2e.procs import wait_until

pytestmark = pytest.mark.e2e

SECOND = timedelta(seconds=1)
EVERY_SECOND = "* * * * * *"
# When each kill -9 comes, in seconds after a slot: the gateway wakes at the slot, claims and
# marks the run dispatched in a few ms, and the endpoint answers some ms later.
KILL_OFFSETS = (0.001, 0.004, 0.008, 0.015, 0.4)


@pytest.fixture(scope="module")
def backend() -> str:
    """SQLite only: the lease with a standby is the SQLite mode (conftest's start_server)."""
    return "sqlite"


@pytest.fixture
def gateways(start_server: Callable[..., Server]) -> Iterator[GatewaySet]:
    """A fresh gunicorn on a fresh SQLite file, this process's store on it, and its gateways."""
    server = start_server()
    ensure_open(server.db_url)
    try:
        with gateway_set(server) as started:
            yield started
    finally:
        close_database()


def successes_by(gw: GatewayProc, name: str = "fast") -> list[Run]:
    row = gw.row()
    if row is None:  # not registered yet
        return []
    instance = row.instance
    return [r for r in runs_of(name) if r.gateway == instance and r.status == "success"]


def wait_successes(gw: GatewayProc, count: int, seconds: float) -> None:
    def enough() -> bool:
        if not gw.proc.running():
            raise AssertionError(f"{gw.proc.name} exited\n{gw.proc.report()}")
        return len(successes_by(gw)) >= count

    wait_until(enough, seconds, f"{count} successful runs sent by {gw.proc.name}", 0.05)


def active_runs() -> list[Run]:
    return list(Run.select().where(Run.status.in_(ACTIVE_STATUSES)).order_by(Run.id))


# -- kill -9, five times ---------------------------------------------------------------------


def test_kill_9_five_times_loses_and_repeats_no_slot(gateways: GatewaySet) -> None:
    gw = gateways.start()
    gw.wait_role("active", 10)
    job = put_job("fast", EVERY_SECOND)
    first: datetime = job.next_run_at
    for offset in KILL_OFFSETS:
        # ~2 s of every-second firing by this gateway (after it waited out the dead one's lease)
        wait_successes(gw, 3, GATEWAY_LEASE + 6)
        # Kill at a chosen moment after a slot: while it is claimed, sent, or being recorded.
        at = now()
        slot = at.replace(microsecond=0) + SECOND
        time.sleep((slot - at).total_seconds() + offset)
        gw.proc.stop(signal.SIGKILL, 1)
        gw = gateways.start(wait_registered=False)
    wait_successes(gw, 3, GATEWAY_LEASE + 8)  # 3 s more with the last one
    gw.proc.popen.send_signal(signal.SIGTERM)
    try:
        code = gw.proc.popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"SIGTERM: still running after 10 s\n{gw.proc.report()}") from None
    assert code == 0, f"exit {code} after SIGTERM\n{gw.proc.report()}"
    assert gw.role() == "stopped"

    # The last gateway reaped what the killed ones left dispatched; the endpoint ends what it
    # ran. Nothing may stay queued, dispatched or running.
    wait_until(lambda: not active_runs(), GATEWAY_LEASE + 2, "no run left active", 0.1)
    rows = runs_of("fast")
    shown = table(rows)
    statuses = Counter(r.status for r in rows)
    print(f"kill -9 x5: {len(rows)} rows, {dict(statuses)}\n{shown}")
    assert set(statuses) <= set(TERMINAL_STATUSES), shown

    # One slot, one run: no (slot, attempt) twice, and a second attempt only as a retry.
    keys = Counter((r.scheduled_for, r.attempt) for r in rows)
    assert not [k for k, n in keys.items() if n > 1], f"a slot fired twice\n{shown}"
    for r in rows:
        assert r.trigger in ("schedule", "retry"), shown
        assert (r.attempt == 1) == (r.trigger == "schedule"), f"attempt {r.attempt}\n{shown}"
    assert not [r for r in rows if r.trigger == "retry"], "max_attempts is 1: no retries"

    # Every second from the first slot to the last claimed one is covered exactly once: by a
    # terminal row of its own, or by a missed row's count (a folded row covers `count` seconds).
    covered: Counter[datetime] = Counter()
    for r in rows:
        span = r.missed_count or 1 if r.status == "missed" else 1
        for i in range(span):
            covered[r.scheduled_for + i * SECOND] += 1
    last = max(covered)
    seconds = int((last - first) / SECOND) + 1
    expected = [first + i * SECOND for i in range(seconds)]
    holes = [s.isoformat() for s in expected if covered[s] == 0]
    twice = [s.isoformat() for s, n in covered.items() if n > 1]
    extra = [s.isoformat() for s in covered if s not in set(expected)]
    assert not holes, f"seconds with no row: {holes}\n{shown}"
    assert not twice, f"seconds with two rows: {twice}\n{shown}"
    assert not extra, f"rows off the every-second grid: {extra}\n{shown}"

    # Misfire `once` (the default): in each outage the missed slots are recorded *missed* and
    # only the newest due slot runs, so every run of missed seconds ends with a run that is not.
    state = ["missed" if covered_by_missed(rows, s) else "ran" for s in expected]
    outages = sum(1 for i, s in enumerate(state) if s == "missed" and (i == 0 or state[i - 1] != s))
    assert state[-1] == "ran", f"the window ends with a missed slot\n{shown}"
    assert outages >= 5, f"{outages} stretches of missed slots for 5 outages\n{shown}"
    print(f"kill -9 x5: {seconds} s window, {state.count('missed')} missed, {outages} outages")


def covered_by_missed(rows: list[Run], second: datetime) -> bool:
    for r in rows:
        if r.status == "missed" and r.scheduled_for is not None:
            if r.scheduled_for <= second < r.scheduled_for + (r.missed_count or 1) * SECOND:
                return True
    return False


def test_slot_claimed_by_a_dead_gateway_follows_the_misfire_policy(gateways: GatewaySet) -> None:
    """A gateway that claimed a slot (a *queued* row) and died before sending it.

    What the next gateway finds: that queued slot, then more due slots. Misfire `once` wants
    one run for the outage and the other slots *missed*; nothing was running, so no slot may
    end *skipped* for overlap.
    """
    first = gateways.start()
    first.wait_role("active", 10)
    put_job("fast", EVERY_SECOND)
    wait_successes(first, 1, 5)
    assert first.proc.stop(signal.SIGTERM, 10) == 0, first.proc.report()
    # The dead gateway's last act: claim the due slot (claims.claim_due_slots, as its loop does).
    wait_until(lambda: Job.get(Job.name == "fast").next_run_at <= now(), 2, "a due slot", 0.01)
    assert claims.claim_due_slots(now()) == 1
    left = [r for r in runs_of("fast") if r.status == "queued"]
    assert len(left) == 1, table(runs_of("fast"))
    stale = left[0].scheduled_for
    wait_until(lambda: now() > stale + 2.2 * SECOND, 4, "two more slots to fall due", 0.02)
    second = gateways.start()
    wait_successes(second, 2, 8)
    rows = runs_of("fast")
    resumed = min(r.dispatched_at for r in rows if r.gateway == second.instance)
    outage = [r for r in rows if r.scheduled_for and stale <= r.scheduled_for <= resumed]
    shown = table(outage)
    print(f"slots of the outage, queued one first:\n{shown}")
    skipped = [r for r in outage if r.status == "skipped"]
    assert not skipped, (
        "BUG: after an outage a slot ended *skipped* ('previous run still going') although "
        "nothing was running: the dead gateway's queued slot was dispatched in the same round "
        f"(claims.take_due_runs), and the newest slot was judged to overlap it\n{shown}"
    )
    ran = [r for r in outage if r.status != "missed"]
    assert len(ran) == 1, f"misfire once: one run for the outage, got {len(ran)}\n{shown}"


# -- a standby on the same SQLite file -------------------------------------------------------


def test_second_gateway_stays_standby_then_takes_over(gateways: GatewaySet) -> None:
    first = gateways.start()
    first.wait_role("active", 10)
    put_job("fast", EVERY_SECOND)
    second = gateways.start()
    second.wait_role("standby", 5)
    standby_since = time.monotonic()
    wait_successes(first, 3, 8)
    # While the first lives: the second stays standby and sends nothing.
    while time.monotonic() - standby_since < 2 * HOUSEKEEPING + 0.5:
        assert second.role() == "standby", second.proc.report()
        time.sleep(0.1)
    lease = leases.current(ACTIVE_LEASE)
    assert lease is not None and lease.holder == first.instance
    assert not [r for r in runs_of("fast") if r.gateway == second.instance], "standby sent"

    first.proc.stop(signal.SIGKILL, 1)
    killed_at = now()
    second.wait_role("active", GATEWAY_LEASE + HOUSEKEEPING + 2)
    lease = leases.current(ACTIVE_LEASE)
    assert lease is not None and lease.holder == second.instance
    takeover = (lease.acquired_at - killed_at).total_seconds()
    wait_successes(second, 2, 5)
    rows = runs_of("fast")
    last_first = max(r.dispatched_at for r in rows if r.gateway == first.instance)
    first_second = min(r.dispatched_at for r in rows if r.gateway == second.instance)
    gap = (first_second - last_first).total_seconds()
    print(
        f"standby takeover: lease taken {takeover:.3f} s after kill -9 "
        f"(lease {GATEWAY_LEASE} s, housekeeping every {HOUSEKEEPING} s); "
        f"last call by the first -> first call by the second: {gap:.3f} s"
    )
    # The lease expires at most GATEWAY_LEASE after the last renewal; the standby looks every
    # HOUSEKEEPING seconds, so it may notice up to one period later.
    assert takeover <= GATEWAY_LEASE + HOUSEKEEPING + 0.5, f"took over after {takeover:.3f} s"
    assert gap <= GATEWAY_LEASE + HOUSEKEEPING + 1.5, f"no call for {gap:.3f} s"

    # Slots are still each fired once, and nothing of the dead gateway stays in flight.
    wait_until(
        lambda: not [r for r in active_runs() if r.gateway == first.instance],
        GATEWAY_LEASE + 2,
        "the killed gateway's runs to be reaped",
    )
    keys = Counter((r.scheduled_for, r.attempt) for r in runs_of("fast"))
    assert not [k for k, n in keys.items() if n > 1], table(runs_of("fast"))

    # A standby stops at once on SIGTERM and leaves the active one's lease alone.
    third = gateways.start()
    third.wait_role("standby", 5)
    asked = time.monotonic()
    assert third.proc.stop(signal.SIGTERM, 10) == 0, third.proc.report()
    assert time.monotonic() - asked < 3, "a standby took long to stop"
    assert third.role() == "stopped"
    lease = leases.current(ACTIVE_LEASE)
    assert lease is not None and lease.holder == second.instance
    assert second.proc.stop(signal.SIGTERM, 10) == 0, second.proc.report()
    assert second.role() == "stopped"


# -- a frozen gateway (SIGSTOP) is not dead: it comes back as standby ---------------------------


def test_frozen_gateway_comes_back_as_standby(gateways: GatewaySet) -> None:
    first = gateways.start()
    first.wait_role("active", 10)
    put_job("fast", EVERY_SECOND)
    second = gateways.start()
    second.wait_role("standby", 5)
    wait_successes(first, 2, 6)
    os.kill(first.pid, signal.SIGSTOP)  # a long GC pause, a suspended VM, a stuck disk
    try:
        second.wait_role("active", GATEWAY_LEASE + HOUSEKEEPING + 2)
        wait_successes(second, 2, 5)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    thawed = now()
    first.wait_role("standby", 2 * HOUSEKEEPING + 1)
    wait_successes(second, 4, 5)
    rows = runs_of("fast")
    late_sends = [r for r in rows if r.gateway == first.instance and r.dispatched_at >= thawed]
    assert not late_sends, f"the thawed gateway sent runs:\n{table(late_sends)}"
    keys = Counter((r.scheduled_for, r.attempt) for r in rows)
    assert not [k for k, n in keys.items() if n > 1], f"a slot fired twice\n{table(rows)}"
    lease = leases.current(ACTIVE_LEASE)
    assert lease is not None and lease.holder == second.instance


# -- SIGTERM during a slow call --------------------------------------------------------------


def test_sigterm_finishes_the_call_in_flight(gateways: GatewaySet) -> None:
    gw = gateways.start()
    gw.wait_role("active", 10)
    job = put_job("slow")  # blocks about 1.5 s
    queued = enqueue(job, "manual", now())

    def running() -> Run | None:
        run: Run = Run.get_by_id(queued.id)
        return run if run.status == "running" else None

    wait_until(running, 5, "the slow run to be running at the endpoint", 0.02)
    gw.proc.popen.send_signal(signal.SIGTERM)
    signalled_at, signalled = now(), time.monotonic()
    try:
        code = gw.proc.popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"SIGTERM: still running after 10 s\n{gw.proc.report()}") from None
    took = time.monotonic() - signalled
    print(f"SIGTERM during a 1.5 s call: exited {code} after {took:.3f} s")
    assert code == 0, gw.proc.report()
    assert took < 5, f"took {took:.3f} s to stop"
    run = Run.get_by_id(queued.id)
    assert (run.status, run.http_status) == ("success", 200), table([run])
    assert run.finished_at is not None and run.finished_at > signalled_at
    assert run.summary == {"slept": 1.5}
    row = gw.row()
    assert row is not None and row.role == "stopped"
    assert leases.current(ACTIVE_LEASE) is None, "the lease is released at a clean stop"
