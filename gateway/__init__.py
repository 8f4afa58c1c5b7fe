"""Cron Gateway: cron jobs as API routes.

The public API is these names; everything else is internal. They are imported when first
used, so that a process needing only part of the package (a sender process, the CLI's quick
commands) does not load Flask and the whole web app.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.app import create_app as create_app
    from gateway.endpoints.extension import CronJobs as CronJobs
    from gateway.errors import InvalidSchedule as InvalidSchedule
    from gateway.schedule import Schedule as Schedule

__all__ = ["CronJobs", "InvalidSchedule", "Schedule", "create_app"]

_HOMES = {
    "CronJobs": "gateway.endpoints.extension",
    "InvalidSchedule": "gateway.errors",
    "Schedule": "gateway.schedule",
    "create_app": "gateway.app",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'gateway' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
