"""Query parameters: known names only; numbers, times and choices checked, each naming itself."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from flask import request

from gateway.api.bodies import instant
from gateway.errors import ValidationError


def check_known(known: Iterable[str]) -> None:
    """Raise if the query string has a parameter outside `known`, or one given twice."""
    allowed = tuple(known)
    for name in request.args:
        if name not in allowed:
            hint = f"known: {', '.join(allowed)}" if allowed else "this route takes none"
            raise ValidationError(f"unknown query parameter {name[:80]!r} ({hint})", field=name)
        if len(request.args.getlist(name)) > 1:
            raise ValidationError(f"{name}: given more than once", field=name)


def text(name: str, *, limit: int = 200) -> str | None:
    value = request.args.get(name)
    if value is None:
        return None
    if len(value) > limit:
        raise ValidationError(f"{name}: longer than {limit} characters", field=name)
    return value


def integer(name: str, default: int, low: int, high: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise ValidationError(f"{name}: {value[:40]!r} is not a whole number", field=name)
    number = int(value)
    if not low <= number <= high:
        raise ValidationError(f"{name}: {number} is not between {low} and {high}", field=name)
    return number


def choice(name: str, options: Iterable[str]) -> str | None:
    value = request.args.get(name)
    allowed = tuple(options)
    if value is not None and value not in allowed:
        raise ValidationError(
            f"{name}: {value[:40]!r} is not one of {', '.join(allowed)}", field=name
        )
    return value


def boolean(name: str, default: bool) -> bool:
    value = request.args.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise ValidationError(f"{name}: {value[:40]!r} is not true or false", field=name)
    return value == "true"


def time(name: str) -> datetime | None:
    return instant(request.args.get(name), name)
