"""/api/gateways: each gateway process, its role and how long ago it was last seen."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint

from gateway.api import params
from gateway.app_context import now
from gateway.app_context import settings
from gateway.store.gateways import list_gateways
from gateway.store.models import Gateway


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/gateways", view_func=gateways, methods=["GET"])


def gateways() -> Any:
    params.check_known(())
    current, lease = now(), settings().gateway_lease_seconds
    return {"gateways": [_gateway(g, current, lease) for g in list_gateways()]}


def _gateway(row: Gateway, current: datetime, lease: float) -> dict[str, Any]:
    age = max(0.0, (current - row.seen_at).total_seconds())
    return {
        "instance": row.instance,
        "host": row.host,
        "pid": row.pid,
        "role": row.role,
        "started_at": row.started_at.isoformat(),
        "seen_at": row.seen_at.isoformat(),
        "heartbeat_age_seconds": round(age, 3),
        # A gateway silent for longer than its lease has lost it: a standby may take over.
        "alive": row.role != "stopped" and age <= lease,
    }
