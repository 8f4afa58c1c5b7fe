"""Log setup with secrets redacted: text or JSON lines, each carrying the execution id of the
run it was logged for; our handlers and gunicorn's (error and access log)."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC
from datetime import datetime
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger

from gateway import tokens

_REDACTED_ATOMS = ("r", "q", "U", "f", "{referer}i")
# Headers whose whole value is a secret: never logged, whatever the access log format says.
_SECRET_ATOMS = ("{x-cron-token}i", "{authorization}i", "{cookie}i", "{x-cron-signature}i")


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Set around a run (the endpoint's execution, the gateway's call): every line logged in that
# context, whatever the logger, carries them.
execution_id_var: ContextVar[str | None] = ContextVar("execution_id", default=None)
job_var: ContextVar[str | None] = ContextVar("job", default=None)


@contextmanager
def log_context(execution_id: str, job: str) -> Iterator[None]:
    """Tag the lines logged inside with `execution_id` and `job` (this thread or task only)."""
    saved = (execution_id_var.set(execution_id), job_var.set(job))
    try:
        yield
    finally:
        job_var.reset(saved[1])
        execution_id_var.reset(saved[0])


class ContextFilter(logging.Filter):
    """Copy the run's execution id and job onto each record, when logged in a run's context."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.execution_id = execution_id_var.get()
        record.job = job_var.get()
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [job=… execution_id=…]`, secrets redacted (tracebacks too)."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        execution_id = getattr(record, "execution_id", None)
        if execution_id:
            head, sep, tail = line.partition("\n")
            line = f"{head} [job={getattr(record, 'job', None)} execution_id={execution_id}]"
            line += sep + tail
        return tokens.redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, execution_id and job (in a run),
    exception (a traceback); secrets redacted in every field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": tokens.redact(record.getMessage()),
        }
        execution_id = getattr(record, "execution_id", None)
        if execution_id:
            entry["execution_id"] = execution_id
            entry["job"] = getattr(record, "job", None)
        if record.exc_info:
            entry["exception"] = tokens.redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def make_formatter(as_json: bool) -> logging.Formatter:
    return JsonFormatter() if as_json else TextFormatter(TEXT_FORMAT)


def json_wanted() -> bool:
    """Return True if the settings (GATEWAY_LOG_FORMAT or the config file) ask for JSON."""
    from gateway.config import load_settings
    from gateway.errors import ConfigError

    try:
        return load_settings().log_format == "json"
    except ConfigError:  # the process reports bad settings itself; log as text meanwhile
        return os.environ.get("GATEWAY_LOG_FORMAT", "").strip().lower() == "json"


def make_handler(as_json: bool) -> logging.Handler:
    """A stderr handler: the run's context, secrets redacted, text or JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(as_json))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    return handler


class RedactingFilter(logging.Filter):
    """Replace tokens in every record's final message (`?cronToken=`, bearer tokens)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = tokens.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class RedactingLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's logger, with the request line and query string redacted in the access log."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name in _REDACTED_ATOMS:
            if isinstance(atoms.get(name), str):
                atoms[name] = tokens.redact(atoms[name])
        for name in _SECRET_ATOMS:
            if atoms.get(name) not in (None, "-"):
                atoms[name] = tokens.REDACTED
        return atoms

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        as_json = json_wanted()
        for log in (self.error_log, self.access_log):
            log.addFilter(RedactingFilter())
            if as_json:  # the access line becomes the message of a JSON line
                for handler in log.handlers:
                    handler.setFormatter(JsonFormatter())
        # The app's own loggers (gateway.*) in the workers: same stream, same format, with the
        # run's execution id; without this only warnings would show, untagged.
        app_log = logging.getLogger("gateway")
        app_log.handlers[:] = [make_handler(as_json)]
        app_log.setLevel(logging.INFO)
        app_log.propagate = False


def setup_logging(level: int = logging.INFO, *, json: bool | None = None) -> None:
    """Log to stderr with secrets redacted (the gateway and CLI processes): text lines, or
    JSON lines with `json=True` (None: as GATEWAY_LOG_FORMAT says)."""
    root = logging.getLogger()
    root.handlers[:] = [make_handler(json_wanted() if json is None else json)]
    root.setLevel(level)
