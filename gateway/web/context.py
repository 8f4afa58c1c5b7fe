"""What every page needs from the app: settings, the clock, and safe places to go back to."""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask import request

from gateway.clock import Clock
from gateway.config import Settings


def settings() -> Settings:
    found: Settings = current_app.config["GATEWAY_SETTINGS"]
    return found


def now() -> datetime:
    """Return the app clock's current time (aware, UTC)."""
    clock: Clock = current_app.extensions["gateway_clock"]
    return clock.now()


def back_to(default: str) -> str:
    """Return the form's `next` if it is a path on this site, else `default` (no open redirect)."""
    target = request.form.get("next") or request.args.get("next") or ""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and len(target) < 2000:
        return target
    return default
