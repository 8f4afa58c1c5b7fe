"""/api/runs and /api/jobs/<name>/runs: filtered, keyset-paginated history; one execution."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import Blueprint

from gateway.api import params
from gateway.errors import NotFoundError
from gateway.errors import ValidationError
from gateway.store.jobs import get_job
from gateway.store.models import RUN_STATUSES
from gateway.store.models import TRIGGERS
from gateway.store.models import Run
from gateway.store.run_queries import RunFilters
from gateway.store.run_queries import attempts_of
from gateway.store.run_queries import page_runs
from gateway.store.run_queries import run_as_dict

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR = 2**62
FILTERS = ("job", "status", "trigger", "since", "until", "q", "limit", "before")


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/runs", view_func=list_runs, methods=["GET"])
    bp.add_url_rule("/jobs/<name>/runs", view_func=job_runs, methods=["GET"])
    bp.add_url_rule("/runs/<execution_id>", view_func=get_run, methods=["GET"])


def list_runs() -> Any:
    params.check_known(FILTERS)
    return _page(params.text("job", limit=100))


def job_runs(name: str) -> Any:
    params.check_known(tuple(f for f in FILTERS if f != "job"))
    if get_job(name) is None:
        raise NotFoundError(f"no job named {name[:100]!r}", field="name")
    return _page(name)


def _page(job: str | None) -> dict[str, Any]:
    filters = RunFilters(
        job=job,
        status=params.choice("status", RUN_STATUSES),
        trigger=params.choice("trigger", TRIGGERS),
        since=params.time("since"),
        until=params.time("until"),
        q=params.text("q", limit=200) or None,
    )
    limit = params.integer("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    before = params.integer("before", 0, 1, MAX_CURSOR) or None
    _check_window(filters.since, filters.until)
    found, cursor = page_runs(filters, before, limit)
    return {
        "runs": [run_as_dict(r) for r in found],
        "next": str(cursor) if cursor is not None else None,
    }


def _check_window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since > until:
        raise ValidationError("until: is before since", field="until")


def get_run(execution_id: str) -> Any:
    """Return the execution's latest attempt, with every attempt in `attempts`."""
    params.check_known(())
    normal = _normal_uuid(execution_id)
    found = attempts_of(normal) if normal is not None else []
    if not found:
        raise NotFoundError(f"no run with execution id {execution_id[:40]!r}", field=None)
    return {**run_as_dict(found[-1]), "attempts": [_attempt(r) for r in found]}


def _attempt(run: Run) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        **run_as_dict(run),
        "due_at": iso(run.due_at),
        "dispatched_at": iso(run.dispatched_at),
        "payload": run.payload,
        "log": run.log,
        "response_excerpt": run.response_excerpt,
        "error_stack": run.error_stack,
    }


def _normal_uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
