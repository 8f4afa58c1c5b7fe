"""GatewayError tree: every error a user can cause, with a code, a message, a field and a status."""

from __future__ import annotations


class GatewayError(Exception):
    """An error caused by input or state, shown to the user as it is (never a traceback)."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, object]:
        """Return the JSON body of the management API's error contract."""
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class InvalidSchedule(GatewayError, ValueError):  # noqa: N818 (name fixed by the design)
    """A cron expression or time zone that cannot be used: the message names the field."""

    code = "invalid_schedule"


class ValidationError(GatewayError, ValueError):
    code = "invalid"


class UnauthorizedError(GatewayError):
    status = 401
    code = "unauthorized"


class ForbiddenError(GatewayError):
    status = 403
    code = "forbidden"


class MalformedBodyError(GatewayError):
    code = "malformed_json"


class NotFoundError(GatewayError):
    status = 404
    code = "not_found"


class ConflictError(GatewayError):
    status = 409
    code = "conflict"


class ConfigError(GatewayError):
    """A setting that makes the process unable to start; raised at startup, never later."""

    code = "config"


class RateLimitedError(GatewayError):
    """Too many failed attempts from one address: refused, unchecked, for `retry_after` s."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed attempts, retry later")
        self.retry_after = retry_after
