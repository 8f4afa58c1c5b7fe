"""Who may use the API: an admin key or GATEWAY_ADMIN_TOKEN as a bearer token; nobody else."""

from __future__ import annotations

from flask import g
from flask import request

from gateway.app_context import now
from gateway.app_context import settings
from gateway.endpoints.auth import authenticate
from gateway.errors import ForbiddenError
from gateway.errors import UnauthorizedError
from gateway.store.db import ensure_open


def require_admin() -> None:
    """Raise 401 for a missing or wrong token (no hint which), 403 for a non-admin key."""
    config = settings()
    ensure_open(config.database_url)
    caller = authenticate(request, config, now())
    if caller is None:
        raise UnauthorizedError("missing or invalid token; send Authorization: Bearer <admin key>")
    if caller.scope != "admin":
        raise ForbiddenError("this key may not use the management API: it needs the admin scope")
    g.api_caller = caller
