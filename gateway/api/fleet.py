"""/api/jobs/pause and /api/jobs/resume: many jobs at once, by tag or by a list of names."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from gateway.api import bodies
from gateway.api import params
from gateway.app_context import now
from gateway.store import fleet
from gateway.store.jobs import job_as_dict

SELECTORS = ("tag", "names")


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/jobs/pause", view_func=pause_many, methods=["POST"])
    bp.add_url_rule("/jobs/resume", view_func=resume_many, methods=["POST"])


def pause_many() -> Any:
    params.check_known(())
    body = bodies.only(bodies.json_object(), (*SELECTORS, "note", "until", "fate"))
    jobs = fleet.pause_many(
        names=bodies.text_list(body, "names"),
        tag=bodies.text(body, "tag", limit=100),
        now=now(),
        note=bodies.text(body, "note"),
        until=bodies.instant(body.get("until"), "until"),
        fate=bodies.text(body, "fate", limit=20) or "missed",
    )
    return {"jobs": [job_as_dict(j) for j in jobs]}


def resume_many() -> Any:
    params.check_known(())
    body = bodies.only(bodies.json_object(), SELECTORS)
    jobs = fleet.resume_many(
        names=bodies.text_list(body, "names"),
        tag=bodies.text(body, "tag", limit=100),
        now=now(),
    )
    return {"jobs": [job_as_dict(j) for j in jobs]}
