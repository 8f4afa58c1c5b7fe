"""Cron Gateway: cron jobs as API routes.

The public API is these names; everything else is internal.
"""

from __future__ import annotations

from gateway.errors import InvalidSchedule as InvalidSchedule
