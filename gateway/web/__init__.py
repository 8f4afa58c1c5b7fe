"""The web UI: server-rendered pages for jobs, runs, keys and gateways, behind a session login."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Blueprint
from flask import Flask

from gateway.config import Settings
from gateway.web import auth
from gateway.web import display
from gateway.web import gateways
from gateway.web import job_page
from gateway.web import jobs
from gateway.web import keys
from gateway.web import runs

SECRET_FILE = Path("var/ui-secret")
STATIC_PATH = "/ui/static"


def init_ui(app: Flask) -> None:
    """Mount the UI on `app`: the session secret, the cookie rules and the blueprint."""
    settings: Settings = app.config["GATEWAY_SETTINGS"]
    if not app.secret_key:
        app.secret_key = session_secret(settings)
    app.session_interface = auth.SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="gateway_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(days=7),
    )
    app.register_blueprint(make_ui_blueprint())


def make_ui_blueprint() -> Blueprint:
    """Return the UI blueprint: every page needs a login, every POST a CSRF token."""
    bp = Blueprint(
        "ui",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path=STATIC_PATH,
    )
    bp.before_request(auth.guard)
    auth.install(bp)
    display.install(bp)
    for module in (auth, jobs, job_page, runs, keys, gateways):
        module.register(bp)
    return bp


def session_secret(settings: Settings) -> str:
    """Return the key that signs session cookies, the same in every worker and on restarts.

    Derived from GATEWAY_ADMIN_TOKEN when there is one (changing the token logs everyone out);
    otherwise a random secret kept in var/ui-secret (mode 600), created on first use.
    """
    if settings.admin_token:
        key = settings.admin_token.encode()
        return hmac.new(key, b"cron-gateway ui session v1", hashlib.sha256).hexdigest()
    return _stored_secret(SECRET_FILE)


def _stored_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then linked into place: a worker racing us reads a whole secret or none.
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another worker won: use its secret
    finally:
        draft.unlink()
    return path.read_text().strip()
