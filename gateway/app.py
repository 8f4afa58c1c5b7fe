"""create_app(settings=None, *, clock=None): the gateway's web app (health, metrics, /api, UI)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from gateway.api import make_api_blueprint
from gateway.api.openapi import openapi_document
from gateway.clock import SYSTEM_CLOCK
from gateway.clock import Clock
from gateway.config import Settings
from gateway.config import load_settings
from gateway.observability import init_observability
from gateway.web import init_ui

logger = logging.getLogger("gateway.app")


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Flask:
    """Return the gateway's Flask app.

    Example::

        from gateway import CronJobs, create_app

        app = create_app()              # settings from GATEWAY_* and config/gateway.toml
        cron = CronJobs(app)            # cron endpoints of this app under /crons

    The database opens on the first request, so gunicorn workers each open their own.
    """
    settings = settings or load_settings()
    app = Flask("gateway")
    app.config["GATEWAY_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["gateway_clock"] = clock or SYSTEM_CLOCK

    init_observability(app, settings)  # /healthz and /metrics

    app.register_blueprint(make_api_blueprint())

    init_ui(app)  # the web UI at /: pages behind a session login

    @app.get("/openapi.json")
    def openapi() -> Any:
        return openapi_document()

    return app
