"""Who is calling a cron endpoint: the token from the headers (or the query, if enabled)."""

from __future__ import annotations

from datetime import datetime

from flask import Request

from gateway import tokens
from gateway.config import Settings
from gateway.store.keys import Caller
from gateway.store.keys import verify_key

BOOTSTRAP_CALLER = "GATEWAY_CRON_TOKEN"
ADMIN_BOOTSTRAP_CALLER = "GATEWAY_ADMIN_TOKEN"


def presented_token(request: Request, settings: Settings) -> str | None:
    """Return the token the request carries, or None."""
    token = request.headers.get("X-Cron-Token")
    if token:
        return token
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if settings.allow_query_token:
        return request.args.get("cronToken") or None
    return None


def authenticate(request: Request, settings: Settings, now: datetime) -> Caller | None:
    """Return the caller if the request's token is a bootstrap token or an active key."""
    token = presented_token(request, settings)
    if not token or len(token) > 512:
        return None
    # Compare against both bootstrap tokens always, so timing does not tell which exists.
    is_cron = settings.cron_token is not None and tokens.same(token, settings.cron_token)
    is_admin = settings.admin_token is not None and tokens.same(token, settings.admin_token)
    if is_cron:
        return Caller(BOOTSTRAP_CALLER, "invoke")
    if is_admin:
        return Caller(ADMIN_BOOTSTRAP_CALLER, "admin")
    return verify_key(token, now)
