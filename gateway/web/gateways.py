"""The gateways page: each gateway process, its role and the age of its heartbeat."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import render_template

from gateway.app_context import now
from gateway.app_context import settings
from gateway.store.gateways import list_gateways


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/gateways", view_func=gateways_page, methods=["GET"])


def gateways_page() -> Any:
    moment = now()
    lease = settings().gateway_lease_seconds
    rows = []
    for gw in list_gateways():
        age = (moment - gw.seen_at).total_seconds()
        alive = gw.role != "stopped" and age <= lease
        rows.append({"gateway": gw, "age": age, "alive": alive})
    return render_template("gateways.html", rows=rows, lease=lease)
