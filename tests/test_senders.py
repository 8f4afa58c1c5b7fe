"""SenderPool: real sender processes calling a real HTTP server on 127.0.0.1.

No database: the pool hands outcomes to a callback, and the runs to hand back or abandon to
whoever asks (the loop). A sender process is killed with SIGKILL to see what a crash leaves.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask import request

from gateway.config import Settings
from gateway.scheduler import senders
from gateway.scheduler.senders import SenderPool
from gateway.scheduler.senders import share
from gateway.scheduler.sending import Sent
from gateway.store.claims import Dispatch
from tests.pids import ended as pid_ended
from tests.servers import serving

TOKEN = "sender-test-token-0123456789abcdef"


class Target:
    """What the endpoint saw; `/slow` holds its answer until released (or 10 s)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.seen: list[dict[str, Any]] = []

    def app(self) -> Flask:
        app = Flask(__name__)

        @app.post("/<name>")
        def call(name: str) -> Any:
            with self.lock:
                self.seen.append({"name": name, **request.headers})
            if name.startswith("slow"):
                self.release.wait(10)
            return {"execution_id": request.headers["X-Cron-Execution-Id"], "status": "success"}

        return app


@pytest.fixture
def target() -> Iterator[tuple[Target, str]]:
    seen = Target()
    with serving(seen.app()) as url:
        yield seen, url
    seen.release.set()


class Outcomes:
    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.sent: list[Sent] = []

    def __call__(self, sent: Sent) -> None:
        with self.changed:
            self.sent.append(sent)
            self.changed.notify_all()

    def wait(self, count: int, seconds: float = 20) -> list[Sent]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.sent) >= count, seconds), self.sent
            return list(self.sent)


def pool_of(processes: int, outcomes: Outcomes, per_host: int = 16, **timing: float) -> SenderPool:
    settings = Settings(allowed_targets=("127.0.0.1",), signing_secret="s" * 32)
    return SenderPool(
        settings, TOKEN, outcomes, processes=processes, workers=8, per_host=per_host, **timing
    )


Start = Callable[..., tuple[SenderPool, Outcomes]]


@pytest.fixture
def start(target: tuple[Target, str]) -> Iterator[Start]:
    """Start pools (`start(processes, per_host=16)`); after the test, release the endpoint
    and close them all."""
    started: list[SenderPool] = []

    def make(processes: int, per_host: int = 16, **timing: float) -> tuple[SenderPool, Outcomes]:
        outcomes = Outcomes()
        started.append(pool_of(processes, outcomes, per_host, **timing))
        # A process is given runs once it has written (its imports done).
        _wait(lambda: all(p is not None and p.heard for p in started[-1]._processes), "hellos")
        return started[-1], outcomes

    yield make
    target[0].release.set()
    for pool in started:
        pool.close()


def dispatch(run_id: int, url: str, name: str = "job") -> Dispatch:
    slot = datetime.now(UTC)
    return Dispatch(
        run_id, f"exec-{run_id}", 1, "schedule", slot, name, f"{url}/{name}", "POST", {}, None, 10.0
    )


def test_each_process_gets_its_share_of_the_workers_and_the_cap_per_host() -> None:
    assert [share(16, k, 2) for k in range(2)] == [8, 8]
    assert [share(5, k, 2) for k in range(2)] == [3, 2]
    assert [share(1, k, 3) for k in range(3)] == [1, 1, 1]  # never 0: each process can call


def test_runs_are_called_by_both_processes_and_each_outcome_comes_back_once(
    target: tuple[Target, str],
    start: Start,
) -> None:
    seen, url = target
    pool, outcomes = start(2)
    pool.submit_all([dispatch(n, url, f"job{n}") for n in range(1, 201)])
    sent = outcomes.wait(200)
    assert pool.drain(5) and pool.in_flight == 0
    assert sorted(s.dispatch.run_id for s in sent) == list(range(1, 201))
    assert {s.outcome.status for s in sent} == {"success"}
    assert {s.outcome.http_status for s in sent} == {200}
    assert all(0 <= s.lateness_ms < 20_000 for s in sent)
    assert [p.handed for p in pool._processes if p is not None] == [100, 100]
    assert not pool.starting
    assert pool.take_unsettled() == ([], [])
    headers = seen.seen[0]
    assert headers["X-Cron-Token"] == TOKEN and headers["X-Cron-Attempt"] == "1"
    assert headers["X-Cron-Trigger"] == "schedule" and "X-Cron-Signature" in headers
    assert len({h["X-Cron-Execution-Id"] for h in seen.seen}) == 200


def test_a_killed_process_leaves_its_runs_to_abandon_and_another_takes_its_place(
    target: tuple[Target, str],
    start: Start,
) -> None:
    seen, url = target
    pool, outcomes = start(1)
    first = pool.pids
    pool.submit(dispatch(1, url, "slow"))
    _wait(lambda: len(seen.seen) == 1, "the slow call to reach the endpoint")
    os.kill(first[0], signal.SIGKILL)
    _wait(lambda: pool.in_flight == 0, "the dead process's run to be given up")
    assert pool.take_unsettled() == ([], [1])  # called, perhaps: abandoned, not resent
    assert pool.in_flight == 0 and outcomes.sent == []
    _wait(lambda: pool.ready and pool.pids != first, "another sender process, started")
    pool.submit(dispatch(2, url, "fast"))
    assert [s.dispatch.run_id for s in outcomes.wait(1)] == [2]


def test_runs_a_dead_process_never_read_go_back_to_the_queue(
    target: tuple[Target, str],
    start: Start,
) -> None:
    seen, url = target
    pool, outcomes = start(1, per_host=1)
    [pid] = pool.pids
    pool.submit_all([dispatch(n, url, f"slow{n}") for n in (1, 2)])  # 2 waits behind 1
    _wait(lambda: len(seen.seen) == 1, "the first call to reach the endpoint")
    os.kill(pid, signal.SIGSTOP)  # alive, reading nothing more
    pool.submit_all([dispatch(n, url, f"slow{n}") for n in (3, 4)])  # stays in the pipe
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: pool.in_flight == 0, "the dead process's runs to be settled")
    hand_back, abandon = pool.take_unsettled()
    assert sorted(hand_back) == [3, 4]  # never read: sent again by a later round
    assert sorted(abandon) == [1, 2]  # read (2 was not begun, but nobody can tell)
    assert len(seen.seen) == 1 and outcomes.sent == []


def test_a_frozen_process_is_killed_its_runs_settled_and_another_started(
    target: tuple[Target, str], start: Start
) -> None:
    seen, url = target
    # It reports every 0.25 s and may be silent 1.5 s (1 s and 10 s in the gateway).
    pool, outcomes = start(1, per_host=1, beat_seconds=0.25, silent_seconds=1.5)
    [pid] = pool.pids
    pool.submit_all([dispatch(n, url, f"slow{n}") for n in (1, 2)])  # 2 waits behind 1
    _wait(lambda: len(seen.seen) == 1, "the first call to reach the endpoint")
    time.sleep(2.0)  # a call longer than the silence allowed: still alive, it says so
    assert pool.pids == [pid] and pool.in_flight == 2
    os.kill(pid, signal.SIGSTOP)  # frozen: alive, but reading and writing nothing
    pool.submit_all([dispatch(n, url, f"slow{n}") for n in (3, 4)])  # stays in the pipe
    _wait(lambda: pool.in_flight == 0, "the frozen process to be found out", seconds=20)
    hand_back, abandon = pool.take_unsettled()
    assert sorted(hand_back) == [3, 4] and sorted(abandon) == [1, 2]
    assert pid_ended(pid)
    _wait(lambda: pool.pids and pool.pids != [pid], "another sender process")
    assert len(seen.seen) == 1 and outcomes.sent == []


def test_runs_a_dead_process_held_for_their_time_go_back_to_the_queue(
    target: tuple[Target, str],
    start: Start,
) -> None:
    seen, url = target
    pool, outcomes = start(1)
    [pid] = pool.pids
    later = dataclasses.replace(dispatch(7, url), due_at=datetime.now(UTC) + timedelta(seconds=30))
    pool.submit(later)  # taken ahead: the process holds it until its time
    _wait(lambda: pool._processes[0] is not None and pool._processes[0].received == 1, "got")
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: pool.in_flight == 0, "the dead process's run to be settled")
    assert pool.take_unsettled() == ([7], [])  # not due when it died: never called
    assert seen.seen == [] and outcomes.sent == []


def test_while_no_process_is_alive_the_pool_takes_nothing(
    target: tuple[Target, str], monkeypatch: pytest.MonkeyPatch, start: Start
) -> None:
    _, url = target
    monkeypatch.setattr(senders, "RESTART_BACKOFF_SECONDS", (5.0, 30.0))  # a 5 s gap
    pool, outcomes = start(1)
    assert pool.ready
    [pid] = pool.pids
    os.kill(pid, signal.SIGKILL)  # it dies right after its start: the next one waits 5 s
    _wait(lambda: not pool.ready, "the pool to see its process gone")
    assert pool.submit_all([dispatch(5, url)]) == 0  # the loop does not take runs now
    assert pool.take_unsettled() == ([5], [])
    _wait(lambda: pool.ready, "another process", seconds=30)
    assert pool.submit_all([dispatch(6, url)]) == 1
    assert [s.dispatch.run_id for s in outcomes.wait(1)] == [6]


def test_a_run_that_cannot_be_written_goes_back_and_the_process_stays(
    target: tuple[Target, str],
    start: Start,
) -> None:
    _, url = target
    pool, outcomes = start(1)
    pids = pool.pids
    bad = dataclasses.replace(dispatch(8, url), payload=lambda: None)  # cannot be pickled
    assert pool.submit_all([bad]) == 0
    assert pool.take_unsettled() == ([8], []) and pool.in_flight == 0
    assert pool.submit_all([dispatch(9, url)]) == 1  # its place was given back: the
    assert [s.dispatch.run_id for s in outcomes.wait(1)] == [9]  # count still matches
    assert pool.drain(5) and pool.pids == pids and not pool.starting


def test_close_while_a_process_restarts_leaves_no_process_behind() -> None:
    pool = pool_of(2, Outcomes())
    first = pool.pids
    os.kill(first[0], signal.SIGKILL)
    _wait(lambda: len(pool.pids) == 1, "the pool to see one process gone")
    pool.close()  # before the restart (1 s later) would start one
    time.sleep(1.5)
    assert pool.pids == [] and all(pid_ended(pid) for pid in first)
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("sender-")]


def test_runs_not_started_are_handed_back_at_shutdown(
    target: tuple[Target, str], start: Start
) -> None:
    seen, url = target
    pool, outcomes = start(1, per_host=1)
    pool.submit_all([dispatch(n, url, f"slow{n}") for n in (1, 2, 3)])
    _wait(lambda: len(seen.seen) == 1, "the first call to reach the endpoint")
    taken = pool.take_waiting()  # 2 and 3 wait behind the cap of one call per host
    assert sorted(d.run_id for d in taken) == [2, 3]
    assert pool.in_flight == 1 and not pool.drain(0.05)
    seen.release.set()
    assert pool.drain(10)
    assert [s.dispatch.run_id for s in outcomes.wait(1)] == [1]


def test_after_close_the_processes_are_gone_and_new_runs_go_back_to_the_queue(
    target: tuple[Target, str],
) -> None:
    _, url = target
    pool = pool_of(2, Outcomes())
    pids = pool.pids
    pool.close()
    for pid in pids:
        _wait(lambda pid=pid: pid_ended(pid), f"sender process {pid} to exit")
    pool.submit(dispatch(7, url))
    assert pool.take_unsettled() == ([7], [])  # never sent: another round sends it
    assert pool.in_flight == 0


def _wait(check: Any, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
