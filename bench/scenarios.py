"""The scenarios of issue 8: how many jobs, on what schedule, and which slots are expected.

A job is named `j000042` and called at `<target>/t/j000042`. Two timed schedule shapes:

- `every5`: every job at every second divisible by 5 (six-field `*/5 * * * * *`,
  APScheduler `second="*/5"`): all jobs due together every 5 s.
- `spread`: job i at second i % 60 of every minute (`S * * * * *`): spread over a minute.

`idle` jobs are daily at an hour 12 h away, so none is due while they are measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # every5 | spread | idle | endpoint
    jobs: int
    about: str
    drain: float = 5.0  # seconds to wait after the window for late calls
    peers: tuple[str, ...] = ("gateway", "apscheduler", "cron-curl")


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("same-100", "every5", 100, "100 jobs due in the same second, every 5 s"),
        Scenario("same-1000", "every5", 1000, "1,000 jobs due in the same second, every 5 s"),
        Scenario(
            "rate-5000",
            "every5",
            5000,
            "5,000 jobs every 5 s (1,000 calls/s)",
            drain=10.0,
            peers=("gateway", "apscheduler"),
        ),
        Scenario("spread-10000", "spread", 10000, "10,000 jobs spread over a minute"),
        Scenario(
            "idle-100k",
            "idle",
            100_000,
            "100,000 schedules held, none due: load time, idle CPU over 30 s, memory",
            peers=("gateway", "apscheduler"),
        ),
        Scenario(
            "endpoint",
            "endpoint",
            1,
            "a protected CronJobs endpoint vs a bare Flask route, gunicorn -w 2 -k gthread",
            peers=("gateway",),
        ),
    )
}


def job_name(i: int) -> str:
    return f"j{i:06d}"


def second_of(scenario: Scenario, i: int) -> int | None:
    """Return the second of the minute job i fires at (spread), or None (every5)."""
    return i % 60 if scenario.kind == "spread" else None


def cron_expr(scenario: Scenario, i: int, now: datetime) -> str:
    """Return job i's schedule in the gateway's syntax (six fields: seconds first)."""
    if scenario.kind == "every5":
        return "*/5 * * * * *"
    if scenario.kind == "spread":
        return f"{i % 60} * * * * *"
    hour = (now.astimezone(UTC).hour + 12) % 24
    return f"{i % 60} {hour} * * *"


def aps_trigger(scenario: Scenario, i: int, now: datetime) -> dict[str, object]:
    """Return job i's schedule as APScheduler CronTrigger keyword arguments."""
    if scenario.kind == "every5":
        return {"second": "*/5"}
    if scenario.kind == "spread":
        return {"second": str(i % 60)}
    hour = (now.astimezone(UTC).hour + 12) % 24
    return {"hour": str(hour), "minute": str(i % 60), "second": "0"}


def due_jobs(scenario: Scenario, second: int) -> range | list[int]:
    """Return the jobs due at epoch second `second` (for the cron + curl peer)."""
    if scenario.kind == "every5":
        return range(scenario.jobs) if second % 5 == 0 else []
    if scenario.kind == "spread":
        return list(range(second % 60, scenario.jobs, 60))
    return []


def expected_slots(scenario: Scenario, start: int, end: int) -> set[tuple[str, int]]:
    """Return every (job, slot epoch second) that should be called in [start, end)."""
    return {(job_name(i), t) for t in range(start, end) for i in due_jobs(scenario, t)}
