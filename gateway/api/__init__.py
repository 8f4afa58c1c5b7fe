"""The management API under /api: admin-only JSON routes over the store's service functions."""

from __future__ import annotations

from flask import Blueprint

from gateway.api import fleet
from gateway.api import gateways
from gateway.api import jobs
from gateway.api import keys
from gateway.api import preview
from gateway.api import runs
from gateway.api.auth import require_admin
from gateway.api.errors import API_PREFIX
from gateway.api.errors import install_error_handlers


def make_api_blueprint() -> Blueprint:
    """Return the /api blueprint: every route requires an admin key; every error is JSON."""
    bp = Blueprint("api", __name__, url_prefix=API_PREFIX)
    bp.before_request(require_admin)
    install_error_handlers(bp)
    fleet.register(bp)  # before jobs: /jobs/pause is not a job named "pause"
    for module in (jobs, runs, preview, keys, gateways):
        module.register(bp)
    return bp
