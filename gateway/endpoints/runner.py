"""Execution: run one job function under its lease, with a heartbeat, and record the outcome."""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gateway.clock import Clock
from gateway.endpoints.context import RunContext
from gateway.endpoints.context import SkipRun
from gateway.logs import log_context
from gateway.store import leases
from gateway.store import runs
from gateway.store.db import database
from gateway.store.db import write_transaction

logger = logging.getLogger("gateway.endpoints")

SUMMARY_LIMIT = 16 * 1024
ERROR_LIMIT = 2000
STACK_LIMIT = 32 * 1024


@dataclass(frozen=True)
class Result:
    """The end of a run, as the endpoint reports it."""

    execution_id: str
    job: str
    status: str  # success | error | skipped
    duration_ms: int
    summary: Any = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "job": self.job,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "summary": self.summary,
            "error": self.error,
        }


class Execution:
    """One run of a job function: call it, keep its lease and heartbeat alive, record the end."""

    def __init__(
        self,
        func: Callable[[RunContext], Any],
        ctx: RunContext,
        run_id: int,
        lease_name: str,
        *,
        job_id: int,
        clock: Clock,
        heartbeat_seconds: float,
        lease_seconds: float,
    ) -> None:
        self.func = func
        self.ctx = ctx
        self.run_id = run_id
        self.job_id = job_id
        self.lease_name = lease_name
        self.clock = clock
        self.heartbeat_seconds = heartbeat_seconds
        self.lease = timedelta(seconds=lease_seconds)

    def execute(self) -> Result:
        """Run the function to its end and return the recorded result; never raises."""
        with log_context(self.ctx.execution_id, self.ctx.job):  # every line tagged
            HEARTBEATS.add(self)
            started = self.clock.monotonic()
            try:
                result, stack = self._call(started)
            finally:
                HEARTBEATS.remove(self)  # returns once a beat of this run in progress ended
            self._record(result, stack)
            return result

    def _call(self, started: float) -> tuple[Result, str | None]:
        """Call the function; return its result and the stored traceback, if it raised."""
        status, summary, error, stack = "success", None, None, None
        try:
            summary = _summary(self.func(self.ctx))
        except SkipRun as e:
            status, error = "skipped", self.ctx.redact(e.reason)[:ERROR_LIMIT]
        except Exception as e:  # the job's own failure: stored as data, never a crash
            status = "error"
            error = self.ctx.redact(f"{type(e).__name__}: {e}")[:ERROR_LIMIT]
            stack = self.ctx.redact(traceback.format_exc())[-STACK_LIMIT:]
            logger.warning("job %s run %s failed: %s", self.ctx.job, self.ctx.execution_id, error)
        duration_ms = int((self.clock.monotonic() - started) * 1000)
        result = Result(self.ctx.execution_id, self.ctx.job, status, duration_ms, summary, error)
        return result, stack

    def _record(self, result: Result, stack: str | None) -> None:
        """End the run and free the job's lock in one transaction: nobody may see the run
        ended while its lock is still held (the gateway would send the next run into a 409)."""
        try:
            with write_transaction():
                self._finish(result, stack)
                leases.release(self.lease_name, self.ctx.execution_id)
        except Exception:
            with suppress(Exception):  # never keep the lock; the first error is the one to see
                leases.release(self.lease_name, self.ctx.execution_id)
            raise

    def _finish(self, result: Result, stack: str | None) -> None:
        progress = self.ctx.progress_value
        ending = runs.Ending(
            duration_ms=result.duration_ms,
            summary=result.summary,
            error=result.error,
            error_stack=stack,
            log=self.ctx.log_text() or None,
            progress_done=progress[0] if progress else None,
            progress_total=progress[1] if progress else None,
        )
        runs.end_running(self.run_id, self.job_id, result.status, self.clock.now(), ending)

    def beat(self) -> None:
        """Renew the lease and store the log so far (called by the process's heartbeat
        thread every `heartbeat_seconds` while the run goes on)."""
        now = self.clock.now()
        with log_context(self.ctx.execution_id, self.ctx.job):
            try:
                with database.atomic():  # a savepoint: the other beats of the batch go on
                    renewed = leases.renew(self.lease_name, self.ctx.execution_id, self.lease, now)
                    stop = runs.heartbeat(
                        self.run_id, now, self.ctx.log_text() or None, self.ctx.progress_value
                    )
                if not renewed or stop:  # someone took over (we are presumed dead), or cancel
                    self.ctx.request_stop()
            except Exception:
                logger.exception("heartbeat of run %s failed", self.ctx.execution_id)


class Heartbeats:
    """One thread per process beats every running execution on time.

    A thread started per run cost a third of a quick job's call (start, wait, join: the
    endpoint bench); this one is started on first use in each process (so after gunicorn
    forked) and sleeps while nothing runs.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._due: dict[Execution, float] = {}  # execution -> monotonic time of its next beat
        self._beating: set[Execution] = set()
        self._thread: threading.Thread | None = None

    def add(self, execution: Execution) -> None:
        with self._lock:
            self._due[execution] = time.monotonic() + execution.heartbeat_seconds
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="heartbeats", daemon=True)
                self._thread.start()
            self._lock.notify_all()

    def remove(self, execution: Execution) -> None:
        """Stop beating `execution`; wait for a beat of it that is under way."""
        with self._lock:
            self._due.pop(execution, None)
            self._lock.wait_for(lambda: execution not in self._beating)

    def _run(self) -> None:
        while True:
            with self._lock:
                due = self._wait_for_due()
                self._beating = set(due)
            try:
                # Every beat that is due in one write transaction: one wait for SQLite's
                # lock however many runs this process has going.
                with write_transaction():
                    for execution in due:
                        execution.beat()
            except Exception:  # the database is down: the leases run on; try at the next beat
                logger.exception("heartbeats of %d run(s) failed", len(due))
            finally:
                with self._lock:
                    self._beating = set()
                    for execution in due:
                        if execution in self._due:
                            self._due[execution] = time.monotonic() + execution.heartbeat_seconds
                    self._lock.notify_all()

    def _wait_for_due(self) -> list[Execution]:
        """Wait (holding the lock's condition) until beats are due; return their executions."""
        while True:
            if not self._due:
                self._lock.wait(60)
                if not self._due:
                    database.close()  # idle: give the connection back
                continue
            now = time.monotonic()
            due = [e for e, at in self._due.items() if at <= now]
            if due:
                return due
            self._lock.wait(min(self._due.values()) - now)


HEARTBEATS = Heartbeats()


def _summary(value: Any) -> Any:
    """Return the function's return value as stored JSON (bounded, always serializable)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text) > SUMMARY_LIMIT:
        return {"truncated": True, "preview": text[:SUMMARY_LIMIT]}
    return json.loads(text)
