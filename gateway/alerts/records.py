"""Read recorded alerts: newest first, for the CLI."""

from __future__ import annotations

from typing import Any

from gateway.store.models import Alert
from gateway.store.models import Job


def list_alerts(*, job: str | None = None, only_open: bool = False, limit: int = 50) -> list[Alert]:
    """Return alerts newest first, with their job's name (`alert.job.name`) in the same query."""
    query = Alert.select(Alert, Job.name).join(Job).order_by(Alert.id.desc()).limit(limit)
    if job is not None:
        query = query.where(Job.name == job)
    if only_open:
        query = query.where(Alert.state == "open")
    return list(query)


def alert_as_dict(alert: Alert) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": alert.id,
        "job": alert.job.name,
        "kind": alert.kind,
        "state": alert.state,
        "opened_at": iso(alert.opened_at),
        "closed_at": iso(alert.closed_at),
        "message": alert.message,
        "delivered_at": iso(alert.delivered_at),
        "attempts": alert.attempts,
        "next_attempt_at": iso(alert.next_attempt_at),
        "last_error": alert.last_error,
    }
