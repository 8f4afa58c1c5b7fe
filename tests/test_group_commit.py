"""GroupCommit: items handed in by many threads are written together, each exactly once."""

from __future__ import annotations

import threading

import pytest

from gateway.scheduler.group_commit import GroupCommit


def test_items_from_many_threads_are_written_once_in_few_batches() -> None:
    batches: list[list[int]] = []
    gate = threading.Event()

    def write(batch: list[int]) -> None:
        gate.wait(1)  # the first batch is slow, so the others pile up behind it
        batches.append(batch)

    commit: GroupCommit[int] = GroupCommit(write, max_batch=50)
    threads = [threading.Thread(target=commit.submit, args=(i,)) for i in range(120)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(5)
    assert sorted(i for b in batches for i in b) == list(range(120))
    assert all(len(b) <= 50 for b in batches)
    assert len(batches) < 120 / 2  # grouped, not one write per item


def test_a_failed_batch_raises_in_every_waiter_and_the_next_batch_still_goes() -> None:
    written: list[str] = []

    def write(batch: list[str]) -> None:
        if "bad" in batch:
            raise RuntimeError("disk on fire")
        written.extend(batch)

    commit: GroupCommit[str] = GroupCommit(write)
    with pytest.raises(RuntimeError, match="disk on fire"):
        commit.submit("bad")
    commit.submit("good")
    assert written == ["good"]
