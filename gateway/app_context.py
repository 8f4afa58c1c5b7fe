"""The current Flask app's settings and clock, as create_app stored them (views read these)."""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from gateway.clock import Clock
from gateway.config import Settings


def settings() -> Settings:
    found: Settings = current_app.config["GATEWAY_SETTINGS"]
    return found


def clock() -> Clock:
    found: Clock = current_app.extensions["gateway_clock"]
    return found


def now() -> datetime:
    """Return the app clock's current time (aware, UTC)."""
    return clock().now()
