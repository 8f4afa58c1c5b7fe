"""GroupCommit: threads hand in items to store, and one of them stores all that wait, together.

SQLite has one write lock. When every call thread records its own outcome in its own
transaction, they queue on that lock through SQLite's busy handler, which sleeps (up to 100 ms
a try) instead of waking the next writer, and the loop's claims wait behind them. Here the
first thread to arrive becomes the writer and stores everything pending in one transaction;
the others wait for it, so outcomes of a burst cost one transaction per batch, not per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Generic
from typing import TypeVar

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    item: T
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Store items through `write(batch)`, at most `max_batch` at a time, one writer at once."""

    def __init__(self, write: Callable[[list[T]], None], max_batch: int = 500) -> None:
        self._write = write
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[_Entry[T]] = []
        self._writing = False

    def submit(self, item: T) -> None:
        """Return once `item` was written (by this thread or the one writing); re-raise the
        writer's exception if its batch failed."""
        entry = _Entry(item)
        with self._lock:
            self._pending.append(entry)
            lead = not self._writing
            self._writing = True
        if lead:
            self._write_until_empty()
        entry.done.wait()
        if entry.error is not None:
            raise entry.error

    def _write_until_empty(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = (
                    self._pending[: self._max_batch],
                    self._pending[self._max_batch :],
                )
                if not batch:
                    self._writing = False  # under the lock: a newcomer leads from here on
                    return
            error: BaseException | None = None
            try:
                self._write([e.item for e in batch])
            except BaseException as e:  # each waiter gets the error; the next batch still goes
                error = e
            for entry in batch:
                entry.error = error
                entry.done.set()
