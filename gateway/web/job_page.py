"""The job page: next fire times, edit form, Run now, history with filters, charts; preview JSON."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from gateway.app_context import now
from gateway.app_context import settings
from gateway.errors import GatewayError
from gateway.errors import InvalidSchedule
from gateway.errors import NotFoundError
from gateway.jobspec import MISFIRES
from gateway.jobspec import OVERLAPS
from gateway.schedule import Schedule
from gateway.store import jobs as store
from gateway.store.models import RUN_STATUSES
from gateway.store.models import TRIGGERS
from gateway.store.run_queries import RunFilters
from gateway.store.run_queries import page_runs
from gateway.store.run_queries import recent_runs_of
from gateway.web import charts
from gateway.web import forms
from gateway.web.jobs import describe
from gateway.web.jobs import failed

FIRE_TIMES = 10
HISTORY_PAGE = 25
CHART_RUNS = 200
MAX_CURSOR = 2**62


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/jobs/<name>", view_func=job_page, methods=["GET"])
    bp.add_url_rule("/jobs/<name>/edit", view_func=edit, methods=["POST"])
    bp.add_url_rule("/ui/preview", view_func=preview, methods=["GET"])


def job_page(name: str) -> Any:
    try:
        return render_job(name)
    except NotFoundError as e:
        return failed(e)


def edit(name: str) -> Any:
    """Save the edit form; on bad input show the page again with the message, unchanged."""
    try:
        changes = forms.job_changes(request.form)
        store.update_job(name, changes, now(), settings=settings())
    except NotFoundError as e:
        return failed(e)
    except GatewayError as e:
        return render_job(name, error=e, form=request.form), e.status
    flash(f"Saved {name}.", "good")
    return redirect(url_for("ui.job_page", name=name))


def render_job(
    name: str, *, error: GatewayError | None = None, form: Mapping[str, str] | None = None
) -> str:
    """Render the job page; after a failed edit, with the error and what was typed."""
    job = store.live_job(name)
    filters = RunFilters(
        job=name,
        status=_choice("status", RUN_STATUSES),
        trigger=_choice("trigger", TRIGGERS),
    )
    runs, cursor = page_runs(filters, _cursor(), HISTORY_PAGE)
    recent = recent_runs_of([job.id], CHART_RUNS)[job.id]
    return render_template(
        "job.html",
        job=job,
        state=store.job_state(job),
        schedule=describe(job),
        fire_times=_fire_times(job.schedule, job.tz, job.name) if job.enabled else [],
        runs=runs,
        cursor=cursor,
        filters=filters,
        statuses=RUN_STATUSES,
        triggers=TRIGGERS,
        duration_chart=charts.duration_chart(recent),
        success_chart=charts.success_chart(recent),
        zones=zone_names(),
        overlaps=OVERLAPS,
        misfires=MISFIRES,
        error=error,
        form=form or {},
    )


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name)
    return value if value in allowed else None


def _cursor() -> int | None:
    text = request.args.get("before", "")
    return int(text) if text.isdigit() and 0 < int(text) < MAX_CURSOR else None


def _fire_times(expr: str | None, tz: str, name: str) -> list[tuple[Any, str | None]]:
    if not expr:
        return []
    try:
        return Schedule(expr, tz, name=name).dst_notes(now(), FIRE_TIMES)
    except GatewayError:
        return []


@cache
def zone_names() -> tuple[str, ...]:
    """Return the IANA zones for the zone picker, sorted (read once)."""
    names = available_timezones() | {"UTC"}
    return tuple(sorted(n for n in names if not n.startswith(("posix/", "right/"))))


def preview() -> Any:
    """Return what a schedule means and when it fires next, for the edit form as one types."""
    expr = request.args.get("expr", "")[:256].strip()
    tz = request.args.get("tz", "")[:64].strip() or "UTC"
    name = request.args.get("name", "")[:100] or None
    if not expr:
        return {"ok": True, "description": "On demand only: no schedule", "times": []}
    try:
        schedule = Schedule(expr, tz, name=name)
        times = schedule.dst_notes(now(), 5)
    except InvalidSchedule as e:
        # 200: the check worked and its answer is "no" (a 4xx would read as a failed fetch).
        return {"ok": False, "error": e.message, "field": e.field}
    return {
        "ok": True,
        "description": schedule.explain(),
        "times": [{"at": t.isoformat(), "note": note} for t, note in times],
    }
