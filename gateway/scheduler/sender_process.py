"""A sender process: makes the HTTP calls its gateway hands it, and hands the outcomes back.

It owns no database connection and decides nothing: it reads batches of dispatched runs from
its pipe, sends them through a Dispatcher of its own (threads, a cap per host) and writes back,
in batches, each run's Outcome and lateness. What the parent does with them (store, retry,
abandon) is the parent's. When the pipe closes (the gateway stopped or died), it exits.

Messages, parent to child: ("send", [Dispatch, …]), ("take_waiting",), ("close",).
Child to parent: ("got", n) for each batch read, written before any of its calls begins (so
the parent knows which runs a dead child can have called), ("sent", [(run_id, Outcome,
lateness_ms), …], unstarted) with how many calls have not begun yet (so the parent knows when
a burst has gone out), at least every BEAT_SECONDS (so the parent knows it is not frozen),
and ("waiting", [run_id, …]).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from gateway import outbound
from gateway.clock import SYSTEM_CLOCK
from gateway.config import Settings
from gateway.scheduler.caller import Caller
from gateway.scheduler.caller import Outcome
from gateway.scheduler.dispatch import Dispatcher
from gateway.scheduler.sending import Sender
from gateway.store.claims import Dispatch

logger = logging.getLogger("gateway.sender")

# While a burst goes out, what changes in this long (calls begun, outcomes) goes back in one
# message: a message per call would cost the parent more than the calls.
_GATHER_SECONDS = 0.002
# The reporter writes at least this often, an empty report if nothing changed: the gateway
# tells a frozen process (stopped, or a thread holding the GIL) from one waiting on its calls.
BEAT_SECONDS = 1.0

Result = tuple[int, Outcome, int]


def main(
    conn: Connection,
    settings: Settings,
    token: str,
    workers: int,
    per_host: int,
    beat_seconds: float = BEAT_SECONDS,
) -> None:
    """The sender process's entry point (multiprocessing, spawn).

    It ignores SIGINT and SIGTERM: Ctrl-C reaches the whole process group, and a service
    manager may signal every process of the service. The gateway decides when its senders
    stop (after its calls in flight are answered), and a sender stops when its pipe ends.
    """
    from gateway.logs import setup_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    setup_logging()
    caller = Caller(outbound.pools_for(settings))
    sender = Sender(settings, token, caller, SYSTEM_CLOCK)
    _Child(conn, sender, workers, per_host, beat_seconds).serve()
    caller.close()


class _Child:
    def __init__(
        self, conn: Connection, sender: Sender, workers: int, per_host: int, beat: float
    ) -> None:
        self._conn = conn
        self._beat = beat
        self._sender = sender
        self._writing = threading.Lock()  # the reporter and the main thread both write
        self._changed = threading.Condition()
        self._done: list[Result] = []
        self._received = 0
        self._closed = False
        self._dispatcher = Dispatcher(self._call, workers, per_host, on_started=self._started)

    def serve(self) -> None:
        reporter = threading.Thread(target=self._report, name="report", daemon=True)
        reporter.start()
        try:
            self._read()
        finally:
            with self._changed:
                self._closed = True
                self._changed.notify_all()
            reporter.join(5)
            self._dispatcher.close()

    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):  # the gateway is gone: nobody would record the calls
                return
            kind = message[0]
            if kind == "send":
                batch: list[Dispatch] = message[1]
                if not self._write(("got", len(batch))):
                    return  # not acknowledged, so not called: the gateway hands them back
                self._dispatcher.submit_all(batch)
                with self._changed:  # after the submit: the reporter sees the batch unstarted
                    self._received += len(batch)
                    self._changed.notify_all()
            elif kind == "take_waiting":
                self._write(("waiting", [d.run_id for d in self._dispatcher.take_waiting()]))
            elif kind == "close":
                return

    def _started(self) -> None:
        with self._changed:  # the reporter tells the parent how many have not begun yet
            self._changed.notify_all()

    def _call(self, dispatch: Dispatch) -> None:
        sent = self._sender(dispatch)
        with self._changed:
            self._done.append((dispatch.run_id, sent.outcome, sent.lateness_ms))
            self._changed.notify_all()

    def _report(self) -> None:
        try:
            self._report_until_closed()
        except Exception:  # outcomes could no longer go back: end, the gateway settles them
            logger.exception("sender: cannot report outcomes; exiting")
            os._exit(70)

    def _report_until_closed(self) -> None:
        """Write the outcomes back in batches, and the progress of a burst going out; at least
        every BEAT_SECONDS, and once at once (the gateway gives a process runs once it has
        heard from it). It sleeps until something changes (a batch, a call begun, an
        outcome): runs held for their time cost it no wake-up."""
        if not self._write(("sent", [], 0)):
            return
        reported = (0, 0)
        while True:
            with self._changed:
                beat = time.monotonic() + self._beat
                while not self._done and self._state() == reported and not self._closed:
                    left = beat - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)
                done, self._done = self._done, []
                state, closed = self._state(), self._closed
            if not self._write(("sent", done, state[1])):
                return
            reported = state
            if closed and not done:
                return
            if done or state[1]:  # a burst going out: what the next moment brings, together
                time.sleep(_GATHER_SECONDS)

    def _state(self) -> tuple[int, int]:
        return self._received, self._dispatcher.unstarted

    def _write(self, message: Any) -> bool:
        try:
            with self._writing:
                self._conn.send(message)
            return True
        except (OSError, ValueError):  # the gateway is gone
            return False
