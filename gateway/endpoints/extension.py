"""CronJobs: the Flask extension that turns functions into token-protected cron endpoints."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask import Flask

from gateway.clock import SYSTEM_CLOCK
from gateway.clock import Clock
from gateway.config import Settings
from gateway.config import load_settings
from gateway.endpoints.context import RunContext
from gateway.errors import ValidationError
from gateway.schedule import Schedule
from gateway.schedule import validate_timezone
from gateway.store.db import ensure_open

JobFunc = Callable[[RunContext], Any]
MODES = ("blocking", "async", "stream")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


@dataclass(frozen=True)
class JobDef:
    """A job declared in code: the function and what the decorator said about it."""

    name: str
    func: JobFunc
    schedule: str | None
    tz: str = "UTC"
    timeout: int = 600
    mode: str = "blocking"
    title: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # policies for the gateway

    def manifest(self, url: str) -> dict[str, Any]:
        """Return the job as `GET /crons` lists it."""
        return {
            "name": self.name,
            "url": url,
            "schedule": self.schedule,
            "tz": self.tz,
            "timeout": self.timeout,
            "mode": self.mode,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            **self.options,
        }


class CronJobs:
    """Cron endpoints for a Flask app.

    Example::

        app = Flask(__name__)
        cron = CronJobs(app)            # or CronJobs() and later cron.init_app(app)

        @cron.job("cleanup", schedule="0 2 * * *", tz="Europe/Berlin", timeout=600)
        def cleanup(ctx):
            ctx.log("deleting expired sessions")
            return {"deleted": 42}      # the run's summary

    Each job is served at ``/crons/<name>`` and needs a token (``X-Cron-Token`` or
    ``Authorization: Bearer``). Every call is recorded as a run in the gateway's database
    (``GATEWAY_DATABASE_URL`` in ``app.config`` or the environment).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        url_prefix: str = "/crons",
        settings: Settings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.url_prefix = url_prefix.rstrip("/")
        self.jobs: dict[str, JobDef] = {}
        self.settings = settings
        self.clock = clock
        if app is not None:
            self.init_app(app)

    def job(
        self,
        name: str,
        *,
        schedule: str | None = None,
        tz: str = "UTC",
        timeout: int = 600,
        mode: str = "blocking",
        title: str = "",
        description: str = "",
        tags: list[str] | tuple[str, ...] = (),
        **options: Any,
    ) -> Callable[[JobFunc], JobFunc]:
        """Register the decorated function as the job `name` (checked now, not at first call)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError(
                f"job name {name!r} must be a slug: a-z, 0-9, '-' and '_'", field="name"
            )
        if name in self.jobs:
            raise ValidationError(f"job {name!r} is declared twice", field="name")
        if mode not in MODES:
            raise ValidationError(f"mode must be one of {', '.join(MODES)}", field="mode")
        if not isinstance(timeout, int) or timeout <= 0:
            raise ValidationError("timeout must be a positive number of seconds", field="timeout")
        validate_timezone(tz)
        if schedule is not None:
            Schedule(schedule, tz, name=name)

        def register(func: JobFunc) -> JobFunc:
            self.jobs[name] = JobDef(
                name, func, schedule, tz, timeout, mode, title, description, tuple(tags), options
            )
            return func

        return register

    def init_app(self, app: Flask) -> None:
        """Mount the endpoints on `app` and read the settings from its config or the env."""
        from gateway.endpoints.views import make_blueprint

        if self.settings is None:
            self.settings = app.config.get("GATEWAY_SETTINGS") or load_settings()
        if self.clock is None:
            self.clock = app.extensions.get("gateway_clock", SYSTEM_CLOCK)
        app.config.setdefault("MAX_CONTENT_LENGTH", self.settings.max_body_bytes)
        app.extensions["cron_gateway"] = self
        app.register_blueprint(make_blueprint(self), url_prefix=self.url_prefix)

    def ensure_database(self) -> None:
        """Open the database on first use (after gunicorn forked), creating the schema."""
        assert self.settings is not None
        ensure_open(self.settings.database_url)
