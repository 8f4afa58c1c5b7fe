"""GroupCommit: call threads hand in outcomes; one writer thread stores those waiting, together.

SQLite has one write lock. When every call thread records its own outcome in its own
transaction, they queue on that lock through SQLite's busy handler, which sleeps (up to 100 ms
a try) instead of waking the next writer, and the loop's claims wait behind them. Here one
writer stores everything pending in one transaction, so outcomes of a burst cost one
transaction per batch, not per call.

A call thread never waits for the database: it hands its outcome in and is free for the next
call. While `hold()` says calls of a burst are still waiting to start, the writer waits too (at
most `linger` seconds after the oldest outcome came in): the burst's calls leave first, and the
writing does not take the interpreter from the sending (measured: a burst of 100 calls).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic
from typing import TypeVar

T = TypeVar("T")

logger = logging.getLogger("gateway.scheduler")

_HOLD_POLL_SECONDS = 0.001


class GroupCommit(Generic[T]):
    """Store items through `write(batch)` in a writer thread, at most `max_batch` at a time."""

    def __init__(
        self,
        write: Callable[[list[T]], None],
        *,
        hold: Callable[[], bool] = lambda: False,
        linger: float = 0.1,
        max_batch: int = 500,
    ) -> None:
        self._write = write
        self._hold = hold
        self._linger = linger
        self._max_batch = max_batch
        self._changed = threading.Condition()
        self._pending: list[T] = []
        self._oldest = 0.0  # time.monotonic() when the oldest pending item came in
        self._writing = 0  # items taken by the writer and not stored yet
        self._batch: list[T] = []  # those items
        self._closed = False
        self._writer: threading.Thread | None = None

    def put(self, item: T) -> None:
        """Hand `item` in to be stored; never waits for the database (once closed, a late
        item is stored at once, in this thread)."""
        with self._changed:
            if not self._closed:  # checked and appended under one lock: the writer sees it
                if not self._pending:
                    self._oldest = time.monotonic()
                self._pending.append(item)
                if self._writer is None:
                    self._writer = threading.Thread(target=self._run, name="record", daemon=True)
                    self._writer.start()
                self._changed.notify_all()
                return
        self._store([item])

    def pending(self) -> list[T]:
        """Return the items handed in and not stored yet (being written included)."""
        with self._changed:
            return [*self._batch, *self._pending]

    @property
    def waiting(self) -> int:
        """Return how many items are handed in and not stored yet."""
        with self._changed:
            return len(self._pending) + self._writing

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds until every item handed in is stored (or failed)."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending and not self._writing, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Store what is pending (within `timeout`), then stop the writer."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join(timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return  # closed, and nothing left
                oldest = self._oldest
            while not self._closed and time.monotonic() - oldest < self._linger and self._hold():
                time.sleep(_HOLD_POLL_SECONDS)
            with self._changed:
                batch = self._pending[: self._max_batch]
                self._pending = self._pending[self._max_batch :]
                self._writing = len(batch)  # what is left is as old as it was: no linger
                self._batch = batch
            try:
                self._store(batch)
            finally:
                with self._changed:
                    self._writing, self._batch = 0, []
                    self._changed.notify_all()

    def _store(self, batch: list[T]) -> None:
        try:
            self._write(batch)
        except Exception:  # the write handles outages itself; this is a bug: say it, go on
            logger.exception("storing %d outcome(s) failed", len(batch))
