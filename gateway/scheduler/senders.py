"""SenderPool: the gateway's calls made by sender processes, so that a burst uses every core.

One Python process makes one call at a time, whatever its threads: a few hundred µs of CPU
per call (bench/client_cpu.py), so 1,000 calls due in the same second leave over a few
hundred ms in one process while the second core idles. With `gateway_senders = N`, N processes
(`sender_process.py`) make the calls; the gateway process keeps the database (claims, the
writer, retries, alerts) and hands each process its share of every host's runs, in batches.

It stands in for the Dispatcher (the same methods the loop calls). What it adds is that a
process can die. A process acknowledges each batch before it starts any call of it, so when
it dies the runs it had split exactly in two: those it acknowledged may have been called and
are to be *abandoned* (DESIGN §5, fail closed; `retry_abandoned` opts in to another attempt),
the others never reached it and go back to the queue. Another process takes its place.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import queue
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import urlsplit

from gateway.config import Settings
from gateway.scheduler import sender_process
from gateway.scheduler.dispatch import MAX_HOLD_SECONDS
from gateway.scheduler.sending import Sent
from gateway.store.claims import Dispatch

logger = logging.getLogger("gateway.scheduler")

BATCH = 64  # dispatches per message: a process starts on a burst's first calls at once
FIRST_TAKE = 20  # the loop takes a burst's first 20 runs alone: their calls leave at once
REPLY_SECONDS = 5.0  # at shutdown, for a process to say which calls it has not started
STOP_SECONDS = 5.0  # at shutdown, for a process to exit once asked
RESTART_BACKOFF_SECONDS = (1.0, 30.0)  # a process dying at start again and again waits
QUICK_DEATH_SECONDS = 10.0  # … when it lived less than this
# A process writes a report at least every second (sender_process.BEAT_SECONDS). One that
# writes nothing this long is frozen (stopped, or a thread holding the GIL): it is killed, and
# its runs are settled as for any death. Its first message may take longer (the imports);
# until it comes, the process is given no runs.
SILENT_SECONDS = 10.0
FIRST_MESSAGE_SECONDS = 60.0
_WATCH_SECONDS = 1.0  # how often the watchdog looks


@dataclass(eq=False)
class _Process:
    """One sender process and what the gateway knows of it."""

    index: int
    process: BaseProcess
    conn: Connection
    started: float
    replies: queue.Queue[list[int]] = field(default_factory=queue.Queue)
    receiving: threading.Thread | None = None
    handed: int = 0  # dispatches given to it, in order (a run's `seq` is its place)
    received: int = 0  # … of which it acknowledged the first this many
    unstarted: int = 0  # … and said this many had not begun
    heard: float | None = None  # time.monotonic() of its last whole message; None: none yet
    killed: bool = False  # by the watchdog
    # Its acknowledgements cannot be relied on (a message lost or unreadable): when it ends,
    # every run it had may have been called.
    untrusted: bool = False


@dataclass(frozen=True)
class _Flight:
    dispatch: Dispatch
    owner: _Process
    seq: int = -1  # its place among the dispatches written to `owner`; -1: not written yet
    written_at: float = 0.0  # time.monotonic() when it was written


def share(total: int, index: int, processes: int) -> int:
    """Return process `index`'s part of `total` (workers, the cap per host). Settings make
    sure that `total` is at least `processes`, so every part is at least 1 and they add up."""
    return max(1, total // processes + (1 if index < total % processes else 0))


def child_settings(settings: Settings) -> Settings:
    """Return the settings a sender is given: no database, no admin, metrics or alert secrets.
    (Its environment is the gateway's, as for any child process.)"""
    return replace(
        settings,
        require_signature=False,  # an endpoint's rule; checked against the secrets cleared here
        database_url="sqlite:///:memory:",
        cron_token=None,  # the token it sends comes as its own argument
        admin_token=None,
        metrics_token=None,
        signing_secret_next=None,
        alert_webhook=None,
        alert_smtp=None,
        alert_to=(),
    )


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
        beat_seconds: float = sender_process.BEAT_SECONDS,
        silent_seconds: float = SILENT_SECONDS,
    ) -> None:
        """`beat_seconds`: how often a process reports at least; `silent_seconds`: how long
        a silent one lives (both shorter in tests)."""
        if processes > min(workers, per_host):  # each gets at least one of both
            raise ValueError(
                f"{processes} senders need at least as many workers and calls per host"
            )
        self._settings = child_settings(settings)
        self._token = token
        self._on_sent = on_sent
        self._workers = workers
        self._per_host = per_host
        self._beat = beat_seconds
        self._silent = silent_seconds
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._flight: dict[int, _Flight] = {}  # by run id
        self._hand_back: list[int] = []
        self._abandon: list[int] = []
        self._turn: dict[str, int] = {}  # host → where its next run goes
        self._closing = False
        self._restarts = [0] * processes
        self._processes: list[_Process | None] = [None] * processes
        # Before multiprocessing's own exit hook, which would wait for ever for daemon
        # children that ignore SIGTERM: whatever path the gateway leaves by, they are stopped.
        atexit.register(self.close)
        for index in range(processes):
            self._start(index)
        self._watchdog = threading.Thread(target=self._watch, name="sender-watch", daemon=True)
        self._watchdog.start()

    # -- what the loop calls ----------------------------------------------------------------

    first_take = FIRST_TAKE  # the calls run elsewhere: the take of the rest is not slowed

    @property
    def ready(self) -> bool:
        """Return True if a process can take calls (none may be, while they start)."""
        return any(p is not None and p.heard is not None for p in self._processes)

    def submit(self, dispatch: Dispatch) -> None:
        self.submit_all([dispatch])

    def submit_all(self, dispatches: list[Dispatch]) -> int:
        """Hand the runs out, each host's in turn to every live process, in batches; return
        how many went out. Those that could not are handed back by the loop."""
        shares: dict[int, list[Dispatch]] = {}
        with self._lock:
            live = [p for p in self._processes if p is not None and p.heard is not None]
            if not live:
                self._hand_back += [d.run_id for d in dispatches]
                return 0
            shares = {p.index: [] for p in live}
            for dispatch in dispatches:
                host = urlsplit(dispatch.url).netloc
                turn = self._turn.get(host, 0)
                self._turn[host] = turn + 1
                owner = live[turn % len(live)]
                shares[owner.index].append(dispatch)
                self._flight[dispatch.run_id] = _Flight(dispatch, owner)
        written = 0
        rounds = max(len(s) for s in shares.values())
        for start in range(0, rounds, BATCH):  # first batches first: every process starts
            for one in live:
                batch = shares[one.index][start : start + BATCH]
                if batch and self._write(one, batch):
                    written += len(batch)
        return written

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
                    flight = self._flight.pop(run_id, None)
                    if flight is not None:
                        taken.append(flight.dispatch)
                self._idle.notify_all()
        return taken

    def take_unsettled(self) -> tuple[list[int], list[int]]:
        """Return (and forget) the runs to hand back, never received by a process, and those
        to abandon, which a process had acknowledged when it died."""
        with self._lock:
            settled = self._hand_back, self._abandon
            self._hand_back, self._abandon = [], []
            return settled

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every run handed out to be answered."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._flight, timeout)

    def close(self) -> None:
        """Ask the processes to exit (calls still going are cut short), then make sure; once."""
        with self._lock:
            if self._closing:
                return
            self._closing = True  # from now on no process is started
            running = [p for p in self._processes if p is not None]
        atexit.unregister(self.close)
        for one in running:
            if _writable(one.conn, 1.0):  # a frozen child with a full pipe is killed below
                self._send(one, ("close",))
        for one in running:
            one.process.join(STOP_SECONDS)
            if one.process.is_alive():
                one.process.kill()
                one.process.join(STOP_SECONDS)
        for one in running:  # their runs settled (take_unsettled) before close returns
            if one.receiving is not None:
                one.receiving.join(STOP_SECONDS)

    @property
    def pids(self) -> list[int]:
        """Return the live processes' ids (for tests and `doctor`-like checks)."""
        return [p.process.pid for p in self._processes if p is not None and p.process.pid]

    # -- the processes ------------------------------------------------------------------------

    def _start(self, index: int) -> None:
        ours, theirs = self._context.Pipe()
        count = len(self._processes)
        process = self._context.Process(
            target=sender_process.main,
            args=(
                theirs,
                self._settings,
                self._token,
                share(self._workers, index, count),
                share(self._per_host, index, count),
                self._beat,
            ),
            name=f"sender-{index}",
            daemon=True,  # ended with the gateway
        )
        process.start()
        theirs.close()  # so that its death reads as the end of the pipe here
        one = _Process(index, process, ours, time.monotonic())
        with self._lock:
            closing = self._closing
            if not closing:
                self._processes[index] = one
        if closing:  # close() ran meanwhile and will not see this one
            process.kill()
            process.join(STOP_SECONDS)
            ours.close()
            return
        one.receiving = threading.Thread(
            target=self._receive, args=(one,), name=f"sender-{index}-receive", daemon=True
        )
        one.receiving.start()

    def _receive(self, one: _Process) -> None:
        """Read what process `one` writes until it ends; then settle its runs, start another."""
        try:
            while True:
                try:
                    message = one.conn.recv()
                except (EOFError, OSError):
                    return
                one.heard = time.monotonic()
                kind = message[0]
                if kind == "got":
                    with self._lock:
                        one.received += message[1]
                elif kind == "sent":
                    self._answered(one, message[1], message[2])
                elif kind == "waiting":
                    one.replies.put(message[1])
        except Exception:  # a message that cannot be read or handled: it cannot be trusted
            logger.exception("sender process %d: what it sent cannot be handled", one.index)
            self._distrust(one)
        finally:
            self._ended(one)

    def _answered(self, one: _Process, results: list[Any], unstarted: int) -> None:
        with self._lock:
            found = [(self._flight.get(rid), outcome, late) for rid, outcome, late in results]
        for flight, outcome, lateness_ms in found:
            if flight is not None:
                self._on_sent(Sent(flight.dispatch, outcome, lateness_ms))
        with self._lock:  # out of flight once the outcome is handed on: drain waits for both
            for flight, _, _ in found:
                if flight is not None:
                    self._flight.pop(flight.dispatch.run_id, None)
            one.unstarted = unstarted
            self._idle.notify_all()

    def _watch(self) -> None:
        """Kill every process that has written no whole message for too long (see
        SILENT_SECONDS): stopped, frozen mid-message, or a thread holding its GIL. Its runs
        settle as it ends, and a write of the loop blocked on its full pipe then fails."""
        while True:
            time.sleep(min(_WATCH_SECONDS, self._silent / 4))
            with self._lock:
                if self._closing:
                    return
                live = [p for p in self._processes if p is not None and not p.killed]
            now = time.monotonic()
            for one in live:
                since = one.started if one.heard is None else one.heard
                allowed = FIRST_MESSAGE_SECONDS if one.heard is None else self._silent
                if now - since > allowed:
                    one.killed = True
                    logger.error(
                        "sender process %d (pid %s) wrote nothing for %.0f s: frozen; killing it",
                        one.index, one.process.pid, now - since,
                    )  # fmt: skip
                    one.process.kill()

    def _distrust(self, one: _Process) -> None:
        """Stop process `one` and count every run it had as possibly called."""
        one.untrusted = True
        one.process.kill()

    def _ended(self, one: _Process) -> None:
        # Its connection is not closed here: the loop's thread may be writing to it, and a
        # closed descriptor's number could be reused by the next process's pipe meanwhile.
        # It is dead (its pipe ended): a run not due by now, written less than MAX_HOLD_SECONDS
        # ago (after that a sender calls it anyway: the wall clock was stepped back), was
        # never called.
        now, tick = datetime.now(UTC), time.monotonic()
        one.process.join(STOP_SECONDS)
        lost = 0
        with self._lock:
            mine = [f for f in self._flight.values() if f.owner is one]
            for flight in mine:
                del self._flight[flight.dispatch.run_id]
                # Acknowledged and due: its call may have begun. Not: it never read it, or
                # held it for its time (a sender never calls before, by the same clock).
                read = flight.seq >= 0 and (one.untrusted or flight.seq < one.received)
                held = tick - flight.written_at < MAX_HOLD_SECONDS
                due = flight.dispatch.due_at is None or flight.dispatch.due_at <= now or not held
                lost += read and due
                (self._abandon if read and due else self._hand_back).append(flight.dispatch.run_id)
            self._processes[one.index] = None
            self._idle.notify_all()
            if self._closing:
                return
        logger.error(
            "sender process %d (pid %s) exited with code %s; of the calls it had, %d are "
            "abandoned (it may have made them) and %d go back to the queue; starting another",
            one.index, one.process.pid, one.process.exitcode, lost, len(mine) - lost,
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

    def _write(self, one: _Process, batch: list[Dispatch]) -> bool:
        """Write a batch to process `one`; if it cannot be, its runs go back to the queue.

        The batch's places are taken before it is written (the process may acknowledge it at
        once) and given back if it is not: only this thread writes, so the places of the
        batches written stay the ones the process counts in its acknowledgements."""
        with self._lock:
            first, at = one.handed, time.monotonic()
            for place, dispatch in enumerate(batch):
                if dispatch.run_id in self._flight:  # not settled by the death path already
                    self._flight[dispatch.run_id] = _Flight(dispatch, one, first + place, at)
            one.handed += len(batch)
        try:
            written = self._send(one, ("send", batch))
        except Exception:  # what cannot be pickled: a bug, said; the runs are handed back
            logger.exception("cannot write to sender process %d", one.index)
            written = False
        if written:
            return True
        with self._lock:  # not written: never called; unless the death path took them first
            one.handed -= len(batch)
            for dispatch in batch:
                if self._flight.pop(dispatch.run_id, None) is not None:
                    self._hand_back.append(dispatch.run_id)
            self._idle.notify_all()
        return False

    def _send(self, one: _Process, message: Any) -> bool:
        """Write `message` to process `one` (only the loop's thread writes); False if it is
        gone. Anything else (a message that cannot be pickled) raises."""
        try:
            one.conn.send(message)
            return True
        except (OSError, ValueError):  # it is gone (or its pipe closed)
            return False


def _writable(conn: Connection, timeout: float) -> bool:
    """Return True if `conn` can take a message within `timeout` seconds (not a full pipe)."""
    try:
        poller = select.poll()  # not select(): descriptors above 1024
        poller.register(conn.fileno(), select.POLLOUT)
        return bool(poller.poll(timeout * 1000))
    except (OSError, ValueError):
        return False
