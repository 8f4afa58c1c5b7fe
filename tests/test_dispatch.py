"""Dispatcher: a bounded pool with a cap per host; runs over the cap wait without a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from gateway.scheduler.dispatch import MAX_HOLD_SECONDS
from gateway.scheduler.dispatch import Dispatcher
from gateway.store.claims import Dispatch


def dispatch(n: int, host: str) -> Dispatch:
    return Dispatch(
        n,
        f"exec-{n}",
        1,
        "schedule",
        None,
        "job",
        f"http://{host}/crons/job",
        "POST",
        {},
        None,
        5.0,
    )


class Gate:
    """A call that blocks until released, counting how many run at once per host."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.done: list[int] = []

    def __call__(self, d: Dispatch) -> None:
        host = d.url.split("/")[2]
        with self.lock:
            self.running[host] = self.running.get(host, 0) + 1
            self.peak[host] = max(self.peak.get(host, 0), self.running[host])
        self.release.wait(5)
        with self.lock:
            self.running[host] -= 1
            self.done.append(d.run_id)


def test_calls_to_one_host_are_capped_and_other_hosts_are_not_starved() -> None:
    gate = Gate()
    dispatcher = Dispatcher(gate, workers=8, per_host=2)
    for n in range(10):
        dispatcher.submit(dispatch(n, "busy.example"))
    dispatcher.submit(dispatch(99, "quiet.example"))
    deadline = time.monotonic() + 5
    while gate.running.get("quiet.example", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gate.running == {"busy.example": 2, "quiet.example": 1}
    assert dispatcher.in_flight == 11
    gate.release.set()
    assert dispatcher.drain(5)
    assert sorted(gate.done) == [*range(10), 99]
    assert gate.peak == {"busy.example": 2, "quiet.example": 1}
    dispatcher.close()


def test_runs_still_waiting_can_be_taken_back_at_shutdown() -> None:
    gate = Gate()
    dispatcher = Dispatcher(gate, workers=4, per_host=1)
    for n in range(3):
        dispatcher.submit(dispatch(n, "app.example"))
    taken = dispatcher.take_waiting()
    assert [d.run_id for d in taken] == [1, 2]
    assert not dispatcher.drain(0.05)  # run 0 is still being sent
    gate.release.set()
    assert dispatcher.drain(5) and gate.done == [0]
    dispatcher.close()


def test_a_call_that_raises_does_not_stop_the_others() -> None:
    done: list[int] = []

    def call(d: Dispatch) -> None:
        if d.run_id == 0:
            raise RuntimeError("boom")
        done.append(d.run_id)

    dispatcher = Dispatcher(call, workers=2, per_host=1)
    for n in range(3):
        dispatcher.submit(dispatch(n, "app.example"))
    assert dispatcher.drain(5) and sorted(done) == [1, 2]
    dispatcher.close()


def until(check: Callable[[], object], what: str, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_run_handed_over_before_its_time_is_called_at_its_time_not_before() -> None:
    called: dict[int, datetime] = {}

    def call(d: Dispatch) -> None:
        called[d.run_id] = datetime.now(UTC)

    dispatcher = Dispatcher(call, workers=4, per_host=4)
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    try:
        dispatcher.submit_all([replace(dispatch(1, "a"), due_at=due), dispatch(2, "a")])
        deadline = time.monotonic() + 5
        while 2 not in called and time.monotonic() < deadline:
            time.sleep(0.01)
        assert 1 not in called and dispatcher.starting  # 1 waits, counted as not begun
        assert dispatcher.drain(5)
        assert due <= called[1]  # never early
        assert not dispatcher.starting and dispatcher.in_flight == 0
    finally:
        dispatcher.close()


def test_a_run_waiting_for_its_time_is_handed_back_at_shutdown_and_never_called() -> None:
    called: list[int] = []
    dispatcher = Dispatcher(lambda d: called.append(d.run_id), workers=2, per_host=2)
    held = replace(dispatch(1, "a"), due_at=datetime.now(UTC) + timedelta(seconds=0.6))
    try:
        dispatcher.submit(held)
        until(lambda: dispatcher._held, "the run to wait for its time")
        assert dispatcher.take_waiting() == [held]  # given back: the next gateway sends it
        assert dispatcher.drain(5) and dispatcher.in_flight == 0
        time.sleep(0.8)  # past its time
        assert called == []
    finally:
        dispatcher.close()


def test_a_run_still_waiting_for_its_time_is_not_called_once_closed() -> None:
    called: list[int] = []
    dispatcher = Dispatcher(lambda d: called.append(d.run_id), workers=2, per_host=2)
    dispatcher.submit(replace(dispatch(1, "a"), due_at=datetime.now(UTC) + timedelta(seconds=30)))
    until(lambda: dispatcher._held, "the run to wait for its time")
    dispatcher.close()  # wakes it: it ends at once, without its call
    until(lambda: dispatcher.in_flight == 0, "the waiting thread to end", seconds=2)
    assert called == []


class SteppedBack:
    """A clock whose wall time stays an hour before the run's time (stepped back)."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC)

    def now(self) -> datetime:
        return self.start

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, wake: threading.Event) -> None:
        wake.wait(seconds)


def test_a_run_waits_at_most_max_hold_seconds_if_the_clock_is_stepped_back() -> None:
    called = threading.Event()
    clock = SteppedBack()
    dispatcher = Dispatcher(lambda d: called.set(), workers=1, per_host=1, clock=clock)
    try:
        dispatcher.submit(replace(dispatch(1, "a"), due_at=clock.start + timedelta(hours=1)))
        assert not called.wait(0.5)
        assert called.wait(MAX_HOLD_SECONDS + 2)  # called, not an hour later
    finally:
        dispatcher.close()


def test_on_started_is_told_of_every_run_that_leaves_the_unstarted_count() -> None:
    # A sender's reporter sleeps until told: each call begun, and each held run taken back.
    told: list[int] = []
    dispatcher = Dispatcher(
        lambda d: None, workers=2, per_host=2, on_started=lambda: told.append(1)
    )
    try:
        dispatcher.submit(dispatch(1, "a"))
        until(lambda: dispatcher.in_flight == 0, "the call to end")
        assert len(told) == 1 and dispatcher.unstarted == 0
        dispatcher.submit(replace(dispatch(2, "a"), due_at=datetime.now(UTC) + timedelta(30)))
        until(lambda: dispatcher._held, "the run to wait for its time")
        assert dispatcher.unstarted == 1 and len(told) == 1
        assert [d.run_id for d in dispatcher.take_waiting()] == [2]
        until(lambda: len(told) == 2, "the taken-back run to be told")
        assert dispatcher.unstarted == 0
    finally:
        dispatcher.close()
