"""`python -m gateway cron next|explain`: schedules from the command line."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import click

from gateway.clock import SYSTEM_CLOCK
from gateway.schedule import MAX_COUNT
from gateway.schedule import Schedule


@click.group()
def cron() -> None:
    """Inspect cron expressions."""


@cron.command("next")
@click.argument("expr")
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone of the job.")
@click.option("--from", "start", default=None, help="ISO-8601 start (default: now).")
@click.option("--count", default=1, show_default=True, type=int, help="How many times.")
@click.option("--name", default=None, help="Job name that seeds H.")
def next_command(expr: str, tz: str, start: str | None, count: int, name: str | None) -> None:
    """Print the next fire times of EXPR, one ISO-8601 time with offset per line."""
    if not 1 <= count <= MAX_COUNT:
        raise click.UsageError(f"--count must be from 1 to {MAX_COUNT}, got {count}")
    schedule = Schedule(expr, tz=tz, name=name)
    after = SYSTEM_CLOCK.now() if start is None else _parse_from(start, schedule)
    for fire in schedule.next_times(after, count):
        click.echo(fire.isoformat())


@cron.command("explain")
@click.argument("expr")
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone of the job.")
@click.option("--name", default=None, help="Job name that seeds H.")
def explain_command(expr: str, tz: str, name: str | None) -> None:
    """Print EXPR in plain English, with its time zone."""
    click.echo(Schedule(expr, tz=tz, name=name).explain())


def _parse_from(text: str, schedule: Schedule) -> datetime:
    """Return --from as an aware datetime; a time without offset is read in the job's zone."""
    try:
        start = datetime.fromisoformat(text)
    except ValueError as e:
        raise click.UsageError(f"--from: '{text}' is not an ISO-8601 date-time") from e
    if start.utcoffset() is None:
        start = start.replace(tzinfo=schedule.zone)
    try:
        start.astimezone(UTC)
    except OverflowError as e:
        raise click.UsageError(f"--from: '{text}' is out of range") from e
    return start
