"""/openapi.json: the management API described by hand (OpenAPI 3.1), kept true by a test."""

from __future__ import annotations

from typing import Any

from gateway.api.schemas import SCHEMAS
from gateway.api.schemas import SLUG
from gateway.api.schemas import TIME
from gateway.api.schemas import Schema
from gateway.api.schemas import ref
from gateway.store.models import RUN_STATUSES
from gateway.store.models import TRIGGERS

ERRORS = {
    400: "bad input: malformed JSON, wrong type, unknown field or parameter, invalid value",
    401: "missing or invalid token",
    403: "the key is not an admin key",
    404: "no such job, run, key or route",
    405: "method not allowed on this path",
    409: "conflict: the name is taken",
    413: "request body too large",
    429: "too many bad tokens from this address; slow down",
    500: "internal error (logged; never a traceback)",
}
COMMON = (400, 401, 403, 405, 429, 500)


def _param(name: str, schema: Schema, where: str = "query", text: str = "") -> dict[str, Any]:
    found = {"name": name, "in": where, "required": where == "path", "schema": schema}
    return {**found, "description": text} if text else found


NAME = _param("name", SLUG, "path", "the job's name")
PAGE = [
    _param("status", {"type": "string", "enum": list(RUN_STATUSES)}),
    _param("trigger", {"type": "string", "enum": list(TRIGGERS)}),
    _param("since", TIME, text="queued at or after (ISO-8601 with offset)"),
    _param("until", TIME, text="queued before (ISO-8601 with offset)"),
    _param("q", {"type": "string", "maxLength": 200}, text="text in the error or summary"),
    _param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
    _param("before", {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}, text="`next` cursor"),
]


def _op(
    summary: str,
    ok: int,
    answer: str | None,
    *,
    params: list[dict[str, Any]] | None = None,
    body: str | None = None,
    body_required: bool = True,
    errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(ok): {"description": "done"}
        if answer is None
        else {"description": "done", "content": {"application/json": {"schema": ref(answer)}}}
    }
    statuses = sorted({*COMMON, *errors, *((413,) if body else ())})
    for status in statuses:
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": ref(body)}},
        }
    return op


PATHS: dict[str, dict[str, Any]] = {
    "/api/jobs": {
        "get": _op(
            "List jobs by name",
            200,
            "JobList",
            params=[
                _param("tag", SLUG),
                _param("include_deleted", {"type": "string", "enum": ["true", "false"]}),
            ],
        ),
        "post": _op("Create a job", 201, "Job", body="JobCreate", errors=(409,)),
    },
    "/api/jobs/{name}": {
        "get": _op("Read a job (deleted ones too)", 200, "Job", params=[NAME], errors=(404,)),
        "patch": _op("Change a job", 200, "Job", params=[NAME], body="JobPatch", errors=(404,)),
        "delete": _op("Soft-delete a job", 200, "Job", params=[NAME], errors=(404,)),
    },
    "/api/jobs/{name}/trigger": {
        "post": _op(
            "Queue a manual run now (optionally with its own payload)",
            202,
            "Run",
            params=[NAME],
            body="Trigger",
            body_required=False,
            errors=(404,),
        )
    },
    "/api/jobs/{name}/pause": {
        "post": _op(
            "Pause a job, with a note and an optional end time",
            200,
            "Job",
            params=[NAME],
            body="Pause",
            body_required=False,
            errors=(404,),
        )
    },
    "/api/jobs/{name}/resume": {
        "post": _op(
            "Resume a paused job",
            200,
            "Job",
            params=[NAME],
            body="Empty",
            body_required=False,
            errors=(404,),
        )
    },
    "/api/jobs/{name}/runs": {
        "get": _op(
            "Runs of one job, newest first", 200, "RunPage", params=[NAME, *PAGE], errors=(404,)
        )
    },
    "/api/jobs/pause": {
        "post": _op(
            "Pause many jobs by tag or names", 200, "JobList", body="FleetPause", errors=(404,)
        )
    },
    "/api/jobs/resume": {
        "post": _op(
            "Resume many jobs by tag or names", 200, "JobList", body="FleetResume", errors=(404,)
        )
    },
    "/api/runs": {
        "get": _op(
            "Runs, newest first, filtered, keyset-paginated",
            200,
            "RunPage",
            params=[_param("job", {"type": "string", "maxLength": 100}), *PAGE],
        )
    },
    "/api/runs/{execution_id}": {
        "get": _op(
            "One execution: its latest attempt, with all attempts",
            200,
            "RunDetail",
            params=[_param("execution_id", {"type": "string", "format": "uuid"}, "path")],
            errors=(404,),
        )
    },
    "/api/schedule/preview": {
        "get": _op(
            "Next fire times of an expression, with offsets, DST notes and a description",
            200,
            "Preview",
            params=[
                {**_param("expr", {"type": "string", "maxLength": 256}), "required": True},
                _param("tz", {"type": "string", "maxLength": 64, "default": "UTC"}),
                _param("count", {"type": "integer", "minimum": 1, "maximum": 100, "default": 5}),
                _param("name", {"type": "string", "maxLength": 100}, text="seeds H"),
                _param("after", TIME, text="default: now"),
            ],
        )
    },
    "/api/keys": {
        "get": _op(
            "List keys (never their secrets)",
            200,
            "KeyList",
            params=[_param("include_revoked", {"type": "string", "enum": ["true", "false"]})],
        ),
        "post": _op(
            "Create a key; its secret is shown once",
            201,
            "KeyCreated",
            body="KeyCreate",
            errors=(409,),
        ),
    },
    "/api/keys/{name}": {
        "delete": _op(
            "Revoke a key (at once, in every worker)",
            200,
            "Key",
            params=[_param("name", {"type": "string", "maxLength": 100}, "path")],
            errors=(404,),
        )
    },
    "/api/gateways": {"get": _op("Gateway processes and their heartbeats", 200, "GatewayList")},
}


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of the management API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cron Gateway management API",
            "version": "1",
            "description": 'Every error is {"error": {"code", "message", "field"}}.',
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "responses": {
                f"E{status}": {
                    "description": text,
                    "content": {"application/json": {"schema": ref("Error")}},
                }
                for status, text in ERRORS.items()
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
