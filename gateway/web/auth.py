"""Login with the admin key, the session cookie, logout, and the CSRF token on every form."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.sessions import SecureCookieSessionInterface

from gateway import tokens
from gateway.app_context import now
from gateway.app_context import settings
from gateway.endpoints.auth import ADMIN_BOOTSTRAP_CALLER
from gateway.endpoints.auth import throttle_of
from gateway.store.db import ensure_open
from gateway.store.keys import verify_key
from gateway.store.models import Key
from gateway.web.context import back_to

PUBLIC_ENDPOINTS = ("ui.login", "ui.static")
MAX_TOKEN_LENGTH = 512


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(request.is_secure or super().get_cookie_secure(app))


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/login", view_func=login_form, methods=["GET"], endpoint="login")
    bp.add_url_rule("/login", view_func=login, methods=["POST"], endpoint="login_post")
    bp.add_url_rule("/logout", view_func=logout, methods=["POST"])


def install(bp: Blueprint) -> None:
    @bp.app_context_processor
    def _csrf() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "user": session.get("user")}


def csrf_token() -> str:
    """Return this session's CSRF token, making one if the session has none yet."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def guard() -> Any:
    """Before every UI request: open the database, check the CSRF token, require a login."""
    ensure_open(settings().database_url)
    if request.method == "POST" and not _csrf_ok():
        return render_template(
            "message.html",
            title="Form expired",
            message=(
                "The form's security token is missing or out of date. Go back, reload the page "
                "and try again."
            ),
        ), 400
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint == "ui.login_post":
        return None
    if not _logged_in():
        session.pop("user", None)
        if request.path.startswith("/ui/"):
            return {"error": {"code": "unauthorized", "message": "log in first"}}, 401
        return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))
    return None


def _csrf_ok() -> bool:
    sent = request.form.get("csrf", "")
    expected = session.get("csrf")
    return isinstance(expected, str) and hmac.compare_digest(sent.encode(), expected.encode())


def _logged_in() -> bool:
    """Return True if the session's user may still use the UI.

    A key login is checked on every request, so revoking the key ends its sessions at once.
    """
    user = session.get("user")
    if not isinstance(user, dict):
        return False
    if user.get("kind") == "bootstrap":
        return settings().admin_token is not None
    key = Key.get_or_none((Key.name == user.get("name")) & Key.revoked_at.is_null())
    return key is not None and key.scope == "admin" and key.prefix == user.get("prefix")


def login_form() -> Any:
    return render_template("login.html", next=back_to("/"))


def login() -> Any:
    # The same throttle as the endpoints and the API: guessing keys here is no easier.
    throttle = throttle_of(current_app, settings())
    at = now().timestamp()
    token = request.form.get("token", "").strip()
    wait = throttle.refusal(request.remote_addr, token, at)
    if wait is not None:
        error = f"Too many failed attempts from your address; try again in {wait} s."
        page = render_template("login.html", next=back_to("/"), error=error)
        return page, 429, {"Retry-After": str(wait)}
    user = _admin_for(token) if 0 < len(token) <= MAX_TOKEN_LENGTH else None
    if user is None:
        throttle.failed(request.remote_addr, at)
        return render_template(
            "login.html", next=back_to("/"), error="That is not an admin key."
        ), 401
    throttle.succeeded(request.remote_addr, token)
    session.clear()  # a fresh session (and CSRF token) on login: no fixation
    session["user"] = user
    session.permanent = True
    csrf_token()
    return redirect(back_to("/"))


def _admin_for(token: str) -> dict[str, str] | None:
    """Return who `token` belongs to if it is GATEWAY_ADMIN_TOKEN or an admin key."""
    admin_token = settings().admin_token
    if admin_token is not None and tokens.same(token, admin_token):
        return {"kind": "bootstrap", "name": ADMIN_BOOTSTRAP_CALLER}
    caller = verify_key(token, now())
    if caller is None or caller.scope != "admin":
        return None
    return {"kind": "key", "name": caller.name, "prefix": tokens.prefix_of(token)}


def logout() -> Any:
    session.clear()
    return redirect(url_for("ui.login"))
