"""The API's one error format: {"error": {"code", "message", "field"}} for every 4xx and 500."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint
from flask import request
from werkzeug.exceptions import HTTPException

from gateway.errors import GatewayError
from gateway.errors import RateLimitedError

logger = logging.getLogger("gateway.api")
API_PREFIX = "/api"

# Werkzeug's errors, by status, as the API names them.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def gateway_error(e: GatewayError) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Render a GatewayError (bad input, unknown job, conflict, throttled) as it is."""
    headers = {"Retry-After": str(e.retry_after)} if isinstance(e, RateLimitedError) else {}
    return e.as_dict(), e.status, headers


def http_error(e: HTTPException) -> tuple[dict[str, Any], int]:
    """Render a werkzeug error (unknown route, wrong method, body too large) in our format."""
    status = e.code or 500
    if status >= 500:
        return internal_error(e)
    code = _HTTP_CODES.get(status, "bad_request")
    message = _message(e)
    return error_body(code, message), status


def _message(e: HTTPException) -> str:
    if e.code == 404:
        return f"no API route {request.path}"
    if e.code == 405:
        allowed = getattr(e, "valid_methods", None) or []
        return f"{request.method} is not allowed here (allowed: {', '.join(sorted(allowed))})"
    if e.code == 413:
        return "request body too large"
    return e.description or e.name


def internal_error(e: BaseException) -> tuple[dict[str, Any], int]:
    """Log an unexpected exception and answer 500 without a traceback."""
    logger.error("internal error on %s %s", request.method, request.path, exc_info=e)
    return error_body("internal", "internal error"), 500


def install_error_handlers(bp: Blueprint) -> None:
    """Render every error of the API's views, and unknown /api routes, as JSON."""
    bp.register_error_handler(GatewayError, gateway_error)
    bp.register_error_handler(HTTPException, http_error)
    bp.register_error_handler(Exception, internal_error)
    # A route that does not exist has no blueprint: the app's handler answers it, so it
    # renders JSON for /api paths and leaves every other path to Flask's default page.
    bp.app_errorhandler(404)(_routing_error)
    bp.app_errorhandler(405)(_routing_error)


def _routing_error(e: HTTPException) -> Any:
    if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
        body, status = http_error(e)
        headers = {}
        if status == 405:
            headers["Allow"] = ", ".join(sorted(getattr(e, "valid_methods", None) or []))
        return body, status, headers
    return e
