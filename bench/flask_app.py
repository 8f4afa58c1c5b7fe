"""The endpoint scenario's apps: one CronJobs job that returns at once, and a bare route.

gunicorn -w 2 -k gthread 'bench.flask_app:protected_app()'   # POST /crons/ping0..7 + token
gunicorn -w 2 -k gthread 'bench.flask_app:bare_app()'        # POST /ping
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask import jsonify

from gateway import CronJobs


def protected_app() -> Flask:
    app = Flask(__name__)
    cron = CronJobs(app)

    def ping(ctx: Any) -> dict[str, int]:
        return {"ok": 1}

    # One job per load thread: a job never overlaps itself (a second call at once gets 409).
    for k in range(8):
        cron.job(f"ping{k}")(ping)
    return app


def bare_app() -> Flask:
    app = Flask(__name__)

    @app.route("/ping", methods=["GET", "POST"])
    def ping() -> Any:
        return jsonify(ok=1)

    return app
