"""The gateway's periodic sync, passed over while nothing it would act on has changed.

A resync reads the apps' manifests and the jobs file every few minutes. Applying them means
parsing and validating every declaration and comparing it with its row: about 8 s of CPU and
200 MB for a file of 100,000 jobs. What it reads is cheap to fetch and hash, and what it would
change in the store shows in one aggregate query, so most resyncs end there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from typing import cast

from peewee import Case
from peewee import fn

from gateway.config import Settings
from gateway.store.models import Job
from gateway.sync import SyncReport
from gateway.sync import apply_sources
from gateway.sync import read_sources

# Even with nothing seen to change, apply everything this often: a safety net for a change the
# aggregate cannot see (an edit stamped by a host whose clock is behind).
FULL_EVERY_SECONDS = 3600.0


class Resync:
    """Sync when the sources or the stored jobs changed since the last clean sync, or when a
    full sync is due. One gateway loop owns one; it is not shared between threads."""

    def __init__(self, settings: Settings, full_every: float = FULL_EVERY_SECONDS) -> None:
        self.settings = settings
        self.full_every = full_every
        self._seen: tuple[str, tuple[Any, ...]] | None = None  # after the last clean sync
        self._full_at = 0.0

    def run(self, now: Callable[[], datetime], tick: float) -> SyncReport | None:
        """Sync, or return None if nothing changed since the last sync without errors.

        `now` is read once the sources are in (a manifest may take seconds); `tick` is
        monotonic seconds (the full-sync rhythm). A bad jobs file raises GatewayError as
        sync_jobs does, and the next call tries again.
        """
        sources = read_sources(self.settings)
        # The store as it was before applying: a change made meanwhile, by this sync or anyone
        # else, makes the next resync apply in full again (and that one finds nothing to do).
        seen = (sources.digest(), stored_state())
        if seen == self._seen and tick < self._full_at:
            return None
        self._seen = None
        report = apply_sources(sources, self.settings, now())
        if not report.errors:  # a sync with errors is tried in full again, errors logged again
            self._seen = seen
            self._full_at = tick + self.full_every
        return report


def stored_state() -> tuple[Any, ...]:
    """Return what changes whenever a sync with the same sources could act differently: a job
    was added (count, highest id), edited, paused, deleted or orphaned (latest updated_at), or
    left without a next slot while enabled (claims do that without touching updated_at)."""
    unslotted = Case(None, [(Job.enabled & Job.next_run_at.is_null(), 1)], 0)
    query = Job.select(fn.COUNT(Job.id), fn.MAX(Job.id), fn.MAX(Job.updated_at), fn.SUM(unslotted))
    return cast(tuple[Any, ...], query.tuples().get())
