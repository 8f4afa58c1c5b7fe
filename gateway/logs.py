"""Log setup with secrets redacted: our logging handlers and gunicorn's access log."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger

from gateway import tokens

_REDACTED_ATOMS = ("r", "q", "U", "f", "{referer}i")
# Headers whose whole value is a secret: never logged, whatever the access log format says.
_SECRET_ATOMS = ("{x-cron-token}i", "{authorization}i", "{cookie}i", "{x-cron-signature}i")


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
        for log in (self.error_log, self.access_log):
            log.addFilter(RedactingFilter())


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr with secrets redacted (the gateway and CLI processes)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
