"""The run page: timings, lateness, attempts with their errors, summary, response, live log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import render_template

from gateway.errors import NotFoundError
from gateway.store.run_queries import attempts_of
from gateway.web.jobs import failed

MAX_EXECUTION_ID = 36


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/runs/<execution_id>", view_func=run_page, methods=["GET"])


def run_page(execution_id: str) -> Any:
    attempts = attempts_of(execution_id[:MAX_EXECUTION_ID])
    if not attempts:
        return failed(NotFoundError(f"no run with execution id {execution_id[:40]!r}"))
    run = attempts[-1]
    return render_template(
        "run.html",
        run=run,
        attempts=attempts,
        active=run.status in ("queued", "dispatched", "running"),
    )
