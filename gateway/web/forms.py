"""Form fields to job fields: text boxes become numbers, lists and JSON, or a named error."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway.errors import ValidationError

TEXT_FIELDS = ("title", "description", "url", "method", "tz", "overlap", "misfire")
NUMBER_FIELDS = ("timeout", "max_attempts", "backoff", "catchup_window")
OPTIONAL_NUMBER_FIELDS = ("max_runs", "auto_pause_after")
CHECKBOXES = ("retry_abandoned",)


def job_changes(form: Mapping[str, str]) -> dict[str, Any]:
    """Return the edit form's fields as a partial job definition for `update_job`.

    Only fields present in the form are changed. An empty schedule means "on demand only";
    an empty payload means none.
    """
    changes: dict[str, Any] = {f: form[f].strip() for f in TEXT_FIELDS if f in form}
    if "schedule" in form:
        changes["schedule"] = form["schedule"].strip() or None
    for name in NUMBER_FIELDS:
        if name in form:
            changes[name] = _number(name, form[name])
    for name in OPTIONAL_NUMBER_FIELDS:
        if name in form:
            changes[name] = _number(name, form[name]) if form[name].strip() else None
    if "tags" in form:
        changes["tags"] = [t.strip() for t in form["tags"].replace(",", " ").split() if t.strip()]
    if "payload_json" in form:
        changes["payload"] = payload(form["payload_json"])
    if "has_checkboxes" in form:  # an unticked box sends nothing: the marker says it was shown
        for name in CHECKBOXES:
            changes[name] = name in form
    return changes


def payload(text: str) -> Any:
    """Return the JSON in `text`, None if it is blank, or raise naming the payload field."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValidationError(f"payload: not valid JSON ({e})", field="payload") from None


def _number(name: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValidationError(
            f"{name}: {text.strip()[:40]!r} is not a whole number", field=name
        ) from None
