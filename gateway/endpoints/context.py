"""RunContext (ctx): what a job function gets: ids, payload, log, progress, skip, should_stop."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any
from typing import NoReturn

from gateway import tokens


class SkipRun(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Raised by ctx.skip(): the run ends *skipped* with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BoundedLog:
    """The run's log lines, keeping the newest ones within `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lines: deque[str] = deque()
        self._size = 0
        self.dropped = 0

    def append(self, line: str) -> None:
        line = line[: self.limit]
        self._lines.append(line)
        self._size += len(line) + 1
        while self._size > self.limit and len(self._lines) > 1:
            self._size -= len(self._lines.popleft()) + 1
            self.dropped += 1

    def text(self) -> str:
        head = [f"[{self.dropped} earlier lines dropped]"] if self.dropped else []
        return "\n".join(head + list(self._lines))


class RunContext:
    """The `ctx` passed to a job function.

    Example::

        @cron.job("report", schedule="0 6 * * MON", mode="stream")
        def report(ctx):
            for i, team in enumerate(teams):
                if ctx.should_stop():
                    break
                ctx.log(f"building {team}")
                ctx.progress(i + 1, len(teams))
            return {"teams": len(teams)}
    """

    def __init__(
        self,
        *,
        job: str,
        execution_id: str,
        trigger: str,
        scheduled_for: datetime | None,
        attempt: int,
        payload: Any,
        log_limit: int,
        secrets: tuple[str, ...],
        deadline: float,
        monotonic: Callable[[], float],
    ) -> None:
        self.job = job
        self.execution_id = execution_id
        self.trigger = trigger
        self.scheduled_for = scheduled_for
        self.attempt = attempt
        self.payload = payload
        self.lines = BoundedLog(log_limit)
        self.progress_value: tuple[int, int | None] | None = None
        self._secrets = secrets
        self._deadline = deadline
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def log(self, message: object) -> None:
        """Add a line to the run's log (stored with the run, streamed live in stream mode)."""
        line = self.redact(str(message))
        with self._lock:
            self.lines.append(line)
        self._emit({"log": line})

    def progress(self, done: int, total: int | None = None) -> None:
        """Report progress, e.g. ctx.progress(40, 100)."""
        self.progress_value = (int(done), None if total is None else int(total))
        self._emit({"progress": {"done": self.progress_value[0], "total": self.progress_value[1]}})

    def skip(self, reason: str) -> NoReturn:
        """End the run now as *skipped* (a conditional skip), with `reason`."""
        raise SkipRun(reason)

    def should_stop(self) -> bool:
        """Return True once the run should end early: canceled, past its timeout, or shutdown."""
        return self._stop.is_set() or self._monotonic() >= self._deadline

    def redact(self, text: str) -> str:
        """Return text with every token this run knows of replaced."""
        return tokens.redact(text, self._secrets)

    def request_stop(self) -> None:
        self._stop.set()

    def log_text(self) -> str:
        with self._lock:
            return self.lines.text()

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    def _emit(self, event: dict[str, Any]) -> None:
        for listener in self._listeners:
            listener(event)
