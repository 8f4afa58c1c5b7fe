"""`python -m gateway export crontab|eventbridge`: the jobs for system cron or AWS EventBridge."""

from __future__ import annotations

import json

import click

from gateway.cli.common import open_store
from gateway.clock import SYSTEM_CLOCK
from gateway.export import Rejected
from gateway.export import jobs_to_export
from gateway.export.crontab import DEFAULT_ENV_FILE
from gateway.export.crontab import export_crontab
from gateway.export.eventbridge import export_eventbridge

_JOB = click.option("--job", "names", multiple=True, help="Export this job only (repeatable).")
_SKIP = click.option(
    "--skip-unsupported",
    is_flag=True,
    help="Leave out jobs whose schedule cannot be expressed (default: fail).",
)


@click.group()
def export() -> None:
    """Write the jobs for another scheduler (system cron, AWS EventBridge)."""


@export.command("crontab")
@_JOB
@click.option(
    "--env-file",
    default=DEFAULT_ENV_FILE,
    show_default=True,
    help="File each line sources for GATEWAY_CRON_TOKEN (the token is never inlined).",
)
@_SKIP
def crontab(names: tuple[str, ...], env_file: str, skip_unsupported: bool) -> None:
    """Print a crontab: one curl line per scheduled job, grouped by CRON_TZ."""
    settings = open_store()
    jobs = jobs_to_export(names)
    result = export_crontab(jobs, settings.app_url, SYSTEM_CLOCK.now(), env_file=env_file)
    _check(result.rejected, skip_unsupported, "system cron")
    click.echo(result.text, nl=False)


@export.command("eventbridge")
@_JOB
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "cloudformation"]),
    default="cloudformation",
    show_default=True,
    help="A CloudFormation template, or a JSON list of CreateSchedule inputs.",
)
@_SKIP
def eventbridge(names: tuple[str, ...], fmt: str, skip_unsupported: bool) -> None:
    """Print EventBridge Scheduler definitions; the token stays in Secrets Manager."""
    settings = open_store()
    jobs = jobs_to_export(names)
    document, rejected = export_eventbridge(jobs, settings.app_url, fmt=fmt)
    _check(rejected, skip_unsupported, "EventBridge")
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _check(rejected: list[Rejected], skip: bool, target: str) -> None:
    """Name each job left out on stderr; without --skip-unsupported, fail (exit 2)."""
    for reject in rejected:
        click.echo(f"{'left out' if skip else 'cannot export'}: {reject.reason}", err=True)
    if rejected and not skip:
        raise click.UsageError(
            f"{len(rejected)} job(s) cannot be scheduled by {target}; "
            "fix them or pass --skip-unsupported to leave them out"
        )
