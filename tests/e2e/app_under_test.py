"""The app gunicorn serves in the e2e tests: the gateway's app plus six cron jobs.

gunicorn --pythonpath ROOT -c config/gunicorn.conf.py tests.e2e.app_under_test:app
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from gateway import CronJobs
from gateway import create_app
from gateway.endpoints.context import RunContext

app = create_app()
cron = CronJobs(app)


def _sleep(ctx: RunContext, seconds: float, step: float = 0.05) -> float:
    """Sleep `seconds` in small steps, ending early if the run is asked to stop."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if ctx.should_stop():
            break
        time.sleep(min(step, max(0.0, end - time.monotonic())))
    return round(seconds, 3)


@cron.job("fast", schedule="*/5 * * * *", description="answers at once", tags=["e2e"])
def fast(ctx: RunContext) -> Any:
    ctx.log("fast ran")
    return {"ok": True, "payload": ctx.payload, "trigger": ctx.trigger}


@cron.job("slow", description="blocks about 1.5 s")
def slow(ctx: RunContext) -> Any:
    return {"slept": _sleep(ctx, 1.5)}


@cron.job("streamed", mode="stream", description="logs, waits 1.5 s, logs again")
def streamed(ctx: RunContext) -> Any:
    ctx.log("first line")
    _sleep(ctx, 1.5)
    ctx.log("second line")
    return {"lines": 2}


@cron.job("background", mode="async", description="runs about 1 s in the background")
def background(ctx: RunContext) -> Any:
    _sleep(ctx, 1.0)
    ctx.progress(1, 1)
    return {"done": True}


@cron.job("boom", description="raises")
def boom(ctx: RunContext) -> Any:
    ctx.log("about to fail")
    raise RuntimeError("the warehouse said no")


@cron.job("forever", timeout=120, description="blocks up to 60 s; for kill -9")
def forever(ctx: RunContext) -> Any:
    """Write this worker's pid to payload["pid_file"], then block payload["seconds"] (60)."""
    payload = ctx.payload if isinstance(ctx.payload, dict) else {}
    ctx.log(f"worker pid {os.getpid()}")
    if payload.get("pid_file"):
        target = Path(payload["pid_file"])
        partial = target.with_suffix(".tmp")
        partial.write_text(str(os.getpid()))
        partial.rename(target)  # the test never reads a half-written pid
    return {"slept": _sleep(ctx, float(payload.get("seconds", 60)), step=0.1)}
