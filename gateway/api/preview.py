"""/api/schedule/preview: the next fire times of an expression, with offsets and DST notes."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flask import Blueprint

from gateway.api import params
from gateway.app_context import now
from gateway.errors import InvalidSchedule
from gateway.errors import ValidationError
from gateway.schedule import Schedule

MAX_COUNT = 100


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/schedule/preview", view_func=preview, methods=["GET"])


def preview() -> Any:
    params.check_known(("expr", "tz", "count", "name", "after"))
    expr = params.text("expr", limit=256)
    if not expr or not expr.strip():
        raise ValidationError("expr: a cron expression is required, e.g. '0 3 * * *'", field="expr")
    tz = params.text("tz", limit=64) or "UTC"
    name = params.text("name", limit=100)
    count = params.integer("count", 5, 1, MAX_COUNT)
    after = params.time("after") or now()
    try:
        schedule = Schedule(expr.strip(), tz, name=name)
    except InvalidSchedule as e:
        # The query names the expression `expr`; the schedule calls it `schedule`.
        field = "expr" if e.field == "schedule" else e.field
        raise InvalidSchedule(e.message, field=field) from None
    return {
        "expr": schedule.expr,
        "tz": schedule.tz,
        "description": schedule.explain(),
        "fixed_time": schedule.fixed_time,
        "after": after.isoformat(),
        "times": [_time(t, note) for t, note in schedule.dst_notes(after, count)],
    }


def _time(fire: Any, note: str | None) -> dict[str, Any]:
    offset = fire.strftime("%z")
    return {
        "at": fire.isoformat(),
        "utc": fire.astimezone(UTC).isoformat(),
        "offset": f"{offset[:3]}:{offset[3:]}" if offset else "+00:00",
        "note": note,
    }
