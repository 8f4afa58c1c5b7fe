"""Four jobs that look like real work: cleanup, a streamed report, a flaky ping, an async sync."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from peewee import CharField
from peewee import IntegerField
from peewee import fn

from gateway import CronJobs
from gateway.clock import SYSTEM_CLOCK
from gateway.endpoints.context import RunContext
from gateway.store.fields import UTCDateTimeField
from gateway.store.models import BaseModel

cron = CronJobs()


class DemoSession(BaseModel):
    """The demo app's login sessions: rows that expire, as in any web app."""

    user = CharField(max_length=100)
    expires_at = UTCDateTimeField(index=True)

    class Meta:
        table_name = "demo_session"


class DemoOrder(BaseModel):
    """The demo app's orders, summed up by the report."""

    team = CharField(max_length=50)
    cents = IntegerField()

    class Meta:
        table_name = "demo_order"


def _demo_tables() -> None:
    """Create and fill the demo tables the first time (a real app has its own data)."""
    DemoSession.create_table(safe=True)
    DemoOrder.create_table(safe=True)
    if not DemoOrder.select().exists():
        now = SYSTEM_CLOCK.now()
        DemoSession.insert_many(
            [{"user": f"user{i}", "expires_at": now + timedelta(hours=i - 10)} for i in range(20)]
        ).execute()
        teams = ["billing", "growth", "infra", "support"]
        DemoOrder.insert_many(
            [{"team": teams[i % 4], "cents": 100 * (i % 17 + 1)} for i in range(200)]
        ).execute()


@cron.job(
    "cleanup-sessions",
    schedule="*/10 * * * *",
    description="Delete expired login sessions",
    tags=["maintenance"],
    timeout=120,
)
def cleanup_sessions(ctx: RunContext) -> dict[str, Any]:
    _demo_tables()
    now = SYSTEM_CLOCK.now()
    deleted = DemoSession.delete().where(DemoSession.expires_at < now).execute()
    remaining = DemoSession.select().count()
    ctx.log(f"deleted {deleted} expired sessions, {remaining} left")
    return {"deleted": deleted, "remaining": remaining}


@cron.job(
    "daily-report",
    schedule="0 6 * * *",
    tz="Europe/Berlin",
    mode="stream",
    description="Revenue per team, streamed as it is built",
    tags=["reports"],
    timeout=300,
)
def daily_report(ctx: RunContext) -> dict[str, Any]:
    _demo_tables()
    teams = [row.team for row in DemoOrder.select(DemoOrder.team).distinct()]
    totals: dict[str, int] = {}
    for done, team in enumerate(sorted(teams), start=1):
        if ctx.should_stop():
            ctx.log("stopping early as asked")
            break
        total = DemoOrder.select(fn.SUM(DemoOrder.cents)).where(DemoOrder.team == team).scalar()
        totals[team] = int(total or 0)
        ctx.log(f"{team}: {totals[team] / 100:.2f} EUR")
        ctx.progress(done, len(teams))
        time.sleep(0.5)  # a real report renders something here
    return {"teams": len(totals), "total_eur": sum(totals.values()) / 100}


@cron.job(
    "health-ping",
    schedule="* * * * *",
    description="Ping a dependency; fails now and then, like real ones do",
    tags=["monitoring"],
    timeout=10,
    max_attempts=3,
)
def health_ping(ctx: RunContext) -> dict[str, Any]:
    latency_ms = round(random.uniform(5, 80), 1)
    if random.random() < 0.25:
        raise ConnectionError(f"upstream did not answer within {latency_ms} ms")
    return {"latency_ms": latency_ms}


@cron.job(
    "sync-inventory",
    schedule="0 * * * *",
    mode="async",
    description="Pull stock levels from the warehouse API (slow, so it runs in the background)",
    tags=["sync"],
    timeout=600,
)
def sync_inventory(ctx: RunContext) -> dict[str, Any]:
    pages = int((ctx.payload or {}).get("pages", 5)) if isinstance(ctx.payload, dict) else 5
    synced = 0
    for page in range(1, pages + 1):
        if ctx.should_stop():
            ctx.skip(f"stopped after {page - 1} of {pages} pages")
        time.sleep(1)  # the warehouse API is slow
        synced += 50
        ctx.log(f"page {page}/{pages}: {synced} items")
        ctx.progress(page, pages)
    return {"items": synced, "pages": pages}
