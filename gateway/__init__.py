"""Cron Gateway: cron jobs as API routes.

The public API is these names; everything else is internal.
"""

from __future__ import annotations

from gateway.app import create_app as create_app
from gateway.endpoints.extension import CronJobs as CronJobs
from gateway.errors import InvalidSchedule as InvalidSchedule
from gateway.schedule import Schedule as Schedule

__all__ = ["CronJobs", "InvalidSchedule", "Schedule", "create_app"]
