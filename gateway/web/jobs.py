"""The jobs page and the quick actions on a job: pause, resume, run now, delete."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from gateway.app_context import now
from gateway.errors import GatewayError
from gateway.schedule import Schedule
from gateway.store import jobs as store
from gateway.store.job_queries import STATES
from gateway.store.job_queries import JobFilters
from gateway.store.job_queries import page_jobs
from gateway.store.models import RUN_STATUSES
from gateway.store.models import Job
from gateway.store.run_queries import recent_runs_of
from gateway.web import forms
from gateway.web.context import back_to

PAGE_SIZE = 50
STRIP_LENGTH = 20


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/", view_func=jobs_page, methods=["GET"])
    bp.add_url_rule("/jobs/<name>/pause", view_func=pause, methods=["POST"])
    bp.add_url_rule("/jobs/<name>/resume", view_func=resume, methods=["POST"])
    bp.add_url_rule("/jobs/<name>/run", view_func=run_now, methods=["POST"])
    bp.add_url_rule("/jobs/<name>/delete", view_func=delete, methods=["POST"])


def jobs_page() -> Any:
    filters = JobFilters(
        tag=_arg("tag"),
        status=_arg("status"),
        state=_arg("state") if _arg("state") in STATES else None,
        q=_arg("q"),
    )
    page = page_jobs(filters, after=_arg("after"), before=_arg("before"), limit=PAGE_SIZE)
    strips = recent_runs_of([job.id for job in page.jobs], STRIP_LENGTH)
    rows = [_row(job, strips[job.id]) for job in page.jobs]
    return render_template(
        "jobs.html",
        rows=rows,
        page=page,
        filters=filters,
        statuses=(*RUN_STATUSES, "never"),
        states=STATES,
        filtered=any(vars(filters).values()),
    )


def _arg(name: str) -> str | None:
    value = request.args.get(name, "").strip()
    return value[:200] or None


def _row(job: Job, strip: list[Any]) -> dict[str, Any]:
    return {
        "job": job,
        "state": store.job_state(job),
        "schedule": describe(job),
        "strip": list(reversed(strip)),  # oldest left, newest right, as time reads
        "last": strip[0] if strip else None,
    }


def describe(job: Job) -> str:
    """Return the job's schedule in plain words with its zone ('on demand' without one)."""
    if not job.schedule:
        return "On demand only"
    return _words(job.schedule, job.tz, job.name)


@lru_cache(maxsize=4096)
def _words(expr: str, tz: str, name: str) -> str:
    # Cached: parsing and wording a schedule costs about a millisecond; a page shows 50.
    try:
        return Schedule(expr, tz, name=name).explain()
    except GatewayError:
        return f"{expr} ({tz}) — no longer valid"


def pause(name: str) -> Any:
    return _act(lambda: store.pause_job(name, now()), f"Paused {name}.")


def resume(name: str) -> Any:
    return _act(lambda: store.resume_job(name, now()), f"Resumed {name}.")


def delete(name: str) -> Any:
    return _act(lambda: store.delete_job(name, now()), f"Deleted {name}; its runs are kept.", "/")


def run_now(name: str) -> Any:
    try:
        payload = forms.payload(request.form.get("payload", ""))
        run = store.trigger_job(name, now(), payload)
    except GatewayError as e:
        return failed(e)
    link = url_for("ui.run_page", execution_id=run.execution_id)
    flash(f"Queued a run of {name}.", "good")
    flash(link, "run")
    return redirect(back_to(url_for("ui.job_page", name=name)))


def _act(action: Any, message: str, default: str | None = None) -> Any:
    try:
        action()
    except GatewayError as e:
        return failed(e)
    flash(message, "good")
    return redirect(back_to(default or "/"))


def failed(e: GatewayError) -> Any:
    """Render a store error as a page with its 4xx status: nothing was changed."""
    return render_template("message.html", title="Nothing was changed", message=e.message), e.status
