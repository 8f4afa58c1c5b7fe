"""The OpenAPI schemas of the API's bodies and answers (components of /openapi.json)."""

from __future__ import annotations

from typing import Any

from gateway.jobspec import FIELDS
from gateway.jobspec import METHODS
from gateway.jobspec import MISFIRES
from gateway.jobspec import MODES
from gateway.jobspec import OVERLAPS
from gateway.store.keys import SCOPES
from gateway.store.models import RUN_STATUSES
from gateway.store.models import TRIGGERS

Schema = dict[str, Any]
STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
ANY: Schema = {}
TIME: Schema = {"type": "string", "format": "date-time"}
SLUG: Schema = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,99}$"}


def null(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Schema], *, required: tuple[str, ...] | None = None) -> Schema:
    """An object with `props`; all required unless `required` says which (responses: all)."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props if required is None else required),
    }


def closed(props: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """A request body: only these fields."""
    return {**obj(props, required=required), "additionalProperties": False}


JOB_FIELDS: dict[str, Schema] = {
    "name": SLUG,
    "title": {"type": "string", "maxLength": 200},
    "description": {"type": "string", "maxLength": 10_000},
    "url": {"type": "string", "maxLength": 2000, "description": "a path on the app, or http(s)"},
    "method": {"type": "string", "enum": list(METHODS)},
    "headers": {"type": "object", "additionalProperties": STR},
    "payload": ANY,
    "schedule": null(STR),
    "tz": {"type": "string", "description": "IANA time zone", "examples": ["Europe/Berlin"]},
    "mode": {"type": "string", "enum": list(MODES)},
    "enabled": BOOL,
    "tags": {"type": "array", "items": SLUG, "maxItems": 20},
    "timeout": {"type": "integer", "minimum": 1, "maximum": 86_400},
    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
    "backoff": {"type": "integer", "minimum": 0, "maximum": 3600},
    "overlap": {"type": "string", "enum": list(OVERLAPS)},
    "misfire": {"type": "string", "enum": list(MISFIRES)},
    "catchup_window": {"type": "integer", "minimum": 0, "maximum": 7 * 24 * 3600},
    "max_runs": null({"type": "integer", "minimum": 1}),
    "retry_abandoned": BOOL,
    "auto_pause_after": null({"type": "integer", "minimum": 1, "maximum": 1000}),
    "signed": {"type": "boolean", "description": "send X-Cron-Signature to this target"},
    "watch_only": {"type": "boolean", "description": "never called by the gateway, only watched"},
    "expect_every": null({"type": "integer", "minimum": 60, "maximum": 366 * 24 * 3600}),
    "grace": null({"type": "integer", "minimum": 0, "maximum": 7 * 24 * 3600}),
    "min_duration_ms": null({"type": "integer", "minimum": 0}),
    "max_duration_ms": null({"type": "integer", "minimum": 1}),
}
# What a request may carry is what validate_job knows; a test checks each field is typed above.
JOB_INPUT: dict[str, Schema] = {f: JOB_FIELDS.get(f, ANY) for f in FIELDS}
JOB_STATE: dict[str, Schema] = {
    "run_count": INT,
    "pause_note": null(STR),
    "pause_fate": null(STR),
    "signed": BOOL,
    "last_status": null(STR),
    "consecutive_failures": INT,
    "source": STR,
    "state": {"type": "string", "enum": ["enabled", "paused", "orphaned", "deleted"]},
    **{
        t: null(TIME) for t in "next_run_at last_run_at deleted_at orphaned_at paused_until".split()
    },
    "created_at": TIME,
    "updated_at": TIME,
}
RUN: Schema = obj(
    {
        "job": STR,
        "execution_id": {"type": "string", "format": "uuid"},
        "attempt": INT,
        "trigger": {"type": "string", "enum": list(TRIGGERS)},
        "status": {"type": "string", "enum": list(RUN_STATUSES)},
        "scheduled_for": null(TIME),
        "queued_at": TIME,
        "started_at": null(TIME),
        "finished_at": null(TIME),
        "duration_ms": null(INT),
        "lateness_ms": null(INT),
        "http_status": null(INT),
        "summary": ANY,
        "error": null(STR),
        "caller": null(STR),
        "gateway": null(STR),
        "missed_count": null(INT),
        "progress": null(obj({"done": INT, "total": null(INT)})),
    }
)
ATTEMPT: Schema = {
    "allOf": [
        ref("Run"),
        obj(
            {
                "due_at": null(TIME),
                "dispatched_at": null(TIME),
                "payload": ANY,
                "log": null(STR),
                "response_excerpt": null(STR),
                "error_stack": null(STR),
            }
        ),
    ]
}
KEY: Schema = obj(
    {
        "name": STR,
        "scope": {"type": "string", "enum": list(SCOPES)},
        "job": null(STR),
        "prefix": STR,
        "created_at": TIME,
        "last_used_at": null(TIME),
        "revoked_at": null(TIME),
    }
)
FIRE: Schema = obj(
    {
        "at": {**TIME, "description": "in the schedule's zone, with its UTC offset"},
        "utc": TIME,
        "offset": {"type": "string", "pattern": "^[+-][0-9]{2}:[0-9]{2}$"},
        "note": null({"type": "string", "description": "what a DST change did to this time"}),
    }
)
GATEWAY: Schema = obj(
    {
        "instance": STR,
        "host": STR,
        "pid": INT,
        "role": STR,
        "started_at": TIME,
        "seen_at": TIME,
        "heartbeat_age_seconds": {"type": "number", "minimum": 0},
        "alive": BOOL,
    }
)
PAUSE_FIELDS: dict[str, Schema] = {
    "note": null({"type": "string", "maxLength": 1000}),
    "until": null({**TIME, "description": "resume by itself then (with an offset)"}),
    "fate": null({"type": "string", "enum": ["missed", "once"]}),
}
SELECTOR: dict[str, Schema] = {
    "tag": null(SLUG),
    "names": null({"type": "array", "items": SLUG, "minItems": 1}),
}
SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {"error": obj({"code": STR, "message": STR, "field": null(STR)})},
    ),
    "Job": obj({**JOB_FIELDS, **JOB_STATE}),
    "JobList": obj({"jobs": {"type": "array", "items": ref("Job")}}),
    "JobCreate": closed(JOB_INPUT, ("name", "url")),
    "JobPatch": closed(JOB_INPUT),
    "Trigger": closed({"payload": {"description": "sent as the run's JSON body"}}),
    "Pause": closed(PAUSE_FIELDS),
    "Empty": closed({}),
    "FleetPause": closed({**SELECTOR, **PAUSE_FIELDS}),
    "FleetResume": closed(SELECTOR),
    "Run": RUN,
    "Attempt": ATTEMPT,
    "RunDetail": {
        "allOf": [ref("Run"), obj({"attempts": {"type": "array", "items": ref("Attempt")}})]
    },
    "RunPage": obj(
        {
            "runs": {"type": "array", "items": ref("Run")},
            "next": null({"type": "string", "description": "pass as `before` for the next page"}),
        }
    ),
    "Preview": obj(
        {
            "expr": STR,
            "tz": STR,
            "description": STR,
            "fixed_time": BOOL,
            "after": TIME,
            "times": {"type": "array", "items": FIRE},
        }
    ),
    "Key": KEY,
    "KeyList": obj({"keys": {"type": "array", "items": ref("Key")}}),
    "KeyCreate": closed(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "scope": {"type": "string", "enum": list(SCOPES)},
            "job": null({**SLUG, "description": "an invoke key for this job only"}),
        },
        ("name", "scope"),
    ),
    "KeyCreated": {
        "allOf": [ref("Key"), obj({"secret": {"type": "string", "description": "shown once"}})]
    },
    "GatewayList": obj({"gateways": {"type": "array", "items": GATEWAY}}),
}
