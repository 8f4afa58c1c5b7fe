"""Dispatcher: a bounded pool of callers with a cap on parallel calls per target host."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from gateway.clock import SYSTEM_CLOCK
from gateway.clock import Clock
from gateway.store.claims import Dispatch

logger = logging.getLogger("gateway.dispatch")

# A run is handed over at most the loop's take-ahead (0.25 s) early. One that still waits
# after this long had its time moved by the wall clock stepping back: it is called then.
MAX_HOLD_SECONDS = 1.0


class Dispatcher:
    """Send dispatched runs through `call`, at most `workers` at once and `per_host` per host.

    Runs over a host's cap wait in that host's queue instead of holding a pool thread, so a
    midnight burst at one app cannot starve calls to the others. A run handed over before its
    time (the loop takes due runs a little ahead, so a burst is ready to leave) is called at
    its time (`Dispatch.due_at`, by `clock`), never before: its thread waits for it.
    """

    def __init__(
        self,
        call: Callable[[Dispatch], None],
        workers: int,
        per_host: int,
        clock: Clock = SYSTEM_CLOCK,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        """`on_started` is called (in the call's thread) each time a run handed over leaves
        the unstarted count: its call begins, or it was taken back."""
        self._call = call
        self._clock = clock
        self._on_started = on_started
        self._closed = threading.Event()
        # Runs waiting for their time, by run id, each with the event that takes it back.
        self._held: dict[int, tuple[Dispatch, threading.Event]] = {}
        self._per_host = per_host
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="call")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy: dict[str, int] = {}
        self._waiting: dict[str, deque[Dispatch]] = {}
        self._in_flight = 0
        self._unstarted = 0  # handed to the pool, no thread has begun its call yet

    ready = True  # a pool of threads can always take calls (see SenderPool)
    # In-process a burst is taken whole before its calls begin, as before sender processes:
    # a first take of 20 made no measurable difference here (same-100 p99 over four 30 s
    # runs each: 47-66 ms with 20, 49-63 taken whole), only the first call leaves ~3 ms later.
    first_take = 200

    def submit_all(self, dispatches: list[Dispatch]) -> int:
        """Submit every run; return how many (all of them)."""
        for dispatch in dispatches:
            self.submit(dispatch)
        return len(dispatches)

    def take_unsettled(self) -> tuple[list[int], list[int]]:
        """Return the runs to hand back and those to abandon: none (a call thread always ends
        its call with an outcome); see SenderPool, whose processes can die."""
        return [], []

    def submit(self, dispatch: Dispatch) -> None:
        host = urlsplit(dispatch.url).netloc
        with self._lock:
            self._in_flight += 1
            if self._busy.get(host, 0) >= self._per_host:
                self._waiting.setdefault(host, deque()).append(dispatch)
                return
            self._busy[host] = self._busy.get(host, 0) + 1
            self._unstarted += 1
        self._pool.submit(self._run, host, dispatch)

    def _run(self, host: str, dispatch: Dispatch) -> None:
        due = self._wait_for(dispatch)
        with self._lock:
            self._unstarted -= 1
        if self._on_started is not None:
            try:
                self._on_started()
            except Exception:  # a hook that fails never keeps a run from its call
                logger.exception("on_started failed before run %s", dispatch.execution_id)
        try:
            if due:
                self._call(dispatch)
        except Exception:  # one bad call never stops the others
            logger.exception("call of run %s failed", dispatch.execution_id)
        with self._lock:
            self._in_flight -= 1
            queue = self._waiting.get(host)
            following = queue.popleft() if queue else None
            if following is None:
                self._busy[host] -= 1
            else:
                self._unstarted += 1
            self._idle.notify_all()
        if following is not None:
            self._pool.submit(self._run, host, following)

    @property
    def in_flight(self) -> int:
        """Return how many runs are being sent or wait for their host."""
        with self._lock:
            return self._in_flight

    @property
    def starting(self) -> bool:
        """Return True while calls handed to the pool wait for a thread (a burst going out)."""
        return self._unstarted > 0  # one int read: no lock needed for a hint

    @property
    def unstarted(self) -> int:
        """Return how many calls handed to the pool wait for a thread."""
        return self._unstarted

    def take_waiting(self) -> list[Dispatch]:
        """Remove and return the runs not sent yet (to hand them back at shutdown): those
        waiting for their host, and those waiting for their time (their threads then end)."""
        with self._lock:
            taken = [d for queue in self._waiting.values() for d in queue]
            self._waiting.clear()
            self._in_flight -= len(taken)  # the held ones' threads count theirs as they end
            for dispatch, taken_back in self._held.values():
                taken.append(dispatch)
                taken_back.set()
            self._held.clear()
            return taken

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for calls in flight; return True if none is left."""
        with self._lock:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout)
            return self._in_flight == 0

    def close(self) -> None:
        self._closed.set()
        with self._lock:  # a run still waiting for its time is not called
            for _, taken_back in self._held.values():
                taken_back.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _wait_for(self, dispatch: Dispatch) -> bool:
        """Wait until the run's time (at most MAX_HOLD_SECONDS); return False if it was taken
        back (take_waiting) or the dispatcher closed first. Whether it is called or handed
        back is decided once, under the lock: never both. Never raises: a clock that fails
        has the run called now rather than left without an end."""
        due = dispatch.due_at
        taken_back = threading.Event()
        reached, held = True, False
        try:
            if due is None or due <= self._clock.now():
                return True
            since = self._clock.monotonic()
            with self._lock:
                self._held[dispatch.run_id] = (dispatch, taken_back)
            reached, held = False, True
            while not (taken_back.is_set() or self._closed.is_set()):
                left = (due - self._clock.now()).total_seconds()
                if left <= 0 or self._clock.monotonic() - since > MAX_HOLD_SECONDS:
                    reached = True
                    break
                self._clock.wait(min(left, MAX_HOLD_SECONDS), taken_back)
        except Exception:
            logger.exception("waiting for the time of run %s failed", dispatch.execution_id)
            reached = not self._closed.is_set()
        if not held:
            return reached
        with self._lock:  # still held: this thread's to call; gone: handed back or closed
            mine = self._held.pop(dispatch.run_id, None) is not None
        return reached and mine
