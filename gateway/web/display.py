"""How values look on the pages: relative and absolute times, durations, JSON, status names."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint

from gateway.app_context import now

GOOD = ("success",)
BAD = ("error", "timeout", "abandoned")
ACTIVE = ("queued", "dispatched", "running")


def install(bp: Blueprint) -> None:
    for name, func in (
        ("ago", ago),
        ("at", at),
        ("duration", duration),
        ("pretty_json", pretty_json),
        ("tone", tone),
    ):
        bp.add_app_template_filter(func, name)


def ago(value: datetime | None) -> str:
    """Return `value` relative to now: 'in 4 min', '2 h ago', 'just now'; '—' for None."""
    if value is None:
        return "—"
    seconds = (value - now()).total_seconds()
    words = _span(abs(seconds))
    if words == "now":
        return "just now"
    return f"in {words}" if seconds > 0 else f"{words} ago"


def _span(seconds: float) -> str:
    if seconds < 1:
        return "now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def at(value: datetime | None, tz: str = "UTC") -> str:
    """Return `value` as '2026-11-23 09:05:00 UTC' (or in the zone `tz`, with its offset)."""
    if value is None:
        return "—"
    if tz == "UTC":
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z (%z)")


def duration(ms: int | None) -> str:
    """Return milliseconds as '850 ms', '12.3 s', '4 min 05 s'; '—' for None."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes} min {seconds:02d} s"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def tone(status: str | None) -> str:
    """Return the colour class of a status: good, bad, active, quiet or none."""
    if status is None:
        return "none"
    if status in GOOD:
        return "good"
    if status in BAD:
        return "bad"
    if status in ACTIVE:
        return "active"
    return "quiet"
