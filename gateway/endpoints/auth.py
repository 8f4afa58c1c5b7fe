"""Who is calling a cron endpoint: the token from the headers (or the query, if enabled)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote
from urllib.parse import urlsplit

from flask import Flask
from flask import Request
from flask import current_app

from gateway import signing
from gateway import tokens
from gateway.config import Settings
from gateway.errors import RateLimitedError
from gateway.store.keys import Caller
from gateway.store.keys import verify_key
from gateway.throttle import Throttle

BOOTSTRAP_CALLER = "GATEWAY_CRON_TOKEN"
ADMIN_BOOTSTRAP_CALLER = "GATEWAY_ADMIN_TOKEN"
THROTTLE_EXTENSION = "gateway_throttle"


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
    """Return the caller if the request's token is a bootstrap token or an active key.

    An address that sent too many wrong tokens lately gets RateLimitedError (429) before its
    token is even looked at (a right guess during the penalty would otherwise still tell),
    unless that token already succeeded from this address: good callers are not locked out.
    """
    throttle = throttle_of(current_app, settings)
    address = request.remote_addr
    token = presented_token(request, settings)
    wait = throttle.refusal(address, token, now.timestamp())
    if wait is not None:
        raise RateLimitedError(wait)
    if not token:
        return None
    caller = _check(token, settings, now)
    if caller is None:
        throttle.failed(address, now.timestamp())
    else:
        throttle.succeeded(address, token)
    return caller


def _check(token: str, settings: Settings, now: datetime) -> Caller | None:
    if len(token) > 512:
        return None
    # Compare against both bootstrap tokens always, so timing does not tell which exists.
    is_cron = settings.cron_token is not None and tokens.same(token, settings.cron_token)
    is_admin = settings.admin_token is not None and tokens.same(token, settings.admin_token)
    if is_cron:
        return Caller(BOOTSTRAP_CALLER, "invoke")
    if is_admin:
        return Caller(ADMIN_BOOTSTRAP_CALLER, "admin")
    return verify_key(token, now)


def throttle_of(app: Flask, settings: Settings) -> Throttle:
    """Return the app's throttle of failed attempts (one per app, so one per worker)."""
    throttle = app.extensions.get(THROTTLE_EXTENSION)
    if throttle is None:
        fresh = Throttle(settings.throttle_failures, settings.throttle_window_seconds)
        throttle = app.extensions.setdefault(THROTTLE_EXTENSION, fresh)
    assert isinstance(throttle, Throttle)
    return throttle


def signature_ok(request: Request, settings: Settings, now: datetime) -> bool:
    """Return False if the request must be refused for its X-Cron-Signature.

    Without a signing secret nothing is checked. With one, a signature that is present must
    be valid and fresh; a missing one is refused only when `require_signature` is on.
    """
    if not settings.signing_secrets:
        return True
    header = request.headers.get(signing.HEADER)
    if header is None:
        return not settings.require_signature
    body = request.get_data(cache=True)
    return signing.verify(
        header, settings.signing_secrets, request.method, sent_path(request), body, now
    )


def sent_path(request: Request) -> str:
    """Return the path and query as the client sent them (still percent-encoded)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw:
        if not raw.startswith("/"):  # an absolute-form request line: keep path and query
            parts = urlsplit(raw)
            raw = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return raw
    query = request.query_string.decode("latin-1")
    path = quote(request.script_root + request.path, safe="/:@!$&'()*+,;=-._~")
    return path + (f"?{query}" if query else "")
