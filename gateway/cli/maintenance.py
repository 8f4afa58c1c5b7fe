"""`python -m gateway prune|backfill|doctor`: keep the history small, fill gaps, check the setup."""

from __future__ import annotations

import click

from gateway.cli.common import echo_json
from gateway.cli.common import open_store
from gateway.clock import SYSTEM_CLOCK
from gateway.store.retention import PruneReport
from gateway.store.retention import prune as prune_runs


@click.command()
@click.option("--days", type=click.IntRange(min=0), help="Keep runs this many days (0: forever).")
@click.option("--per-job", type=click.IntRange(min=0), help="Keep the newest N runs per job.")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def prune(days: int | None, per_job: int | None, dry_run: bool, as_json: bool) -> None:
    """Delete finished runs older than --days or beyond the newest --per-job of each job.

    The defaults come from GATEWAY_RETENTION_DAYS (30) and GATEWAY_RETENTION_PER_JOB (10000).
    Queued and running runs are never deleted.
    """
    settings = open_store()
    days = settings.retention_days if days is None else days
    per_job = settings.retention_per_job if per_job is None else per_job
    report = prune_runs(SYSTEM_CLOCK.now(), days=days, per_job=per_job, dry_run=dry_run)
    if as_json:
        echo_json({**report.as_dict(), "days": days, "per_job": per_job})
        return
    click.echo(_prune_line(report, days, per_job))


def _prune_line(report: PruneReport, days: int, per_job: int) -> str:
    verb = "would prune" if report.dry_run else "pruned"
    parts = []
    if days:
        parts.append(f"{report.by_age} older than {days} days")
    if per_job:
        parts.append(f"{report.by_count} beyond the newest {per_job} per job")
    detail = f" ({', '.join(parts)})" if parts else " (retention is off)"
    return f"{verb} {report.deleted} runs{detail}"


maintenance_commands = [prune]
