"""/api/jobs: list, create, read, edit, delete, trigger, pause and resume one job."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from gateway.api import bodies
from gateway.api import params
from gateway.app_context import now
from gateway.app_context import settings
from gateway.errors import NotFoundError
from gateway.jobspec import check_payload
from gateway.store import jobs as store
from gateway.store.run_queries import run_as_dict

PAUSE_FIELDS = ("note", "until", "fate")


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/jobs", view_func=list_jobs, methods=["GET"])
    bp.add_url_rule("/jobs", view_func=create_job, methods=["POST"])
    bp.add_url_rule("/jobs/<name>", view_func=get_job, methods=["GET"])
    bp.add_url_rule("/jobs/<name>", view_func=update_job, methods=["PATCH"])
    bp.add_url_rule("/jobs/<name>", view_func=delete_job, methods=["DELETE"])
    bp.add_url_rule("/jobs/<name>/trigger", view_func=trigger_job, methods=["POST"])
    bp.add_url_rule("/jobs/<name>/pause", view_func=pause_job, methods=["POST"])
    bp.add_url_rule("/jobs/<name>/resume", view_func=resume_job, methods=["POST"])


def list_jobs() -> Any:
    params.check_known(("tag", "include_deleted"))
    tag = params.text("tag", limit=100)
    include_deleted = params.boolean("include_deleted", False)
    return {"jobs": [store.job_as_dict(j) for j in store.list_jobs(include_deleted, tag)]}


def create_job() -> Any:
    params.check_known(())
    body = bodies.json_object()
    job = store.create_job(body, now(), settings=settings(), source="api")
    return store.job_as_dict(job), 201, {"Location": f"/api/jobs/{job.name}"}


def get_job(name: str) -> Any:
    params.check_known(())
    job = store.get_job(name)
    if job is None:
        raise NotFoundError(f"no job named {name[:100]!r}", field="name")
    return store.job_as_dict(job)


def update_job(name: str) -> Any:
    params.check_known(())
    body = bodies.json_object()
    return store.job_as_dict(store.update_job(name, body, now(), settings=settings()))


def delete_job(name: str) -> Any:
    params.check_known(())
    return store.job_as_dict(store.delete_job(name, now()))


def trigger_job(name: str) -> Any:
    """Queue a manual run; {"payload": ...} replaces the job's own payload for this run."""
    params.check_known(())
    body = bodies.only(bodies.json_object(optional=True), ("payload",))
    payload = check_payload(body["payload"]) if body.get("payload") is not None else None
    run = store.trigger_job(name, now(), payload)
    body = run_as_dict(run)
    return body, 202, {"Location": f"/api/runs/{run.execution_id}"}


def pause_job(name: str) -> Any:
    params.check_known(())
    body = bodies.only(bodies.json_object(optional=True), PAUSE_FIELDS)
    note = bodies.text(body, "note")
    until = bodies.instant(body.get("until"), "until")
    fate = bodies.text(body, "fate", limit=20)
    job = store.pause_job(name, now(), note, until=until, fate=fate)
    return store.job_as_dict(job)


def resume_job(name: str) -> Any:
    params.check_known(())
    bodies.only(bodies.json_object(optional=True), ())
    return store.job_as_dict(store.resume_job(name, now()))
