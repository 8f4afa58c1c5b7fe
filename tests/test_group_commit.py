"""GroupCommit: items handed in by many threads are written together, each exactly once, by one
writer thread that waits while a burst is still starting."""

from __future__ import annotations

import threading
import time

import pytest

from gateway.scheduler.group_commit import GroupCommit


def test_items_from_many_threads_are_written_once_in_few_batches() -> None:
    batches: list[list[int]] = []
    writers: set[str] = set()
    gate = threading.Event()

    def write(batch: list[int]) -> None:
        gate.wait(1)  # the first batch is slow, so the others pile up behind it
        writers.add(threading.current_thread().name)
        batches.append(batch)

    commit: GroupCommit[int] = GroupCommit(write, max_batch=50)
    threads = [threading.Thread(target=commit.put, args=(i,)) for i in range(120)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    gate.set()
    assert commit.flush(5) and commit.waiting == 0
    assert sorted(i for b in batches for i in b) == list(range(120))
    assert all(len(b) <= 50 for b in batches)
    assert len(batches) < 120 / 2  # grouped, not one write per item
    assert writers == {"record"}  # the callers never wrote
    commit.close()


def test_put_never_waits_for_the_write() -> None:
    gate = threading.Event()
    commit: GroupCommit[int] = GroupCommit(lambda batch: gate.wait(5))
    started = time.monotonic()
    for i in range(10):
        commit.put(i)
    assert time.monotonic() - started < 0.5
    assert not commit.flush(0.05) and commit.waiting == 10
    assert sorted(commit.pending()) == list(range(10))  # being written, or waiting
    gate.set()
    assert commit.flush(5)
    commit.close()


def test_the_writer_waits_while_a_burst_starts_but_not_past_the_linger() -> None:
    written: list[float] = []
    holding = threading.Event()
    holding.set()
    commit: GroupCommit[int] = GroupCommit(
        lambda batch: written.append(time.monotonic()), hold=holding.is_set, linger=5.0
    )
    commit.put(1)
    time.sleep(0.1)
    assert written == []  # held: calls are still starting
    released = time.monotonic()
    holding.clear()
    assert commit.flush(2) and written[0] >= released
    commit.close()

    quick: GroupCommit[int] = GroupCommit(
        lambda b: written.append(0.0), hold=lambda: True, linger=0.05
    )
    started = time.monotonic()
    quick.put(1)
    assert quick.flush(2) and time.monotonic() - started < 1.0  # a hold never lasts past linger
    quick.close()


def test_a_failed_batch_is_logged_and_the_next_batch_still_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    written: list[str] = []

    def write(batch: list[str]) -> None:
        if "bad" in batch:
            raise RuntimeError("disk on fire")
        written.extend(batch)

    commit: GroupCommit[str] = GroupCommit(write)
    commit.put("bad")
    assert commit.flush(5)
    commit.put("good")
    assert commit.flush(5)
    assert written == ["good"]
    assert "storing 1 outcome(s) failed" in caplog.text
    commit.close()


def test_close_stores_what_is_pending_then_stops_the_writer() -> None:
    written: list[int] = []
    commit: GroupCommit[int] = GroupCommit(written.extend, hold=lambda: True, linger=10.0)
    commit.put(7)
    commit.close(5)
    assert written == [7]


def test_an_item_put_after_close_is_stored_at_once_in_the_caller() -> None:
    written: list[tuple[int, str]] = []
    commit: GroupCommit[int] = GroupCommit(
        lambda batch: written.extend((i, threading.current_thread().name) for i in batch)
    )
    commit.close()
    commit.put(3)  # a call that ended after the shutdown's drain gave up waiting
    assert written == [(3, threading.current_thread().name)]
