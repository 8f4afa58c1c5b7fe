"""The app the fault suite's gunicorn serves: many small jobs, and two that hang for kill -9.

gunicorn --pythonpath ROOT -c config/gunicorn.conf.py tests.faults.app_faults:app

FAULTS_DIR (set by tests/faults/conftest.py) is where jobs write what the test reads:
`calls.log` gets one line per job function call (job, slot, execution id, attempt, pid), so a
slot whose function ran twice shows up even if the database would hide it; `arm-<job>` makes
the next call of a victim job hang (once), after writing its worker's pid to `pid-<job>`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from gateway import CronJobs
from gateway import create_app
from gateway.endpoints.context import RunContext

TICKS = [f"tick{i:02d}" for i in range(20)]
MANUAL = [f"manual{i:02d}" for i in range(10)]

app = create_app()
cron = CronJobs(app)
_dir = Path(os.environ.get("FAULTS_DIR", "."))


def _note_call(ctx: RunContext) -> None:
    slot = ctx.scheduled_for.isoformat() if ctx.scheduled_for else "-"
    line = f"{ctx.job} {slot} {ctx.execution_id} {ctx.attempt} {os.getpid()}\n"
    fd = os.open(_dir / "calls.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write with O_APPEND: lines never interleave
    finally:
        os.close(fd)


def _quick(ctx: RunContext) -> Any:
    _note_call(ctx)
    return {"ok": True}


for _name in TICKS + MANUAL:
    cron.job(_name, description="answers at once; every second in the fault suite")(_quick)


def _victim(ctx: RunContext) -> Any:
    """Answer at once, unless armed: then write this worker's pid and block up to 60 s."""
    _note_call(ctx)
    arm = _dir / f"arm-{ctx.job}"
    try:
        arm.rename(_dir / f"armed-{ctx.job}")  # one call takes the arm, atomically
    except FileNotFoundError:
        return {"ok": True}
    partial = _dir / f"pid-{ctx.job}.tmp"
    partial.write_text(str(os.getpid()))
    partial.rename(_dir / f"pid-{ctx.job}")
    end = time.monotonic() + 60
    while time.monotonic() < end and not ctx.should_stop():
        time.sleep(0.05)
    return {"hung": True}


cron.job("victim", timeout=120, description="blocking; hangs once when armed")(_victim)
cron.job("victim-async", mode="async", timeout=120, description="async; hangs once when armed")(
    _victim
)
