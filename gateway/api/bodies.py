"""JSON request bodies: one object, known fields only, each of the expected type."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import request

from gateway.errors import MalformedBodyError
from gateway.errors import ValidationError


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_object(*, optional: bool = False) -> dict[str, Any]:
    """Return the request body as a JSON object; an empty body is {} when `optional`.

    A body over the size limit raises 413 (werkzeug's RequestEntityTooLarge) before parsing.
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        if optional:
            return {}
        raise MalformedBodyError("the request needs a JSON object as its body")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise MalformedBodyError(f"the body is not valid JSON: {_short(str(e))}") from None
    if not isinstance(body, dict):
        raise MalformedBodyError(f"the body must be a JSON object, not {type(body).__name__}")
    return body


def only(body: dict[str, Any], known: Iterable[str]) -> dict[str, Any]:
    """Return `body` if it has no field outside `known`; else raise naming the first stranger."""
    allowed = tuple(known)
    for key in body:
        if key not in allowed:
            raise ValidationError(
                f"unknown field {_short(key)!r} (known: {', '.join(allowed)})", field=key
            )
    return body


def text(
    body: dict[str, Any], field: str, *, required: bool = False, limit: int = 1000
) -> str | None:
    """Return the string field `field`, or None if it is absent or null (and not required)."""
    value = body.get(field)
    if value is None:
        if required:
            raise ValidationError(f"{field}: is required", field=field)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field}: expected a string, not {_kind(value)}", field=field)
    if required and not value:
        raise ValidationError(f"{field}: must not be empty", field=field)
    if len(value) > limit:
        raise ValidationError(f"{field}: longer than {limit} characters", field=field)
    return value


def text_list(body: dict[str, Any], field: str, *, limit: int = 1000) -> list[str] | None:
    """Return the list of strings `field`, or None if it is absent or null."""
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{field}: expected a list of strings", field=field)
    if len(value) > limit:
        raise ValidationError(f"{field}: more than {limit} items", field=field)
    return value


def instant(value: Any, field: str) -> datetime | None:
    """Return an ISO-8601 time with an offset as an aware datetime; None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(
            f"{field}: expected an ISO-8601 time, not {_kind(value)}", field=field
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"{field}: {_short(value)!r} is not an ISO-8601 time", field=field
        ) from None
    if parsed.utcoffset() is None:
        raise ValidationError(
            f"{field}: {_short(value)!r} has no UTC offset; add Z or +01:00", field=field
        )
    return parsed


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list"}.get(
        type(value), "an object" if isinstance(value, dict) else type(value).__name__
    )


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
