"""SenderPool: the gateway's calls made by sender processes, so that a burst uses every core.

One Python process makes one call at a time, whatever its threads: about 0.3 ms of CPU per
call through urllib3, so 1,000 calls due in the same second leave over about a third of a
second in one process, and the second core idles. With `gateway_senders = N`, N processes
(`sender_process.py`) make the calls; the gateway process keeps the database (claims, the
writer, retries, alerts) and hands each process its share of every host's runs, in batches.

It stands in for the Dispatcher (the same methods the loop calls). What it adds is that a
process can die: the runs it had are then *abandoned* (they may have been called; DESIGN
§5, fail closed, `retry_abandoned` opts in to another attempt), runs it never received go
back to the queue, and another process takes its place.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import urlsplit

from gateway.config import Settings
from gateway.scheduler import sender_process
from gateway.scheduler.sending import Sent
from gateway.store.claims import Dispatch

logger = logging.getLogger("gateway.scheduler")

BATCH = 64  # dispatches per message: a process starts on a burst's first calls at once
REPLY_SECONDS = 5.0  # at shutdown, for a process to say which calls it has not started
STOP_SECONDS = 5.0  # at shutdown, for a process to exit once asked
RESTART_BACKOFF_SECONDS = (1.0, 30.0)  # a process dying at start again and again waits
QUICK_DEATH_SECONDS = 10.0  # … when it lived less than this


@dataclass
class _Process:
    """One sender process and what the gateway knows of it."""

    index: int
    process: BaseProcess
    conn: Connection
    started: float
    replies: queue.Queue[list[int]] = field(default_factory=queue.Queue)
    handed: int = 0  # dispatches written to it
    received: int = 0  # … of which it said it read this many
    unstarted: int = 0  # … and had this many not begun


def share(total: int, index: int, processes: int) -> int:
    """Return process `index`'s part of `total` (workers, the cap per host), at least 1."""
    return max(1, total // processes + (1 if index < total % processes else 0))


class SenderPool:
    """Send dispatched runs through `processes` sender processes; hand each outcome to
    `on_sent` (in a receiving thread), as the Dispatcher's call threads do."""

    def __init__(
        self,
        settings: Settings,
        token: str,
        on_sent: Callable[[Sent], None],
        *,
        processes: int,
        workers: int,
        per_host: int,
    ) -> None:
        self._settings = settings
        self._token = token
        self._on_sent = on_sent
        self._workers = workers
        self._per_host = per_host
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._flight: dict[int, tuple[Dispatch, int]] = {}  # run id → (dispatch, process)
        self._hand_back: list[int] = []
        self._abandon: list[int] = []
        self._turn: dict[str, int] = {}  # host → where its next run goes
        self._closing = False
        self._restarts = [0] * processes
        self._processes: list[_Process | None] = [None] * processes
        for index in range(processes):
            self._start(index)

    # -- what the loop calls ----------------------------------------------------------------

    def submit(self, dispatch: Dispatch) -> None:
        self.submit_all([dispatch])

    def submit_all(self, dispatches: list[Dispatch]) -> None:
        """Hand the runs out, each host's in turn to every live process, in batches."""
        with self._lock:
            live = [p for p in self._processes if p is not None]
            if not live:
                self._hand_back += [d.run_id for d in dispatches]
                return
            shares: dict[int, list[Dispatch]] = {p.index: [] for p in live}
            for dispatch in dispatches:
                host = urlsplit(dispatch.url).netloc
                turn = self._turn.get(host, 0)
                self._turn[host] = turn + 1
                target = live[turn % len(live)]
                shares[target.index].append(dispatch)
                self._flight[dispatch.run_id] = (dispatch, target.index)
        rounds = max(len(s) for s in shares.values())
        for start in range(0, rounds, BATCH):  # first batches first: every process starts
            for one in live:
                batch = shares[one.index][start : start + BATCH]
                if batch:
                    self._write(one, batch)

    @property
    def in_flight(self) -> int:
        """Return how many runs the processes have and have not answered."""
        with self._lock:
            return len(self._flight)

    @property
    def starting(self) -> bool:
        """Return True while calls handed out have not begun (a burst going out)."""
        return any(
            p.handed - p.received + p.unstarted > 0 for p in self._processes if p is not None
        )  # ints read without the lock: a hint

    def take_waiting(self) -> list[Dispatch]:
        """Ask every process for the runs it has not started; remove and return those."""
        asked = [p for p in self._processes if p is not None and self._send(p, ("take_waiting",))]
        deadline = time.monotonic() + REPLY_SECONDS
        taken: list[Dispatch] = []
        for one in asked:
            try:
                run_ids = one.replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                continue
            with self._lock:
                for run_id in run_ids:
                    entry = self._flight.pop(run_id, None)
                    if entry is not None:
                        taken.append(entry[0])
                self._idle.notify_all()
        return taken

    def take_unsettled(self) -> tuple[list[int], list[int]]:
        """Return (and forget) the runs to hand back, never received by a process, and those
        to abandon, which a process had when it died."""
        with self._lock:
            settled = self._hand_back, self._abandon
            self._hand_back, self._abandon = [], []
            return settled

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every run handed out to be answered."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._flight, timeout)

    def close(self) -> None:
        """Ask the processes to exit (calls still going are cut short), then make sure."""
        with self._lock:
            self._closing = True
            running = [p for p in self._processes if p is not None]
        for one in running:
            self._send(one, ("close",))
        for one in running:
            one.process.join(STOP_SECONDS)
            if one.process.is_alive():
                one.process.kill()
                one.process.join(STOP_SECONDS)

    @property
    def pids(self) -> list[int]:
        """Return the live processes' ids (for tests and `doctor`-like checks)."""
        return [p.process.pid for p in self._processes if p is not None and p.process.pid]

    # -- the processes ------------------------------------------------------------------------

    def _start(self, index: int) -> None:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=sender_process.main,
            args=(
                theirs,
                self._settings,
                self._token,
                share(self._workers, index, len(self._processes)),
                share(self._per_host, index, len(self._processes)),
            ),
            name=f"sender-{index}",
            daemon=True,  # ended with the gateway
        )
        process.start()
        theirs.close()  # so that its death reads as the end of the pipe here
        one = _Process(index, process, ours, time.monotonic())
        with self._lock:
            self._processes[index] = one
        receiving = threading.Thread(
            target=self._receive, args=(one,), name=f"sender-{index}-receive", daemon=True
        )
        receiving.start()

    def _receive(self, one: _Process) -> None:
        """Read what process `one` writes until it ends; then settle its runs, start another."""
        while True:
            try:
                message = one.conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # a message that cannot be read: the process cannot be trusted
                logger.exception("sender process %d sent what cannot be read", one.index)
                one.process.kill()
                break
            if message[0] == "sent":
                self._answered(one, message[1], message[2], message[3])
            elif message[0] == "waiting":
                one.replies.put(message[1])
        self._ended(one)

    def _answered(self, one: _Process, results: list[Any], received: int, unstarted: int) -> None:
        with self._lock:
            entries = [(self._flight.get(rid), outcome, late) for rid, outcome, late in results]
        for entry, outcome, lateness_ms in entries:
            if entry is not None:
                self._on_sent(Sent(entry[0], outcome, lateness_ms))
        with self._lock:  # out of flight once the outcome is handed on: drain waits for both
            for entry, _, _ in entries:
                if entry is not None:
                    self._flight.pop(entry[0].run_id, None)
            one.received, one.unstarted = received, unstarted
            self._idle.notify_all()

    def _ended(self, one: _Process) -> None:
        one.process.join(STOP_SECONDS)
        one.conn.close()
        with self._lock:
            lost = [run_id for run_id, (_, at) in self._flight.items() if at == one.index]
            for run_id in lost:
                del self._flight[run_id]
            self._abandon += lost
            self._processes[one.index] = None
            self._idle.notify_all()
            if self._closing:
                return
        logger.error(
            "sender process %d (pid %s) exited with code %s; the %d call(s) it had are "
            "abandoned; starting another",
            one.index, one.process.pid, one.process.exitcode, len(lost),
        )  # fmt: skip
        self._restarts[one.index] = (
            self._restarts[one.index] + 1
            if time.monotonic() - one.started < QUICK_DEATH_SECONDS
            else 0
        )
        first, most = RESTART_BACKOFF_SECONDS
        delay = min(most, first * 2 ** self._restarts[one.index]) - first
        while True:
            time.sleep(delay)
            with self._lock:
                if self._closing:
                    return
            try:
                self._start(one.index)
                return
            except Exception:  # no process can start now (out of memory, of descriptors)
                logger.exception("cannot start sender process %d; trying again", one.index)
                delay = most

    def _write(self, one: _Process, batch: list[Dispatch]) -> None:
        with self._lock:
            one.handed += len(batch)
        if self._send(one, ("send", batch)):
            return
        with self._lock:  # not written: never called; unless the death path took them first
            for dispatch in batch:
                if self._flight.pop(dispatch.run_id, None) is not None:
                    self._hand_back.append(dispatch.run_id)

    def _send(self, one: _Process, message: Any) -> bool:
        """Write `message` to process `one`; False if it is gone."""
        try:
            one.conn.send(message)  # only the loop's thread writes
            return True
        except (OSError, ValueError):
            return False
