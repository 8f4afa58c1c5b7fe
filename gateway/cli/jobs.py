"""`python -m gateway jobs list|add|edit|trigger|pause|resume|rm`: parse, call the store, print."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from gateway.cli.common import echo_json
from gateway.cli.common import echo_table
from gateway.cli.common import open_store
from gateway.clock import SYSTEM_CLOCK
from gateway.jobspec import METHODS
from gateway.jobspec import MISFIRES
from gateway.jobspec import MODES
from gateway.jobspec import OVERLAPS
from gateway.store import jobs as store
from gateway.store.fleet import pause_many
from gateway.store.fleet import resume_many
from gateway.store.jobs import FATES
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.run_queries import find_run
from gateway.store.run_queries import run_as_dict
from gateway.store.runs import TERMINAL_STATUSES

POLL_SECONDS = 0.2
# A failed attempt's retry is queued just after the failure is recorded: wait this long for it.
RETRY_GRACE_SECONDS = 2.0


@click.group()
def jobs() -> None:
    """List, add, change, run, pause and delete jobs."""


@jobs.command("list")
@click.option("--tag", help="Only jobs with this tag.")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
def list_command(tag: str | None, include_deleted: bool, as_json: bool) -> None:
    """List jobs by name."""
    open_store()
    found = [store.job_as_dict(j) for j in store.list_jobs(include_deleted, tag)]
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no jobs")
        return
    echo_table(
        ["NAME", "SCHEDULE", "TZ", "STATE", "NEXT RUN", "LAST STATUS", "SOURCE"],
        [_row(j) for j in found],
    )


def _row(job: dict[str, Any]) -> list[str]:
    next_run = job["next_run_at"] or ""
    return [
        job["name"],
        job["schedule"] or "(on demand)",
        job["tz"],
        job["state"],
        next_run[:19].replace("T", " ") or "-",
        job["last_status"] or "-",
        job["source"],
    ]


def _definition_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options `add` and `edit` share; only the ones given change anything."""
    options = [
        click.option("--schedule", help="Cron expression; '' runs only on demand."),
        click.option("--tz", help="IANA time zone of the schedule (default UTC)."),
        click.option("--method", type=click.Choice(METHODS, case_sensitive=False)),
        click.option("--header", "headers", multiple=True, help="'Name: value' (repeatable)."),
        click.option("--payload", help="JSON body sent with each run."),
        click.option("--timeout", type=int, help="Seconds before a call counts as timed out."),
        click.option("--max-attempts", type=int, help="Attempts per slot (retries + 1)."),
        click.option("--overlap", type=click.Choice(OVERLAPS)),
        click.option("--misfire", type=click.Choice(MISFIRES)),
        click.option("--mode", type=click.Choice(MODES)),
        click.option("--title"),
        click.option("--description"),
        click.option("--tag", "tags", multiple=True, help="A tag (repeatable; replaces all)."),
        click.option(
            "--signed/--unsigned",
            "signed",
            default=None,
            help="Send X-Cron-Signature with each call (the default when a secret is set).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the job as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _definition(given: dict[str, Any]) -> dict[str, Any]:
    """Turn the options given on the command line into job fields (strings converted here)."""
    data = {k: v for k, v in given.items() if v is not None and v != ()}
    if "schedule" in data:
        data["schedule"] = data["schedule"].strip() or None
    if "headers" in data:
        data["headers"] = dict(_header(h) for h in data["headers"])
    if "payload" in data:
        data["payload"] = parse_json(data["payload"], "--payload")
    if "tags" in data:
        data["tags"] = list(data["tags"])
    return data


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise click.UsageError(f"--header: expected 'Name: value', not {text!r}")
    return name.strip(), value.strip()


def parse_json(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise click.UsageError(f"{option}: not valid JSON ({e})") from None


@jobs.command("add")
@click.argument("name")
@click.option("--url", required=True, help="http(s) URL, or a path on GATEWAY_APP_URL.")
@_definition_options
def add(name: str, url: str, as_json: bool, **given: Any) -> None:
    """Add a job that calls URL on a schedule (or only on demand)."""
    settings = open_store()
    data = {"name": name, "url": url, **_definition(given)}
    _show(store.create_job(data, SYSTEM_CLOCK.now(), settings=settings, source="api"), as_json)


@jobs.command("edit")
@click.argument("name")
@click.option("--url", help="http(s) URL, or a path on GATEWAY_APP_URL.")
@_definition_options
def edit(name: str, as_json: bool, **given: Any) -> None:
    """Change the options given; the others stay as they are."""
    settings = open_store()
    changes = _definition(given)
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    _show(store.update_job(name, changes, SYSTEM_CLOCK.now(), settings=settings), as_json)


def _show(job: Job, as_json: bool) -> None:
    if as_json:
        echo_json(store.job_as_dict(job))
        return
    when = job.next_run_at.isoformat() if job.next_run_at else "none"
    click.echo(
        f"{job.name}: {store.job_state(job)}, {job.schedule or 'on demand'}, next run {when}"
    )


@jobs.command("trigger")
@click.argument("name")
@click.option("--payload", help="JSON body for this run (default: the job's payload).")
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit 1 if it failed.")
@click.option("--wait-timeout", type=click.FloatRange(0, 86_400), default=300, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.pass_context
def trigger(
    ctx: click.Context,
    name: str,
    payload: str | None,
    wait: bool,
    wait_timeout: float,
    as_json: bool,
) -> None:
    """Queue a run now; the gateway sends it within a second, even if the job is paused."""
    open_store()
    body = parse_json(payload, "--payload") if payload is not None else None
    run = store.trigger_job(name, SYSTEM_CLOCK.now(), body)
    if as_json and not wait:
        echo_json(run_as_dict(run))
    if not as_json:
        click.echo(run.execution_id)
    if not wait:
        return
    ended = wait_for_run(run.execution_id, wait_timeout)
    if ended is None:
        latest = find_run(run.execution_id)
        status = latest.status if latest is not None else "gone"
        click.echo(f"error: run is still {status} after {wait_timeout:g} s", err=True)
        ctx.exit(1)
    assert ended is not None
    if as_json:
        echo_json(run_as_dict(ended))
    else:
        took = f" in {ended.duration_ms} ms" if ended.duration_ms is not None else ""
        error = f": {ended.error.splitlines()[0]}" if ended.error else ""
        click.echo(f"{ended.status}{took} (attempt {ended.attempt}){error}")
    ctx.exit(0 if ended.status == "success" else 1)


def wait_for_run(execution_id: str, timeout: float) -> Run | None:
    """Poll the store until the execution's last attempt has ended; None on timeout."""
    deadline = SYSTEM_CLOCK.monotonic() + timeout
    failed_since: float | None = None
    while True:
        run = find_run(execution_id)
        now = SYSTEM_CLOCK.monotonic()
        if run is not None and run.status in TERMINAL_STATUSES:
            if run.status == "success" or run.attempt >= run.job.max_attempts:
                return run
            failed_since = failed_since if failed_since is not None else now
            if now - failed_since >= RETRY_GRACE_SECONDS:
                return run  # no retry came: the failure was final (a 4xx, say)
        else:
            failed_since = None
        if now >= deadline:
            return None
        time.sleep(POLL_SECONDS)


@jobs.command("pause")
@click.argument("names", nargs=-1)
@click.option("--tag", help="Pause every job with this tag instead of naming them.")
@click.option("--note", help="Why it is paused (shown in lists and the UI).")
@click.option("--until", "until_text", help="Resume by itself then (ISO time with offset).")
@click.option(
    "--fate",
    type=click.Choice(FATES),
    help="Slots during the pause: recorded missed, or one run on resume (default: not expected).",
)
def pause(
    names: tuple[str, ...],
    tag: str | None,
    note: str | None,
    until_text: str | None,
    fate: str | None,
) -> None:
    """Stop scheduling jobs (by name or --tag); manual triggers still work."""
    until = _parse_until(until_text)
    open_store()
    paused = pause_many(
        names=list(names) or None,
        tag=tag,
        now=SYSTEM_CLOCK.now(),
        note=note,
        until=until,
        fate=fate,
    )
    for job in paused:
        click.echo(f"{job.name}: paused" + (f" until {until.isoformat()}" if until else ""))


@jobs.command("resume")
@click.argument("names", nargs=-1)
@click.option("--tag", help="Resume every paused job with this tag.")
def resume(names: tuple[str, ...], tag: str | None) -> None:
    """Schedule jobs again; their paused slots meet the fate chosen when pausing."""
    open_store()
    for job in resume_many(names=list(names) or None, tag=tag, now=SYSTEM_CLOCK.now()):
        _show(job, as_json=False)


def _parse_until(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        until = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO time", param_hint="--until") from None
    if until.tzinfo is None:
        raise click.BadParameter(
            "give an offset, e.g. 2026-11-23T18:00+01:00", param_hint="--until"
        )
    return until


@jobs.command("rm")
@click.argument("name")
def remove(name: str) -> None:
    """Delete the job (its run history is kept)."""
    open_store()
    store.delete_job(name, SYSTEM_CLOCK.now())
    click.echo(f"{name}: deleted")
